"""memdex's PostgreSQL schema, step by step: ``connection.migrate`` runs the steps a
server has not had yet, one transaction each, and records the version."""

from __future__ import annotations

from .access import ACCESS_MIGRATION, SCHEMA

# (name, SQL) in order; never edit a step that has shipped, add a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "create namespaces, files, stat cache, skipped files, chunks, postings, meta and the embedding cache",
        """
        CREATE TABLE namespaces(
            id serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            chunk_count bigint NOT NULL DEFAULT 0,
            token_count bigint NOT NULL DEFAULT 0,
            generation bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE meta(
            ns int NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
            key text NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (ns, key)
        );
        CREATE TABLE files(
            ns int NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
            path text NOT NULL,
            kind text NOT NULL,
            date text,
            hash text NOT NULL,
            frontmatter text NOT NULL DEFAULT '{}',
            title text NOT NULL DEFAULT '',
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (ns, path)
        );
        -- The stat cache is each host's own: (size, mtime, ctime, inode) mean nothing elsewhere.
        CREATE TABLE file_stats(
            ns int NOT NULL,
            host text NOT NULL,
            path text NOT NULL,
            size bigint NOT NULL,
            mtime_ns bigint NOT NULL,
            ctime_ns bigint NOT NULL,
            inode bigint NOT NULL,
            indexed_at_ns bigint NOT NULL,
            PRIMARY KEY (ns, host, path),
            FOREIGN KEY (ns, path) REFERENCES files(ns, path) ON DELETE CASCADE
        );
        CREATE TABLE skipped(
            ns int NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
            host text NOT NULL,
            path text NOT NULL,
            size bigint NOT NULL,
            mtime_ns bigint NOT NULL,
            ctime_ns bigint NOT NULL,
            inode bigint NOT NULL,
            reason text NOT NULL,
            skipped_at_ns bigint NOT NULL,
            PRIMARY KEY (ns, host, path)
        );
        CREATE TABLE chunks(
            id bigserial PRIMARY KEY,
            ns int NOT NULL,
            path text NOT NULL,
            start_line int NOT NULL,
            end_line int NOT NULL,
            heading text NOT NULL,
            text text NOT NULL,
            hash text NOT NULL,
            oversized boolean NOT NULL DEFAULT false,
            length int NOT NULL,
            FOREIGN KEY (ns, path) REFERENCES files(ns, path) ON DELETE CASCADE
        );
        CREATE INDEX chunks_by_path ON chunks(ns, path, start_line);
        -- The keyword index: one row per (stemmed term, chunk), with the term's
        -- column-weighted frequency and the chunk's length, for exact bm25.
        CREATE TABLE postings(
            term text NOT NULL,
            ns int NOT NULL,
            chunk_id bigint NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
            freq real NOT NULL,
            length int NOT NULL,
            PRIMARY KEY (term, ns, chunk_id)
        );
        CREATE INDEX postings_by_chunk ON postings(chunk_id);
        CREATE TABLE embeddings(
            model text NOT NULL,
            hash text NOT NULL,
            vector bytea NOT NULL,
            PRIMARY KEY (model, hash)
        );
        """,
    ),
    (
        "postings: the primary key carries freq and length, so bm25 scoring is an index-only scan",
        # A term's postings lie on as many heap pages as it has chunks (rows are written in
        # chunk order); scoring read every one of them. Covered, it reads the key's leaf pages.
        """
        SET LOCAL statement_timeout = 0;
        ALTER TABLE postings DROP CONSTRAINT postings_pkey;
        ALTER TABLE postings ADD CONSTRAINT postings_pkey PRIMARY KEY (term, ns, chunk_id) INCLUDE (freq, length);
        """,
    ),
    (
        "grants and row-level security per namespace, a per-namespace embedding cache, a stat cache per writer",
        ACCESS_MIGRATION,
    ),
    (
        "date each chunk itself (a session transcript's turns); NULL: its file's date",
        """
        ALTER TABLE chunks ADD COLUMN date text;
        """,
    ),
    (
        "postings: statement-level triggers check their chunks and delete them with their chunks (was a foreign key)",
        # The foreign key checked each new posting against chunks with one query per row (about
        # 60 per chunk): half the server's time of an index's writes. The same rule is now checked
        # once per statement, as one join of the new rows with chunks: a posting names a chunk of
        # its own namespace that its writer can see (row-level security applies, as the key's
        # (chunk_id, ns) did). A chunk's delete (a cascade from files too) deletes its postings,
        # by postings_by_chunk. check counts postings without a chunk.
        f"""
        SET LOCAL statement_timeout = 0;
        DO $$
        DECLARE
            found record;
        BEGIN
            FOR found IN SELECT conname FROM pg_constraint
                WHERE contype = 'f' AND conrelid = '{SCHEMA}.postings'::regclass LOOP
                EXECUTE format('ALTER TABLE {SCHEMA}.postings DROP CONSTRAINT %I', found.conname);
            END LOOP;
        END $$;
        CREATE FUNCTION {SCHEMA}.drop_postings() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            DELETE FROM {SCHEMA}.postings p USING gone g WHERE p.chunk_id = g.id AND p.ns = g.ns;
            RETURN NULL;
        END $$;
        CREATE TRIGGER chunks_drop_postings AFTER DELETE ON {SCHEMA}.chunks REFERENCING OLD TABLE AS gone
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.drop_postings();
        CREATE FUNCTION {SCHEMA}.check_postings() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM added a WHERE NOT EXISTS
                       (SELECT 1 FROM {SCHEMA}.chunks c WHERE c.id = a.chunk_id AND c.ns = a.ns)) THEN
                RAISE EXCEPTION 'a posting names no chunk of its namespace' USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER postings_inserted_check AFTER INSERT ON {SCHEMA}.postings REFERENCING NEW TABLE AS added
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.check_postings();
        CREATE TRIGGER postings_updated_check AFTER UPDATE ON {SCHEMA}.postings REFERENCING NEW TABLE AS added
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.check_postings();
        """,
    ),
    (
        (
            "chunks keep their terms; a chunk's delete finds its postings by the primary key (postings_by_chunk "
            "dropped); the postings' check probes each chunk once"
        ),
        # postings_by_chunk cost 40% of inserting the postings (bench/pg_write_profile.py: one btree
        # entry per posting, about 60 a chunk); a chunk's terms (one array on its row) let its
        # delete look its postings up by (term, ns, chunk_id) instead.
        f"""
        SET LOCAL statement_timeout = 0;
        ALTER TABLE {SCHEMA}.chunks ADD COLUMN terms text[] NOT NULL DEFAULT '{{}}';
        UPDATE {SCHEMA}.chunks c SET terms = t.terms
            FROM (SELECT chunk_id, ns, array_agg(term) AS terms FROM {SCHEMA}.postings GROUP BY chunk_id, ns) t
            WHERE t.chunk_id = c.id AND t.ns = c.ns;
        -- no default: a memdex started before this upgrade (it checks the schema when it opens)
        -- inserts chunks without terms, whose postings its delete would leave behind; it fails now
        ALTER TABLE {SCHEMA}.chunks ALTER COLUMN terms DROP DEFAULT;
        CREATE OR REPLACE FUNCTION {SCHEMA}.drop_postings() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            DELETE FROM {SCHEMA}.postings p USING (SELECT g.id, g.ns, unnest(g.terms) AS term FROM gone g) t
                WHERE p.term = t.term AND p.ns = t.ns AND p.chunk_id = t.id;
            RETURN NULL;
        END $$;
        DROP INDEX {SCHEMA}.postings_by_chunk;
        CREATE OR REPLACE FUNCTION {SCHEMA}.check_postings() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            -- each chunk once (not each of its ~60 postings): one probe of chunks per chunk
            IF EXISTS (SELECT 1 FROM (SELECT DISTINCT chunk_id, ns FROM added) a WHERE NOT EXISTS
                       (SELECT 1 FROM {SCHEMA}.chunks c WHERE c.id = a.chunk_id AND c.ns = a.ns)) THEN
                RAISE EXCEPTION 'a posting names no chunk of its namespace' USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN NULL;
        END $$;
        """,
    ),
    (
        "each writer's stat rows by size: status lists the transcripts over their bound without reading every file",
        f"""
        CREATE INDEX IF NOT EXISTS file_stats_by_size ON {SCHEMA}.file_stats(ns, host, root, size);
        """,
    ),
]
