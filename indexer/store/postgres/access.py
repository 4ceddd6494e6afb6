"""Who may read and write which namespace on a shared server: grants, row-level
security, table privileges, and the owner's ``grant`` and ``revoke``.

The role that owns the ``memdex`` schema (the one that ran the migrations, or a
superuser) owns every table and sees every row. Any other login role sees and
changes only the namespaces in ``grants`` for it (or for a role it inherits
from): every table that carries a namespace id has row-level security with one
policy for reading (granted namespaces) and one for writing (namespaces granted
with write). That holds for memdex and for plain SQL alike. Table privileges
add a second wall: a role with read-only grants only has SELECT.

The grant check is a subquery wrapped in ``(SELECT ...)``, so PostgreSQL runs it
once per statement (an InitPlan), not once per row; a search pays about one
lookup in ``grants`` (bench/pg_rls_cost.py measures it).

Agents never create tables: the one table that appears after setup (the vector
table of a model's dimensions) is made by ``ensure_vector_table``, a SECURITY
DEFINER function that runs as the owner and only ever creates that one table.
The embedding cache is per namespace (``vector_cache``): a shared one would let
an agent read whether another namespace holds a given text, and write the vector
another namespace then uses for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from indexer.errors import ConfigError, SchemaError

SCHEMA = "memdex"
# Tables whose rows carry a namespace id in ``ns`` (the vector tables too, made later).
NAMESPACED = ("meta", "files", "file_stats", "skipped", "chunks", "postings", "vector_cache")
# What a role granted write may change; everything else it may only read.
WRITE_TABLES = NAMESPACED
NAMESPACE_COUNTERS = "chunk_count, token_count, generation"

# The namespace ids the current role may read (or write): its grants, and those of the
# roles it inherits from. Plain SQL (no SECURITY DEFINER): current_user is the caller, and
# ``grants`` shows each role only its own rows. A dropped role's rows match nobody.
_GRANTED = """
CREATE FUNCTION {schema}.granted_namespaces(writing boolean) RETURNS int[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(g.ns), '{{}}') FROM {schema}.grants g JOIN pg_roles r ON r.rolname = g.role
    WHERE pg_has_role(current_user, r.oid, 'USAGE') AND (g.write OR NOT writing)
$$;
"""

# Row-level security on one table with an ``ns`` column: read granted, write granted-for-write.
_PROTECT = """
CREATE FUNCTION {schema}.protect_table(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('ALTER TABLE {schema}.%I ENABLE ROW LEVEL SECURITY', name);
    EXECUTE format('CREATE POLICY granted_read ON {schema}.%I FOR SELECT '
                   'USING (ns = ANY ((SELECT {schema}.granted_namespaces(false))::int[]))', name);
    EXECUTE format('CREATE POLICY granted_write ON {schema}.%I FOR ALL '
                   'USING (ns = ANY ((SELECT {schema}.granted_namespaces(true))::int[])) '
                   'WITH CHECK (ns = ANY ((SELECT {schema}.granted_namespaces(true))::int[]))', name);
END $$;
"""

# One role's table privileges as its grants say: none without a grant, SELECT with read
# grants only, and the writes a sync makes with a write grant. RLS decides the rows.
_PRIVILEGES = """
CREATE FUNCTION {schema}.apply_privileges(grantee text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reads boolean := EXISTS (SELECT 1 FROM {schema}.grants WHERE role = grantee);
    writes boolean := EXISTS (SELECT 1 FROM {schema}.grants WHERE role = grantee AND write);
    vectors text;
    written text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = grantee)
       OR grantee = (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = '{schema}') THEN
        RETURN;  -- a dropped role; or the owner, whose privileges are its own
    END IF;
    SELECT string_agg(format('{schema}.%I', tablename), ', ') INTO vectors
        FROM pg_tables WHERE schemaname = '{schema}' AND tablename LIKE 'chunk\\_vectors\\_%';
    written := '{written}' || coalesce(', ' || vectors, '');
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM %I', grantee);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM %I', grantee);
    EXECUTE format('REVOKE ALL ON FUNCTION {schema}.ensure_vector_table(int) FROM %I', grantee);
    EXECUTE format('REVOKE ALL ON SCHEMA {schema} FROM %I', grantee);
    IF reads THEN
        EXECUTE format('GRANT USAGE ON SCHEMA {schema} TO %I', grantee);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO %I', grantee);
    END IF;
    IF writes THEN
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %s TO %I', written, grantee);
        EXECUTE format('GRANT UPDATE ({counters}) ON {schema}.namespaces TO %I', grantee);
        EXECUTE format('GRANT USAGE ON SEQUENCE {schema}.chunks_id_seq TO %I', grantee);
        EXECUTE format('GRANT EXECUTE ON FUNCTION {schema}.ensure_vector_table(int) TO %I', grantee);
    END IF;
END $$;
"""

# The vector table of ``dims`` dimensions, made as the owner when a writer needs it (an agent
# may not create tables), protected like the others, with every granted role's privileges.
_VECTOR_TABLE = """
CREATE FUNCTION {schema}.ensure_vector_table(dims int) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text := 'chunk_vectors_' || dims;
    ext text;
    grantee text;
BEGIN
    IF dims IS NULL OR dims < 1 OR dims > 2000 THEN
        RAISE EXCEPTION 'vector dimensions must be from 1 to 2000 (HNSW), not %', dims;
    END IF;
    IF to_regclass(format('{schema}.%I', name)) IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT n.nspname INTO ext FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'vector';
    EXECUTE format('CREATE TABLE {schema}.%I(chunk_id bigint PRIMARY KEY, ns int NOT NULL, '
                   'embedding %I.vector(%s) NOT NULL, FOREIGN KEY (chunk_id, ns) REFERENCES {schema}.chunks(id, ns) '
                   'ON DELETE CASCADE)', name, ext, dims);
    EXECUTE format('CREATE INDEX %I ON {schema}.%I USING hnsw (embedding %I.vector_cosine_ops)',
                   name || '_hnsw', name, ext);
    PERFORM {schema}.protect_table(name);
    FOR grantee IN SELECT DISTINCT role FROM {schema}.grants LOOP
        PERFORM {schema}.apply_privileges(grantee);
    END LOOP;
END $$;
"""


def _sql(template: str) -> str:
    written = ", ".join(f"{SCHEMA}.{table}" for table in WRITE_TABLES)
    return template.format(schema=SCHEMA, written=written, counters=NAMESPACE_COUNTERS)


# Migration 3 (migrations.MIGRATIONS): grants, row-level security, a per-namespace embedding
# cache, and a stat cache per writer (host and root) that remembers the hash it saw.
ACCESS_MIGRATION = f"""
SET LOCAL statement_timeout = 0;
CREATE TABLE grants(
    ns int NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    role text NOT NULL,
    write boolean NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ns, role)
);
CREATE TABLE vector_cache(
    ns int NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    model text NOT NULL,
    hash text NOT NULL,
    vector bytea NOT NULL,
    PRIMARY KEY (ns, model, hash)
);
-- Each namespace keeps the cached vectors of its own chunks.
INSERT INTO vector_cache(ns, model, hash, vector)
    SELECT c.ns, e.model, e.hash, e.vector FROM embeddings e JOIN (SELECT DISTINCT ns, hash FROM chunks) c
    ON c.hash = e.hash;
DROP TABLE embeddings;
ALTER TABLE file_stats ADD COLUMN root text NOT NULL DEFAULT '', ADD COLUMN hash text NOT NULL DEFAULT '';
UPDATE file_stats s SET hash = f.hash FROM files f WHERE f.ns = s.ns AND f.path = s.path;
ALTER TABLE file_stats DROP CONSTRAINT file_stats_pkey, ADD PRIMARY KEY (ns, host, root, path);
-- A row that points at a chunk names the chunk's namespace too: a foreign-key check
-- ignores row-level security, so a writer of one namespace could otherwise attach rows to
-- another's chunks (and learn which ids exist). NOT VALID: enforced for every new row at
-- once, without reading the existing ones (which only ever held their own namespace).
ALTER TABLE chunks ADD CONSTRAINT chunks_id_ns UNIQUE (id, ns);
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN SELECT c.conrelid::regclass AS tab, c.conname FROM pg_constraint c
        WHERE c.contype = 'f' AND c.confrelid = '{SCHEMA}.chunks'::regclass AND array_length(c.conkey, 1) = 1 LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', found.tab, found.conname);
        EXECUTE format('ALTER TABLE %s ADD FOREIGN KEY (chunk_id, ns) REFERENCES {SCHEMA}.chunks(id, ns) '
                       'ON DELETE CASCADE NOT VALID', found.tab);
    END LOOP;
END $$;
ALTER TABLE skipped ADD COLUMN root text NOT NULL DEFAULT '';
ALTER TABLE skipped DROP CONSTRAINT skipped_pkey, ADD PRIMARY KEY (ns, host, root, path);
{_sql(_GRANTED)}
{_sql(_PROTECT)}
{_sql(_VECTOR_TABLE)}
{_sql(_PRIVILEGES)}
REVOKE ALL ON FUNCTION ensure_vector_table(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION apply_privileges(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION protect_table(text) FROM PUBLIC;
ALTER TABLE grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON grants FOR SELECT USING (
    EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grants.role AND pg_has_role(current_user, r.oid, 'USAGE'))
);
ALTER TABLE namespaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted_read ON namespaces FOR SELECT USING (id = ANY ((SELECT granted_namespaces(false))::int[]));
CREATE POLICY granted_write ON namespaces FOR UPDATE USING (id = ANY ((SELECT granted_namespaces(true))::int[]))
    WITH CHECK (id = ANY ((SELECT granted_namespaces(true))::int[]));
SELECT protect_table(t) FROM unnest(ARRAY{list(NAMESPACED)!r}) AS t;
SELECT protect_table(tablename) FROM pg_tables WHERE schemaname = '{SCHEMA}' AND tablename LIKE 'chunk\\_vectors\\_%';
"""


@dataclass(frozen=True)
class Access:
    """What the connected role may do: everything (the schema's owner), or its grants."""

    role: str
    owner: bool
    schema_owner: str

    def owner_hint(self, namespace: str) -> str:
        return f"the owner grants it: memdex --db OWNER_URL --namespace {namespace} grant {self.role}"


def access_of(connection: Any) -> Access:
    """The connected role and whether it owns memdex's schema (a superuser does too)."""
    role, owner, schema_owner = connection.execute(
        "SELECT current_user, pg_has_role(current_user, nspowner, 'USAGE') "
        "OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), nspowner::regrole::text "
        "FROM pg_namespace WHERE nspname = %s",
        (SCHEMA,),
    ).fetchone()
    return Access(role=role, owner=bool(owner), schema_owner=schema_owner)


def may_write(connection: Any, namespace_id: int) -> bool:
    (allowed,) = connection.execute(
        f"SELECT %s = ANY({SCHEMA}.granted_namespaces(true))", (namespace_id,)
    ).fetchone()
    return bool(allowed)


def readable_names(connection: Any) -> list[str]:
    return [row[0] for row in connection.execute("SELECT name FROM namespaces ORDER BY name")]


def _require_owner(connection: Any) -> Access:
    access = access_of(connection)
    if not access.owner:
        raise ConfigError(
            f"only the owner of memdex's schema (role {access.schema_owner}) may grant or revoke; "
            f"role {access.role} is not it"
        )
    return access


def _require_role(connection: Any, role: str) -> None:
    if not role or connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        raise ConfigError(
            f"no role {role!r} on the server; create it first (CREATE ROLE name LOGIN PASSWORD '...')"
        )


def grant(connection: Any, namespace: str, role: str, *, write: bool) -> dict[str, Any]:
    """Give ``role`` the namespace (created empty if new), read-only or read and write."""
    access = _require_owner(connection)
    _require_role(connection, role)
    (bypasses,) = connection.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    if role == access.schema_owner or bypasses:
        raise ConfigError(f"role {role} owns memdex's schema or bypasses row-level security: it sees every namespace already")
    with connection.transaction():
        connection.execute(
            "INSERT INTO namespaces(name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (namespace,)
        )
        (ns,) = connection.execute("SELECT id FROM namespaces WHERE name = %s", (namespace,)).fetchone()
        connection.execute(
            "INSERT INTO grants(ns, role, write) VALUES (%s, %s, %s) "
            "ON CONFLICT (ns, role) DO UPDATE SET write = excluded.write, granted_at = now()",
            (ns, role, write),
        )
        connection.execute("SELECT apply_privileges(%s)", (role,))
    return {"namespace": namespace, "role": role, "access": "read-write" if write else "read-only"}


def revoke(connection: Any, namespace: str, role: str) -> dict[str, Any]:
    """Take the namespace away from ``role`` (its other grants stay)."""
    _require_owner(connection)
    with connection.transaction():
        removed = connection.execute(
            "DELETE FROM grants g USING namespaces n WHERE n.id = g.ns AND n.name = %s AND g.role = %s RETURNING g.ns",
            (namespace, role),
        ).fetchall()
        if not removed:
            raise ConfigError(f"role {role!r} has no grant on namespace {namespace!r}")
        connection.execute("SELECT apply_privileges(%s)", (role,))
    return {"namespace": namespace, "role": role, "access": "none"}


def list_grants(connection: Any) -> list[dict[str, Any]]:
    """Every grant (the owner sees all; another role its own)."""
    rows = connection.execute(
        "SELECT n.name, g.role, g.write FROM grants g JOIN namespaces n ON n.id = g.ns ORDER BY n.name, g.role"
    )
    return [{"namespace": name, "role": role, "access": "read-write" if write else "read-only"} for name, role, write in rows]


def no_schema_access(role: str, url: str) -> SchemaError:
    return SchemaError(
        f"role {role} may not read memdex's schema at {url}; the owner grants it a namespace: "
        f"memdex --db OWNER_URL --namespace NAMESPACE grant {role}"
    )
