"""memdex: a local memory index for personal AI assistants."""

from .api import MemoryIndex, open_index
from .excerpts import Lines
from .config import Settings, make_settings
from .errors import IndexerError
from .filters import SearchFilters, make_filters
from .search import SearchResult
from .settings_file import load_configuration
from .sync import SyncReport

__all__ = [
    "IndexerError", "Lines", "MemoryIndex", "SearchFilters", "SearchResult", "Settings", "SyncReport",
    "load_configuration", "make_filters", "make_settings", "open_index",
]  # fmt: skip
__version__ = "0.1.0"
