"""Helper process for tests/test_startup.py (not a test module).

``python tests/startup_process.py ARGS...`` runs ``memdex ARGS...`` exactly as
the command line does, then prints one JSON line on stdout's last line:
the exit code and which heavy modules (torch, sentence_transformers,
transformers, onnxruntime) the run imported.
"""

from __future__ import annotations

import json
import sys

HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime")

if __name__ == "__main__":
    from indexer.cli.app import cli

    code = 0
    try:
        cli.main(args=sys.argv[1:], prog_name="memdex", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    print(json.dumps({"exit": code, "imported": [name for name in HEAVY if name in sys.modules]}))
