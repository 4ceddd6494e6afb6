"""memdex: a local memory index for personal AI assistants."""

from indexer.config.resolve import load_configuration
from indexer.config.settings import Settings, make_settings
from indexer.indexing.report import SyncReport
from indexer.retrieval.filters import SearchFilters, make_filters
from indexer.retrieval.search import SearchResult
from indexer.sources.read import Lines

from .api import MemoryIndex, open_index
from .errors import IndexerError

__all__ = [
    "IndexerError", "Lines", "MemoryIndex", "SearchFilters", "SearchResult", "Settings", "SyncReport",
    "load_configuration", "make_filters", "make_settings", "open_index",
]  # fmt: skip
__version__ = "0.1.0"
