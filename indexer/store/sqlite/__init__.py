"""The SQLite engine: one file per memory root, FTS5 and sqlite-vec, through APSW."""
