"""Storage: the neutral seam (``protocols``: IndexStore, VectorCache, Engine;
``records``: the rows) and one folder per engine, whole: ``sqlite/`` (one file
per memory root, FTS5 and sqlite-vec) and ``postgres/`` (many roots as
namespaces of one PostgreSQL + pgvector server). ``registry`` maps a
configuration to its engine and is the only module outside the engines that
names one.
"""

from .protocols import Engine, IndexStore, VectorCache
from .records import ChunkRow, FileRecord, FileState, SkippedFile

__all__ = ["ChunkRow", "Engine", "FileRecord", "FileState", "IndexStore", "SkippedFile", "VectorCache"]
