"""The Hive-partitioned Parquet lake: staging, the insert-if-absent commit, run records, the Beam sink."""
