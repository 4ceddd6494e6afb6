"""Helper processes for tests/test_watch.py (not a test module).

``watch ROOT [--db URL]``: runs a watcher exactly like ``memdex watch`` does -- ``run_watch``
inside ``stop_on_signals()``, KeyboardInterrupt (from SIGTERM or Ctrl-C) ends it with exit
status 0 -- but with the test embedder,
optionally slowed down to emulate a real model's cost. Once the initial sync
is done it creates ``--ready-file``.

``search ROOT``: a reader that opens the index and runs keyword searches in a
loop for ``--seconds``, creating ``--ready-file`` after its first round, and
prints ``{"rounds": N, "searches": N, "errors": N, "messages": [...]}``
as JSON on stdout. Any exception counts as an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from conftest import RecordingEmbedder  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.watch.run import run_watch  # noqa: E402
from indexer.watch.signals import stop_on_signals  # noqa: E402
from indexer.watch.watcher import Watcher, WatchOptions  # noqa: E402


class SlowEmbedder(RecordingEmbedder):
    """RecordingEmbedder that takes ``delay`` seconds per embed call, like a real model would."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)  # emulated model cost
        vectors = super().embed(texts)
        self.embedded.clear()  # a long-running process should not keep every text
        return vectors


class SwallowingEmbedder(SlowEmbedder):
    """Its first call stands for ONNX Runtime's first import, which turns a KeyboardInterrupt
    (a SIGTERM arriving meanwhile) into an ImportError: it announces itself in ``started``,
    waits up to ``delay`` seconds and swallows the interrupt the same way."""

    def __init__(self, delay: float, started: Path) -> None:
        super().__init__(0.0)
        self.first, self.wait, self.started = True, delay, started

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.first:
            self.first = False
            self.started.write_text("loading\n", encoding="utf-8")
            try:
                time.sleep(self.wait)
            except KeyboardInterrupt:
                raise ImportError("onnxruntime: initialization failed") from None
        return super().embed(texts)


def announce_when_ready(watcher: Watcher, ready_file: Path) -> None:
    watcher.ready.wait()
    ready_file.write_text("ready\n", encoding="utf-8")


def watch(args: argparse.Namespace) -> int:
    settings = make_settings(args.root, args.db) if args.db else make_settings(args.root)
    options = WatchOptions(debounce=args.debounce, max_wait=args.max_wait)

    def announce(watcher: Watcher) -> None:
        threading.Thread(target=announce_when_ready, args=(watcher, args.ready_file), daemon=True).start()

    with stop_on_signals() as stopping:
        try:
            embedder = (
                SwallowingEmbedder(args.embed_delay, args.swallow_first_interrupt)
                if args.swallow_first_interrupt else SlowEmbedder(args.embed_delay)
            )  # fmt: skip
            run_watch(settings, options, stopping, embedder=embedder, on_watcher=announce)
        except KeyboardInterrupt:
            pass  # as in cli.watch: the current file's transaction was rolled back; the lock is released
    return 0


def search(args: argparse.Namespace) -> int:
    settings = make_settings(args.root)
    words = ["alpha", "bravo", "charlie", "storm", "note", "topic", "value", "delta"]
    rounds = searches = errors = 0
    messages: list[str] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            # A fresh reader each round (like one `memdex search` per query), a few queries each.
            with open_index(settings, embedder=RecordingEmbedder()) as index:
                for word in words[rounds % 3 :: 3]:
                    index.search(word, mode="keyword", limit=5)
                    searches += 1
                index.status()
        except Exception as exc:  # noqa: BLE001 - every failure is what we count
            errors += 1
            if len(messages) < 10:
                messages.append(f"{type(exc).__name__}: {exc}")
        rounds += 1
        if rounds == 1:
            args.ready_file.write_text("ready\n", encoding="utf-8")
    print(json.dumps({"rounds": rounds, "searches": searches, "errors": errors, "messages": messages}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    watching = commands.add_parser("watch")
    watching.add_argument("root", type=Path)
    watching.add_argument("--ready-file", type=Path, required=True)
    watching.add_argument("--embed-delay", type=float, default=0.0, help="seconds per embed call")
    watching.add_argument("--debounce", type=float, default=0.05)
    watching.add_argument("--max-wait", type=float, default=0.5)
    watching.add_argument("--swallow-first-interrupt", type=Path, default=None, metavar="STARTED_FILE",
                          help="the first embed call swallows a KeyboardInterrupt (as onnxruntime's import does)")
    watching.add_argument("--db", default=None, help="the index: a file, or a postgresql:// URL")
    watching.set_defaults(run=watch)
    searching = commands.add_parser("search")
    searching.add_argument("root", type=Path)
    searching.add_argument("--ready-file", type=Path, required=True)
    searching.add_argument("--seconds", type=float, default=3.0)
    searching.set_defaults(run=search)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
