"""The PostgreSQL engine: many memory roots (namespaces) on one server with pgvector."""
