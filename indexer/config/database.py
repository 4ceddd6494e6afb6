"""What ``--db`` names: a SQLite file, or a PostgreSQL server (a URL or a libpq keyword string).

A server's password is a secret: it is never shown (``redact``), never written into a
service definition or any other command line (``without_password``: libpq reads it from
``~/.pgpass``, ``PGPASSFILE``, a service file or ``PGPASSWORD`` instead), and a value that
looks like a connection string but is not a valid one is refused without echoing it
(``check_database``), rather than taken for a file name.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from indexer.errors import ConfigError

URL_SCHEMES = ("postgresql", "postgres")
# libpq's connection keywords (PostgreSQL 15-18); PostgreSQL itself rejects any other.
LIBPQ_KEYWORDS = frozenset(
    """host hostaddr port dbname user password passfile require_auth channel_binding connect_timeout
    client_encoding options application_name fallback_application_name keepalives keepalives_idle
    keepalives_interval keepalives_count tcp_user_timeout replication gssencmode sslmode requiressl
    sslcompression sslcert sslkey sslpassword sslcertmode sslrootcert sslcrl sslcrldir sslsni
    requirepeer ssl_min_protocol_version ssl_max_protocol_version krbsrvname gsslib gssdelegation
    service target_session_attrs load_balance_hosts sslnegotiation min_protocol_version
    max_protocol_version""".split()
)
SECRET_KEYWORDS = ("password", "sslpassword")
# A keyword string starts with `word=` (a file name rarely does: write ./a=b.db for one).
_KEYWORD_START = re.compile(r"\s*[A-Za-z_]+\s*=")
# One `keyword = value` pair: the value quoted ('...' with \' and \\) or a run without spaces.
_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)+|(?=\s|$))")
_URL_START = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def is_keyword_string(value: object) -> bool:
    return isinstance(value, str) and bool(_KEYWORD_START.match(value))


def is_database_url(value: object) -> bool:
    """True for a PostgreSQL server: a ``postgresql://`` URL or a libpq keyword string."""
    if not isinstance(value, str):
        return False
    return value.startswith(tuple(f"{scheme}://" for scheme in URL_SCHEMES)) or is_keyword_string(value)


def check_database(value: str) -> None:
    """Refuse, without echoing it, a ``--db`` value that tries to name a server and fails:
    another URL scheme, or a keyword string libpq would not parse."""
    scheme = _URL_START.match(value)
    if scheme and scheme[1].lower() not in URL_SCHEMES:
        raise ConfigError(
            f"--db: {scheme[1]}:// is not a database memdex can use; give a postgresql:// URL, "
            "a libpq keyword string (host=... dbname=...) or a SQLite file path"
        )
    if is_keyword_string(value):
        _keyword_pairs(value)


def _keyword_pairs(value: str) -> list[tuple[str, int, int, int]]:
    """(keyword, where the pair starts, where its value starts, where it ends) of each pair;
    a ConfigError that names no value otherwise."""
    pairs: list[tuple[str, int, int, int]] = []
    at = 0
    while value[at:].strip():
        found = _PAIR.match(value, at)
        if found is None:
            where = f" after {pairs[-1][0]}=" if pairs else ""
            raise ConfigError(f"--db: not a valid libpq connection string (expected keyword=value{where})")
        keyword = found[1].lower()
        if keyword not in LIBPQ_KEYWORDS:
            raise ConfigError(f"--db: not a valid libpq connection string (pair {len(pairs) + 1} has an unknown keyword)")
        pairs.append((keyword, found.start(1), found.start(2), found.end(2)))
        at = found.end()
    return pairs


def redact(database: str) -> str:
    """The server's address with any password replaced by ``***`` (for logs, status, errors)."""
    if is_keyword_string(database):
        try:
            pairs = _keyword_pairs(database)
        except ConfigError:
            return "(a libpq connection string)"
        text = database
        for keyword, _, start, end in reversed(pairs):
            if keyword in SECRET_KEYWORDS:
                text = text[:start] + "***" + text[end:]
        return text
    try:
        parts = urlsplit(database)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = re.sub(r"(?i)((?:ssl)?password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def without_password(database: str) -> tuple[str, bool]:
    """The server's address with the password left out, and whether it had one
    (for a service definition: libpq then finds the password in ``~/.pgpass``)."""
    if is_keyword_string(database):
        pairs = _keyword_pairs(database)
        kept = [database[start:end] for keyword, start, _, end in pairs if keyword not in SECRET_KEYWORDS]
        return " ".join(kept), len(kept) < len(pairs)
    parts = urlsplit(database)
    netloc, had = parts.netloc, False
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        had = ":" in userinfo
        netloc = f"{userinfo.split(':', 1)[0]}@{hostport}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept_query = [(key, value) for key, value in query if key.lower() not in SECRET_KEYWORDS]
    had = had or len(kept_query) < len(query)
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept_query), parts.fragment)), had
