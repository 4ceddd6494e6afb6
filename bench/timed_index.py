"""Run ``memdex ARGS`` in this process and say how long the model was busy.

    PYTHONPATH=<a memdex tree> python bench/timed_index.py --root R --db D index --json

Used by ``bench_threads.py`` (``base-*`` and ``memdex-*`` runs). Every
``LazyEmbedder.embed`` call is timed (tokenize, run, pool: the model's part of
the work); at exit one JSON line goes to stderr: ``{"model_busy": seconds,
"wall": seconds, "calls": n}``, wall from the start of this script. Whatever
tree is first on PYTHONPATH is measured (this script adds nothing to sys.path
but its own folder, which holds no ``indexer``).
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
import time

STARTED = time.perf_counter()


def main() -> None:
    from indexer.embedding import lazy

    busy = {"model_busy": 0.0, "calls": 0}
    lock = threading.Lock()
    real = lazy.LazyEmbedder.embed

    def embed(self, texts):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return real(self, texts)
        finally:
            with lock:
                busy["model_busy"] += time.perf_counter() - started
                busy["calls"] += 1

    lazy.LazyEmbedder.embed = embed  # type: ignore[method-assign]

    def report() -> None:
        figures = {**busy, "wall": time.perf_counter() - STARTED}
        print("TIMED " + json.dumps({key: round(value, 3) for key, value in figures.items()}), file=sys.stderr)

    atexit.register(report)
    from indexer.cli.app import main as memdex

    sys.argv = ["memdex", *sys.argv[1:]]
    memdex()


if __name__ == "__main__":
    main()
