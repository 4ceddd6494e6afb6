"""The PostgreSQL engine as a whole: one namespace of a server's ``memdex``
schema, its shared embedding cache, and a rebuild that replaces the namespace
in one transaction.

What differs from SQLite is only what a server changes: there is no index
file to quarantine (the server keeps its data consistent; a lost connection
is an error the next sync retries), a rebuild holds the namespace's advisory
lock and commits at once (searches see the old rows until then), and vector
search runs on the server's HNSW index: a process's first, and any while the
searched namespaces hold more than ``retrieval.warm.MATRIX_MAX_CHUNKS`` chunks;
otherwise a warm process scans the in-memory matrix as on SQLite (``matrix_fits``).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from indexer.config.settings import Settings
from indexer.errors import ConfigError, IndexerError, StorageError, one_line
from indexer.store.protocols import Build, VectorCache

from . import access
from . import connection as pg
from .cache import PgEmbeddingCache
from .parallel import StartedScan, VectorSide
from .snapshot import MetaChanged
from .store import PgStore

log = logging.getLogger(__name__)

Report = TypeVar("Report")


def open_engine(settings: Settings, *, write: bool) -> PgEngine:
    """This root's namespace on the server (the caller holds the writer lock);
    ``write=True`` creates or migrates the schema and the namespace."""
    store = PgStore(
        settings.database_url or "", namespace=settings.namespace_name, host=settings.host, write=write,
        search_namespaces=settings.search_namespaces, root=str(settings.root),
    )  # fmt: skip
    return PgEngine(settings, store)


def user_error(exc: BaseException, url: str | None = None) -> StorageError | None:
    """The one-line error for a PostgreSQL failure (naming the server without its password)."""
    return pg.user_error(exc, url)


class PgEngine:
    """One namespace of a PostgreSQL index (see ``store.protocols.Engine``)."""

    name = "postgresql"
    keeps_vectors_in_memory = True  # from a process's second search, up to a bound (matrix_fits)
    recovered_from: str | None = None  # a server keeps its pages consistent: nothing is repaired on open
    connection_replaced = False  # set by ``reconnected`` after a lost connection (see the protocol)

    def __init__(self, settings: Settings, store: PgStore) -> None:
        self.settings = settings
        self.store = store
        self.vector_side = VectorSide(store.url)  # a hybrid search's HNSW scan, in parallel (parallel.py)
        self._over_bound = False  # the last matrix_fits: the searched namespaces were too large

    def open_cache(self, *, model_id: str, dimensions: int) -> PgEmbeddingCache:
        return PgEmbeddingCache(self.store, model_id=model_id, dimensions=dimensions)

    def existing_cache(self, *, model_id: str, dimensions: int) -> PgEmbeddingCache:
        return self.store.shared_cache(model_id=model_id, dimensions=dimensions)

    def search_snapshot(self) -> Any:
        return self.store.read_snapshot()

    def start_nearest(self, source: Any, query: Any, k: int) -> Any:
        """Inside the search snapshot: ``source`` with its scan for ``query`` already running
        on the second connection, in this snapshot, while the keyword half runs on the first."""
        scan = self.vector_side.start(self.store, query, k)
        return source if scan is None else StartedScan(source, scan, query, k)

    def rebuild(self, build: Build[Report], cache: VectorCache) -> Report:
        """Re-index the namespace in one transaction, holding its advisory lock:
        other writers of the namespace wait, readers see the old rows."""
        conn = self.store.connection
        with pg.advisory_lock(conn, self.settings.namespace_name), conn.transaction():
            self._refuse_dropping_others()
            self.store.clear()
            return build(self.store, cache)

    def _refuse_dropping_others(self) -> None:
        """A rebuild makes the namespace this root's files: refused while it holds files another
        root or host wrote that this root lacks (an empty folder, or another model configured,
        must not wipe another writer's memory)."""
        root = self.settings.root
        lost = [path for path in self.store.unseen_files() if not (root / path).is_file()]
        if lost:
            raise ConfigError(
                f"rebuilding namespace {self.settings.namespace_name!r} from {root} would drop {len(lost)} files "
                f"another root or host wrote (e.g. {one_line(lost[0])}); rebuild from the root that has them"
            )

    def repair(self, reason: str, build: Build[Report], cache: VectorCache, *, writable: bool) -> Report | None:
        """Rows that do not match their Markdown (``check --repair``): rebuild the namespace."""
        log.warning("rebuilding namespace %s from the Markdown: %s", self.settings.namespace_name, one_line(reason))
        return self.rebuild(build, cache)

    def is_damage(self, exc: BaseException) -> bool:
        return False  # the server reports its own damage; memdex has no file to move aside

    def user_error(self, exc: BaseException) -> IndexerError | None:
        return pg.user_error(exc, self.settings.database_url)

    def reconnected(self, exc: BaseException) -> bool:
        """A connection the server dropped (a restart) is replaced on next use; a search
        served meta that its snapshot found changed runs again (``snapshot.MetaChanged``)."""
        if isinstance(exc, MetaChanged):
            log.debug("%s", exc)
            return True
        if isinstance(exc, StorageError) and self.store.lost_connection():
            log.info("the PostgreSQL connection was lost; reconnecting")
            self.connection_replaced = True
            return True
        return False

    def uses_vector_index(self) -> bool:
        return self.store.search_vector_table() is not None  # in a search: its snapshot's first statement's

    def matrix_fits(self, bound: int) -> bool:
        """Inside a search's snapshot: whether the searched namespaces hold at most ``bound``
        chunks (their vectors may be kept in memory). Above it the search scans HNSW on the
        second connection, which imports this snapshot: while the namespaces stay above,
        the snapshot's first statement also exports it (no round trip of its own)."""
        fits = self.store.searched_chunks(export=self._over_bound) <= bound
        self._over_bound = not fits
        return fits and self.uses_vector_index()  # a store without vectors has none to load

    def status(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "namespace": self.settings.namespace_name,
            "namespaces": self.store.namespaces(),
            "index_bytes": self.store.size_bytes(),
            "schema_version": pg.SCHEMA_VERSION,
            "vector_index": self.store.vector_index_state(),
        }

    def vector_search_name(self) -> str:
        """pgvector: HNSW once the vector table is past ``bulk.HNSW_MIN_ROWS`` rows, an exact
        scan below it (``status`` says which: ``vector_index``); a warm process scans its matrix."""
        return "pgvector"

    def storage_checks(self) -> list[str]:
        return []  # the server checks its own pages; the rows are checked against the Markdown

    def storage_notes(self) -> list[str]:
        return self.store.vector_index_notes()

    def replaced_on_disk(self) -> bool:
        return False  # the server's tables are not a file another process can swap

    def stored_lines(self, namespace: str, path: str) -> list[tuple[int, int, str]] | None:
        return self.store.stored_lines(namespace, path)

    def close(self) -> None:
        self.vector_side.close()
        self.store.close()


class Grants:
    """The owner's grants of namespaces to login roles (``access.py``). Each call
    connects, sets up or upgrades the schema first (only the owner may), and closes."""

    def __init__(self, url: str) -> None:
        self.url = url

    def grant(self, namespace: str, role: str, *, write: bool) -> dict[str, Any]:
        return self._run(access.grant, namespace, role, write=write)

    def revoke(self, namespace: str, role: str) -> dict[str, Any]:
        return self._run(access.revoke, namespace, role)

    def list(self) -> list[dict[str, Any]]:
        return self._run(access.list_grants)  # type: ignore[no-any-return]

    def _run(self, action: Any, *args: Any, **options: Any) -> Any:
        conn = pg.connect(self.url)
        try:
            pg.migrate(conn)
            return action(conn, *args, **options)
        except IndexerError:
            raise
        except Exception as exc:
            error = pg.user_error(exc, self.url)
            if error is not None:
                raise error from exc
            raise
        finally:
            conn.close()
