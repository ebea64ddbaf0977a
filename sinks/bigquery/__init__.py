"""The BigQuery output: the table, the merge of committed lake partitions, streaming inserts."""
