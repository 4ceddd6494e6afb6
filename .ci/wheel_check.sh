#!/usr/bin/env bash
# Does a user's install work? Build the wheel, install it (with torch pinned, as the
# README does) into a clean venv outside the checkout, then, from a folder outside
# the checkout (so `indexer` cannot come from the source tree): import every module
# of the installed package and run init / index / search on the bundled templates.
# Called by .ci/run after the test suite; runs alone too: .ci/wheel_check.sh
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"

work="$(mktemp -d "${TMPDIR:-/tmp}/memdex-wheel-check.XXXXXX")"
case "$work/" in "$checkout"/*) echo "wheel check: $work is inside the checkout" >&2; exit 1 ;; esac
trap 'rm -rf "$work"' EXIT
fail() { echo "wheel check FAILED: $*" >&2; exit 1; }
step() { echo "== wheel check: $*"; }

step "building the wheel"
"$python" -m pip wheel --no-deps -q -w "$work/dist" "$checkout"
wheels=("$work"/dist/memdex-*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || fail "expected one memdex wheel, found: ${wheels[*]}"
wheel="${wheels[0]}"

step "installing torch==2.13.0 and $(basename "$wheel") into a clean venv"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
# No module needs the postgres extra to import (psycopg is imported lazily), so the
# plain wheel is installed: the import walk below proves that laziness.
"$venv_python" -m pip install -q torch==2.13.0 "$wheel"

# Outside the checkout, with a throw-away home: no user config, caches or MEMDEX_*
# settings of whoever runs this leak in (the ONNX export is made fresh, as for a new user).
mkdir -p "$work/run" "$work/home"
cd "$work/run"
for name in $(env | sed -n 's/^\(MEMDEX_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$name"; done
unset PYTHONPATH
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_CACHE_HOME="$work/home/.cache"
export PYTHONNOUSERSITE=1
memdex="$work/venv/bin/memdex"

step "importing every module of the installed package"
"$venv_python" - "$work/venv" <<'PY' || fail "a module of the installed package does not import"
import importlib
import pkgutil
import sys
from pathlib import Path

venv = Path(sys.argv[1]).resolve()
import indexer

where = Path(indexer.__file__).resolve()
if venv not in where.parents:
    sys.exit(f"indexer was imported from {where}, not from the venv {venv}")


def broken(name: str) -> None:
    raise ImportError(f"cannot import package {name}")


names = [info.name for info in pkgutil.walk_packages(indexer.__path__, "indexer.", onerror=broken)]
modules = ["indexer"] + [n for n in names if n.rsplit(".", 1)[-1] != "__main__"]
failed = []
for name in modules:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit included: an import must not exit
        failed.append(name)
        print(f"  {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
if failed:
    sys.exit(f"{len(failed)} of {len(modules)} modules failed to import: {', '.join(failed)}")
if len(modules) < 20:
    sys.exit(f"only {len(modules)} modules found under {indexer.__path__}: is the wheel missing packages?")
if "psycopg" in sys.modules:
    sys.exit("importing indexer imported psycopg: it must be imported lazily (only for --db postgresql://)")
print(f"  imported {len(modules)} modules from {where.parent}")
PY

step "memdex --help / memdex mcp --help"
"$memdex" --help >"$work/help.txt" || fail "memdex --help"
grep -q "search" "$work/help.txt" || fail "memdex --help does not list search: $(cat "$work/help.txt")"
"$memdex" mcp --help >"$work/mcp-help.txt" || fail "memdex mcp --help"
[ -s "$work/mcp-help.txt" ] || fail "memdex mcp --help printed nothing"

step "memdex init / index / search on the bundled templates"
memory="$work/memory"
"$memdex" init "$memory" || fail "memdex init $memory"
for file in MEMORY.md SOUL.md daily/TEMPLATE.md.txt; do
    [ -s "$memory/$file" ] || fail "memdex init did not create $file"
done
"$memdex" --root "$memory" index || fail "memdex --root $memory index"
query="allergies, medication and doctors"
"$memdex" --root "$memory" search "$query" >"$work/search.txt" || fail "memdex search"
cat "$work/search.txt"
first="$(head -n 1 "$work/search.txt")"
[[ "$first" == *MEMORY.md:*Health* ]] || fail "search \"$query\" did not rank MEMORY.md's Health section first"
step "OK"
