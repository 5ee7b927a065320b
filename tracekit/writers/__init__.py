"""Output writers: chrome trace, Parquet tables, summary; all written atomically."""
