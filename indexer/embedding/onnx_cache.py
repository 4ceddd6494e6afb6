"""Where ONNX exports live: one folder per model CONTENT, shared by every venv.

An export is keyed by what the model's files hold, not where they are: the
names and sizes of all its files, the bytes of its small files (configs,
tokenizer, vocabulary) and of its weights (``*.safetensors``, ``*.bin``,
``*.pt``). Two venvs with the same model package, or a copied model folder,
find the same export. Hashing 87 MiB of weights costs a fraction of a second,
so the key is remembered per model folder in ``keys.json`` with each file's stat
stamp (size, mtime, ctime, inode, device); an unchanged folder is not read again.

When a new export is made, older exports of the same model (another key: the
weights changed, or a folder an older memdex keyed by path) are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from indexer.config.files import read_small_file
from indexer.errors import ConfigError

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the export recipe changes: older exports are not reused
KEY_VERSION = 1  # bump when what the key covers changes
SMALL_FILE = 1 << 20  # files up to this size are hashed whole
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_OLD_NAME = re.compile(r"^(?P<name>.+)-[0-9a-f]{12}-v\d+$")  # an older memdex's path-keyed folder
_NEW_NAME = re.compile(r"^[0-9a-f]{32}-v\d+$")


def cache_dir() -> Path:
    configured = os.environ.get("MEMDEX_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("memdex"))


def exports_dir() -> Path:
    return cache_dir() / "onnx"


def model_name(folder: Path) -> str:
    """A readable name for the model in ``folder``: its folder's name, or the package or
    Hugging Face repository folder above a generic ``model`` folder or a snapshot."""
    if folder.parent.name == "snapshots":
        return folder.parent.parent.name
    if folder.name in ("model", "models", "weights") and folder.parent.name:
        return folder.parent.name
    return folder.name


def export_folder(folder: Path) -> Path:
    return exports_dir() / f"{content_key(folder)}-v{EXPORT_VERSION}"


def content_key(folder: Path) -> str:
    """The model's content key (32 hex digits), remembered per folder by its files' stamps."""
    # An unreadable folder raises OSError: keyed by nothing, every such model would share one export.
    files = _model_files(folder)
    stamps = {rel: stamp(path) for rel, path in files.items()}
    memo_path = exports_dir() / "keys.json"
    memo = read_json(memo_path)
    known = memo.get(str(folder))
    if isinstance(known, dict) and known.get("stamps") == stamps and known.get("version") == KEY_VERSION:
        return str(known["key"])
    key = _digest(folder, files)
    memo[str(folder)] = {"key": key, "stamps": stamps, "version": KEY_VERSION}
    memo = {name: entry for name, entry in memo.items() if name == str(folder) or Path(name).is_dir()}
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(memo_path, memo)
    except OSError:
        pass  # a read-only cache: hashed again next time
    return key


def _model_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(folder).parts
    }


def _digest(folder: Path, files: dict[str, Path]) -> str:
    digest = hashlib.blake2b(f"memdex-model-key-{KEY_VERSION}".encode(), digest_size=16)
    for rel, path in files.items():
        size = path.stat().st_size
        digest.update(f"\0{rel}\0{size}\0".encode())
        if size <= SMALL_FILE or path.name.endswith(WEIGHT_SUFFIXES):
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def stamp(path: Path) -> list[int]:
    found = os.stat(path)
    return [found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino, found.st_dev]


def remember_model(export: Path, folder: Path) -> None:
    """Note which model an export (being made) belongs to, so a later export of it can clean it up."""
    write_json(export / "model.json", {"model": model_name(folder), "model_folder": str(folder)})


def remove_older_exports(current: Path, folder: Path) -> list[Path]:
    """Remove the other exports of this model folder that no model folder uses any more: ones
    made from this folder's earlier content, or from a folder that is gone (and path-keyed
    folders of an older memdex). An export another existing folder maps to (another venv, a
    fine-tune with the same name) stays, and so does one being written (its lock is held)."""
    name = model_name(folder)
    in_use = {f"{entry.get('key')}-v{EXPORT_VERSION}" for where, entry in read_json(exports_dir() / "keys.json").items()
              if isinstance(entry, dict) and where != str(folder) and Path(where).is_dir()}  # fmt: skip
    removed = []
    try:
        candidates = [path for path in exports_dir().iterdir() if path.is_dir() and path != current]
    except OSError:
        return removed
    for path in candidates:
        try:
            if path.name in in_use or _being_written(path):
                continue
            if _NEW_NAME.match(path.name):
                info = read_json(path / "model.json")
                recorded = info.get("model_folder")
                if info.get("model") != name:
                    continue  # another model's
                if isinstance(recorded, str) and recorded != str(folder) and Path(recorded).is_dir():
                    continue  # made from another folder that still exists (a fine-tune of the same name)
            else:
                match = _OLD_NAME.match(path.name)
                if (_old_owner(path) or (match.group("name") if match else None)) != name:
                    continue
            shutil.rmtree(path, ignore_errors=True)
            lock_path(path).unlink(missing_ok=True)
        except OSError:
            continue  # gone meanwhile, or unreadable: left alone
        if not path.exists():
            removed.append(path)
    if removed:
        log.info("removed %d older ONNX export(s) of %s", len(removed), name)
    return removed


def lock_path(export: Path) -> Path:
    """The lock an export is made under (beside its folder, so removing the folder keeps it)."""
    return export.with_name(export.name + ".lock")


def _being_written(export: Path) -> bool:
    """Whether another process holds the export's lock (it is making or checking it)."""
    lock = lock_path(export)
    if not lock.exists():
        return any(p.name.endswith(".tmp") for p in export.iterdir())
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _old_owner(path: Path) -> str | None:
    """The model an older memdex's export was made from, as its ``check.json`` recorded it."""
    recorded = read_json(path / "check.json").get("model_folder")
    return model_name(Path(recorded)) if isinstance(recorded, str) else None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(read_small_file(path, what="ONNX export record"))
    except (OSError, ValueError, ConfigError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (an export, its int8 form)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
