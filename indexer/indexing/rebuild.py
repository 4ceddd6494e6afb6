"""The build that rebuild and recovery hand to the storage engine: a full sync
of the Markdown into a fresh, empty store (``store.protocols.Build``).

The engine decides where that store lives and how it takes the old one's
place (SQLite: a file beside the index, copied in or moved over a damaged one;
PostgreSQL: the namespace cleared and refilled in one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.config.settings import Settings
from indexer.embedding.protocol import Embedder
from indexer.store.protocols import IndexStore, VectorCache

from .report import Progress, SyncReport
from .sync import sync


@dataclass(frozen=True)
class FromMarkdown:
    """Index every memory file of ``settings.root`` into an empty store."""

    settings: Settings
    embedder: Embedder
    progress: Progress | None = None

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dimensions(self) -> int:
        return self.embedder.dimensions

    def __call__(self, store: IndexStore, cache: VectorCache) -> SyncReport:
        return sync(self.settings, store, cache, self.embedder, progress=self.progress)
