"""What ``--db`` names: a SQLite file, or a PostgreSQL server (a URL or a libpq keyword string).

A server's password is a secret: it is never shown (``redact``), never written into a
service definition or any other command line (``without_password``: libpq reads it from
``~/.pgpass``, ``PGPASSFILE``, a service file or ``PGPASSWORD`` instead), and a value that
looks like a connection string but is not a valid one is refused without echoing it
(``check_database``), rather than taken for a file name.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

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
    return _rebuild_url(database, mask="***")[0]


def without_password(database: str) -> tuple[str, bool]:
    """The server's address with the password left out, and whether it had one
    (for a service definition: libpq then finds the password in ``~/.pgpass``)."""
    if is_keyword_string(database):
        pairs = _keyword_pairs(database)
        kept = [database[start:end] for keyword, start, _, end in pairs if keyword not in SECRET_KEYWORDS]
        return " ".join(kept), len(kept) < len(pairs)
    return _rebuild_url(database, mask=None)


def scrub(text: str, database: str | None) -> str:
    """``text`` (say, a driver's error message) with the address redacted and every secret
    in it replaced by ``***``, as written or percent-decoded (libpq quotes bad tokens)."""
    if not database:
        return text
    text = text.replace(database, redact(database))
    for secret in sorted(_secrets(database), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _secrets(database: str) -> set[str]:
    found: set[str] = set()
    if is_keyword_string(database):
        try:
            pairs = _keyword_pairs(database)
        except ConfigError:
            return found
        for keyword, _, start, end in pairs:
            if keyword in SECRET_KEYWORDS:
                raw = database[start:end]
                found |= {raw, raw.strip("'"), re.sub(r"\\(.)", r"\1", raw.strip("'"))}
    else:
        _, _, values = _url_parts(database)
        for raw in values:
            found |= {raw, unquote(raw)}
    return {secret for secret in found if secret}


def _url_parts(url: str) -> tuple[str, list[str], list[str]]:
    """A ``postgresql://`` URL split the way libpq splits it: the user information ends at
    the first ``@`` before any ``/`` (so a password may hold ``#``, ``?`` or ``[``), and the
    parameters follow the first ``?`` after it. Returns (the URL, its pieces in order as
    [scheme, userinfo-or-'', rest, query-or-''], the raw secret values)."""
    scheme, sep, body = url.partition("://")
    cut = min((i for i in (body.find("@"), body.find("/")) if i >= 0), default=-1)
    userinfo, rest = (body[:cut], body[cut + 1 :]) if cut >= 0 and body[cut] == "@" else ("", body)
    base, mark, query = rest.partition("?")
    secrets = []
    if ":" in userinfo:
        secrets.append(userinfo.split(":", 1)[1])
    for item in query.split("&") if mark else []:
        key, _, value = item.partition("=")
        if unquote(key).lower() in SECRET_KEYWORDS:
            secrets.append(value)
    return url, [scheme + sep, userinfo, base, query if mark else ""], secrets


def _rebuild_url(url: str, *, mask: str | None) -> tuple[str, bool]:
    """The URL with its secrets masked (``mask``) or dropped (None), other text verbatim."""
    _, (prefix, userinfo, base, query), _ = _url_parts(url)
    had = False
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        userinfo, had = (f"{user}:{mask}" if mask is not None else user), True
    items = []
    for item in query.split("&") if query else []:
        key, sign, _ = item.partition("=")
        if unquote(key).lower() in SECRET_KEYWORDS:
            had = True
            if mask is None:
                continue
            item = f"{key}{sign}{mask}"
        items.append(item)
    text = prefix + (f"{userinfo}@" if userinfo else "") + base + ("?" + "&".join(items) if items else "")
    return text, had
