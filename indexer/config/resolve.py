"""Where each setting comes from: flags > ``MEMDEX_*`` environment > the root's
``.memdex/config.toml`` > the user's ``config.toml`` > defaults.

The CLI, the service definitions and the MCP server all build their
``Settings`` here, so they agree; ``memdex config`` shows every value with
its source. The files are flat TOML tables::

    model = "all-MiniLM-L6-v2"
    daily_folders = ["daily", "memory"]
    search_limit = 8

The user file (``$XDG_CONFIG_HOME/memdex/config.toml`` on Linux, through
platformdirs; ``MEMDEX_CONFIG`` names another file) may also set ``root``, so
a host that starts memdex from any folder finds the memory. A relative
``db`` in a file is relative to the memory root.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from indexer.embedding.cores import AUTO
from indexer.embedding.http_client import without_credentials
from indexer.embedding.lazy import BACKENDS
from indexer.embedding.variants import VARIANTS
from indexer.errors import ConfigError
from indexer.retrieval.search import MODES

from .database import is_database_url, without_password
from .files import read_small_file
from .settings import INDEX_DIR_NAME, Settings, make_settings

CONFIG_FILE_NAME = "config.toml"
# memdex's settings are flat; a key of many dotted parts ("a.a.a...") costs tomllib
# memory that grows with the square of its length (a 20 000-part key: 1.5 GB).
MAX_KEY_PARTS = 32
ENV_PREFIX = "MEMDEX_"
USER_FILE_ENV = "MEMDEX_CONFIG"
SECRET_NAMES = frozenset({"embedding_key", "embedding_api_key", "rerank_key", "rerank_api_key", "api_key"})
MAX_THREADS = 256
URL_KEYS = ("embedding_url", "rerank_url")  # may carry credentials: never shown or written out whole


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected non-empty text, got {value!r}")
    return value.strip()


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a whole number of at least 1, got {value!r}")
    return value


def _budget(value: Any, where: str) -> int:
    if isinstance(value, str) and value.strip() == "0":
        return 0
    if value == 0 and not isinstance(value, bool):
        return 0
    return _positive_int(value, where)


def _limit(value: Any, where: str) -> int:
    number = _positive_int(value, where)
    if number > 1000:
        raise ConfigError(f"{where}: at most 1000, got {number}")
    return number


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    """A parser of a text that must be one of ``choices`` (search mode, backend, model variant)."""

    def parse(value: Any, where: str) -> str:
        text = _text(value, where)
        if text not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _threads(value: Any, where: str) -> int | str:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        number = _positive_int(value, where)
    except ConfigError:
        raise ConfigError(f"{where}: expected {AUTO!r} or a whole number of at least 1, got {value!r}") from None
    if number > MAX_THREADS:
        raise ConfigError(f"{where}: at most {MAX_THREADS}, got {number}")
    return number


def _folders(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of folders, got {value!r}")
    folders: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: expected folder names, got {item!r}")
        folder = item.strip().strip("/")
        if not folder:
            continue
        if folder.startswith("/") or any(part in ("..", ".") for part in folder.split("/")):
            raise ConfigError(f"{where}: {item!r} must be a folder path relative to the memory root")
        folders.append(folder)
    return tuple(dict.fromkeys(folders))


def _paths(value: Any, where: str) -> tuple[str, ...]:
    """Folder paths: a list, or text separated by ``os.pathsep`` (``MEMDEX_SESSION_FOLDERS``)."""
    items = value.split(os.pathsep) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: expected a list of folders, got {value!r}")
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _names(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: expected a list of namespace names, got {value!r}")
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


@dataclass(frozen=True)
class Key:
    """One setting: how to read it, the Settings field it fills (None: not a field)."""

    name: str
    parse: Callable[[Any, str], Any]
    field: str | None
    in_root_file: bool = True

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("root", _text, None, in_root_file=False),
        Key("db", _text, None),
        Key("model", _text, "model"),
        Key("backend", _one_of(BACKENDS), "backend"),
        Key("embedding_url", _text, "embedding_url"),
        Key("embedding_model", _text, "embedding_model"),
        Key("embedding_max_tokens", _positive_int, "embedding_max_tokens"),
        Key("rerank_url", _text, "rerank_url"),
        Key("rerank_model", _text, "rerank_model"),
        Key("rerank_top", _limit, "rerank_top"),
        Key("model_variant", _one_of(VARIANTS), "model_variant"),
        Key("daily_folders", _folders, "daily_folders"),
        Key("session_folders", _paths, "session_folders"),
        Key("session_tools", _boolean, "session_tools"),
        Key("search_mode", _one_of(MODES), "search_mode"),
        Key("search_limit", _limit, "search_limit"),
        Key("search_budget_lines", _budget, "search_budget_lines"),
        Key("search_budget_tokens", _budget, "search_budget_tokens"),
        Key("max_file_bytes", _positive_int, "max_file_bytes"),
        Key("session_max_file_bytes", _positive_int, "session_max_file_bytes"),
        Key("sqlite_vec", _boolean, "use_sqlite_vec"),
        Key("embed_batch_size", _positive_int, "embed_batch_size"),
        Key("embed_threads", _threads, "embed_threads"),
        Key("namespace", _text, "namespace"),
        Key("search_namespaces", _names, "search_namespaces"),
        Key("encryption_key_file", _text, "encryption_key_file"),
        Key("encryption_keyring", _text, "encryption_keyring"),
    )
}
def _settings_defaults() -> dict[str, Any]:
    by_field = {f.name: f.default for f in fields(Settings)}
    return {"root": ".", "db": None} | {key.name: by_field[key.field] for key in KEYS.values() if key.field}


DEFAULTS = _settings_defaults()


@dataclass(frozen=True)
class Source:
    value: Any
    source: str  # "flag --model", "env MEMDEX_MODEL", "root file PATH", "user file PATH", "default"


@dataclass(frozen=True)
class Configuration:
    settings: Settings
    values: dict[str, Source]
    user_file: Path | None
    root_file: Path

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return list(value) if isinstance(value, tuple) else value

        def shown(name: str, value: Any) -> Any:
            if name in URL_KEYS and isinstance(value, str):  # a key in an endpoint's URL is never shown
                return without_credentials(value, mask="***")[0]
            return plain(value)

        return {
            "settings": {name: {"value": shown(name, s.value), "source": s.source} for name, s in self.values.items()},
            "files": {
                "user": {"path": str(self.user_file) if self.user_file else None,
                         "exists": bool(self.user_file and self.user_file.is_file())},
                "root": {"path": str(self.root_file), "exists": self.root_file.is_file()},
            },
        }  # fmt: skip

    def environment(self) -> dict[str, str]:
        """Environment a background service needs to see the same settings:
        the ``MEMDEX_*`` values in effect, and where the user file is. A database
        password is left out: a service definition is no place for it (libpq reads
        it from ~/.pgpass); so are an endpoint URL's user, password and key parameters."""
        found: dict[str, str] = {}
        for name, item in self.values.items():
            if item.source.startswith("env "):
                value = item.value
                if name == "db" and self.settings.database_url:
                    value = without_password(self.settings.database_url)[0]  # shown redacted; never the password
                elif name in URL_KEYS:
                    value = without_credentials(str(value))[0]  # a key there: the service's environment file
                joiner = os.pathsep if name == "session_folders" else ","
                found[KEYS[name].env] = joiner.join(value) if isinstance(value, tuple) else str(value)
        if self.user_file is not None and self.user_file.is_file():
            found[USER_FILE_ENV] = str(self.user_file)
        return found


def user_config_file(env: Mapping[str, str]) -> Path:
    """``MEMDEX_CONFIG``, else platformdirs' user config folder (``$XDG_CONFIG_HOME/memdex``)."""
    if env.get(USER_FILE_ENV):
        return Path(env[USER_FILE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("memdex", appauthor=False)) / CONFIG_FILE_NAME


def load_configuration(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    user_file: Path | None | bool = True,
) -> Configuration:
    """Resolve every setting and build ``Settings``. ``flags`` maps setting names to
    values given on the command line (None: not given); ``user_file=False`` skips the
    user file, a path replaces it."""
    env = os.environ if env is None else env
    flags = {name: value for name, value in (flags or {}).items() if value is not None}
    user_path = user_config_file(env) if user_file is True else (user_file or None)
    user_values = _read_file(user_path, "user file") if user_path is not None else {}

    values: dict[str, Source] = {}
    layers = _layers(flags, env)
    root_item = _pick("root", layers + [(f"user file {user_path}", user_values)])
    if root_item.source.startswith("user file") and not Path(root_item.value).expanduser().is_absolute():
        root_item = Source(str(user_path.parent / root_item.value), root_item.source)  # type: ignore[union-attr]
    values["root"] = root_item
    root = Path(root_item.value).expanduser()
    root_file = root / INDEX_DIR_NAME / CONFIG_FILE_NAME
    root_values = _read_file(root_file, "root file") if root.is_dir() else {}
    if "root" in root_values:
        raise ConfigError(f"{root_file}: 'root' can only be set in the user file, the environment or --root")
    for name in KEYS:
        if name != "root":
            values[name] = _pick(
                name, layers + [(f"root file {root_file}", root_values), (f"user file {user_path}", user_values)]
            )
    db_item = values["db"]
    db = db_item.value
    if (
        db is not None and not is_database_url(db) and db_item.source.startswith(("root file", "user file"))
        and not Path(db).expanduser().is_absolute()
    ):
        db = str(root / db)
    options = {KEYS[name].field: item.value for name, item in values.items() if KEYS[name].field}
    settings = make_settings(root, db, **options)
    values["root"] = Source(str(settings.root), values["root"].source)
    values["db"] = Source(settings.index_location, values["db"].source)
    return Configuration(
        settings=settings, values=values, user_file=user_path, root_file=settings.root / INDEX_DIR_NAME / CONFIG_FILE_NAME
    )


def _layers(flags: Mapping[str, Any], env: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    flag_values = {name: flags[name] for name in KEYS if name in flags}
    env_values = {name: env[key.env] for name, key in KEYS.items() if env.get(key.env, "").strip()}
    return [("flag", flag_values), ("env", env_values)]


def _pick(name: str, layers: list[tuple[str, dict[str, Any]]]) -> Source:
    key = KEYS[name]
    for label, found in layers:
        if name in found:
            where = {"flag": f"flag --{name.replace('_', '-')}", "env": f"env {key.env}"}.get(label, label)
            return Source(key.parse(found[name], f"{where}: {name}"), where)
    return Source(DEFAULTS[name], "default")


def _has_long_dotted_key(text: str) -> bool:
    """Whether a line's key (before its first '=', or a [table] header) has more than
    MAX_KEY_PARTS dotted parts. Linear in the text: a regular expression for it
    backtracked, and took hours on a 1 MiB file."""
    for line in text.splitlines():
        key = line.partition("=")[0] if "=" in line else line if line.lstrip().startswith("[") else ""
        if key.count(".") >= MAX_KEY_PARTS:
            return True
    return False


def _read_file(path: Path, what: str) -> dict[str, Any]:
    """A config file's table; a device, a FIFO, a file over 1 MiB or TOML nested
    too deeply for the parser is a one-line ``ConfigError`` naming the file."""
    try:
        data = read_small_file(path, what=what)
    except FileNotFoundError:
        return {}
    try:
        text = data.decode("utf-8")
        if _has_long_dotted_key(text):  # tomllib's memory grows with the square of a dotted key's length
            raise ConfigError(f"{path}: not a memdex config file (a key of more than {MAX_KEY_PARTS} dotted parts)")
        table = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a memdex config file (its arrays or tables are nested too deeply)") from None
    secret = sorted(set(table) & SECRET_NAMES)
    if secret:  # an API key in a file is refused without repeating it
        raise ConfigError(f"{path}: {secret[0]}: API keys are read only from the environment "
                          "(MEMDEX_EMBEDDING_KEY, MEMDEX_RERANK_KEY), never from a config file")  # fmt: skip
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(KEYS)})")
    deep = next((name for name, value in table.items() if _too_deep(value)), None)
    if deep is not None:  # no setting nests: a deep value would only recurse in the messages about it
        raise ConfigError(f"{path}: {deep}: expected text, a number, true/false or a list of text, got nested values")
    return table


def _too_deep(value: Any, limit: int = 2) -> bool:
    """True when ``value`` nests lists or tables more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False
