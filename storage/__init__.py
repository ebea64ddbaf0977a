"""Where the pipeline reads and writes files and secrets: local disk, gs://, s3://, Secret Manager."""
