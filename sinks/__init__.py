"""Where rows and dead letters go: the Parquet lake."""
