"""Helper process for tests/test_recovery.py (not a test module).

``python tests/index_process.py ROOT [--rebuild] [--embed-delay S] [--group N]``
runs one full sync of ROOT exactly like ``memdex index`` does
(``open_index(write=True)`` then ``sync()``), or with ``--rebuild`` a rebuild
like ``memdex rebuild``, but with the deterministic test embedder slowed down
by ``--embed-delay`` seconds per model call to emulate a real model's cost,
and with sync's embedding group lowered to ``--group`` texts so that files are
written a few at a time. The embedder records the configured model's id, as
the real one would. The tests kill it with SIGKILL part-way through.

Prints ``opened`` once it holds the writer lock and ``done`` when the sync is
complete.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from conftest import RecordingEmbedder  # noqa: E402

import indexer.indexing.sync  # noqa: E402
import indexer.indexing.writer  # noqa: E402
from indexer import make_settings, open_index  # noqa: E402
from indexer.embedding.resolve import resolve_model  # noqa: E402


class SlowRecordingEmbedder(RecordingEmbedder):
    """RecordingEmbedder that takes ``delay`` seconds per embed call, like a real model would."""

    def __init__(self, delay: float, model_id: str) -> None:
        super().__init__(model_id=model_id)
        self.delay = delay

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)  # emulated model cost
        vectors = super().embed(texts)
        self.embedded.clear()  # nothing reads them; keep memory flat
        return vectors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--embed-delay", type=float, default=0.02)
    parser.add_argument("--group", type=int, default=8)
    args = parser.parse_args(argv)
    indexer.indexing.writer.EMBED_GROUP = args.group
    settings = make_settings(args.root)
    embedder = SlowRecordingEmbedder(args.embed_delay, model_id=resolve_model(settings.model)[0])
    with open_index(settings, write=True, embedder=embedder) as index:
        print("opened", flush=True)
        report = index.rebuild() if args.rebuild else index.sync()
    print("done", report.reindexed, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
