"""Storage engines behind one interface (``records.IndexStore``).

``sqlite`` is the default: one file per memory root, FTS5 and sqlite-vec.
``postgres`` serves many roots (namespaces) from one PostgreSQL + pgvector server.
"""

from indexer.store.sqlite.store import EmbeddingCache, Store, filter_clause

from .records import ChunkRow, FileRecord, FileState, IndexStore, SkippedFile, VectorCache

__all__ = [
    "ChunkRow", "EmbeddingCache", "FileRecord", "FileState", "IndexStore", "SkippedFile", "Store", "VectorCache",
    "filter_clause",
]
