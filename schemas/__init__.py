"""The output schema: declared once in :mod:`schemas.fields`, derived everywhere else."""

from schemas.fields import COLUMN_NAMES, COLUMNS, PARTITION_COLUMNS, column_name  # noqa: F401
