"""The output schema: declared once in :mod:`schemas.fields`, derived everywhere else."""

from schemas.fields import COLUMNS, COLUMN_NAMES, PARTITION_COLUMNS, column_name  # noqa: F401
