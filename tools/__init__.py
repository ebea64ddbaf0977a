"""The ``okta-personal-lake`` command (:mod:`tools.cli`): the run, and the tools beside it.

The tools: :mod:`tools.coverage` (which ranges of which org a lake holds), :mod:`tools.maintain`
(the Iceberg table's upkeep) and :mod:`tools.report` (what is in a local lake).
"""
