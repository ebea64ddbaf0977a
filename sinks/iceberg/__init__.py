"""The Apache Iceberg output: catalog, table, commits, cursor, maintenance, the Beam steps."""
