"""What ``memdex status`` (and MCP's ``memory_status``) reports about an index: where it is,
what it holds by kind, with which model, when it was last synced, the watcher, the files
skipped and the transcripts over the index's bound. Reads only: counts by kind come from
the engine's kept counts or indexes, never from every chunk."""

from __future__ import annotations

from typing import Any

from indexer.config.settings import Settings
from indexer.store import Engine
from indexer.watch.state import watcher_status

from .tail import over_bound_status


def index_status(settings: Settings, engine: Engine) -> dict[str, Any]:
    store = engine.store
    meta = store.meta()
    counts = store.counts_by_kind()
    return {
        "root": str(settings.root),
        "index_path": settings.index_location,
        **engine.status(),
        "files": sum(c["files"] for c in counts.values()),
        "chunks": sum(c["chunks"] for c in counts.values()),
        "by_kind": counts,
        "model": meta.get("model"),
        "dimensions": int(meta["dimensions"]) if "dimensions" in meta else None,
        "chunker_version": meta.get("chunker_version"),
        "vector_search": engine.vector_search_name(),
        "last_sync": float(meta["last_sync"]) if "last_sync" in meta else None,
        "watcher": watcher_status(settings.status_path.parent, settings.status_path.name),
        "skipped": [{"path": path, "reason": f.reason} for path, f in sorted(store.skipped_files().items())],
        **over_bound_status(settings, store, meta),  # transcripts over the index's bound
        # label -> folder: a transcript is cited as sessions/<label>/<path inside the folder>
        "session_folders": {label: str(folder) for label, folder in settings.session_labels.items()},
    }
