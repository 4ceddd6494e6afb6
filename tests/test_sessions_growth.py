"""A transcript that keeps growing (issue 21, defects left open by issue 18): past its size
bound its whole lines within the bound are indexed, by a sync as by a rebuild (said once;
``status`` and ``check`` tell), and a bad line read before is not warned about again on
every append. Both engines."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EngineKind, RecordingEmbedder, write
from test_sessions import jsonl

from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.config.settings import Settings
from indexer.errors import PathError, mib
from indexer.indexing.check import HEALTHY, check_index
from indexer.indexing.prepare import over_bound
from indexer.sources.discover import FileStamp
from indexer.sources.read import read_excerpt

PATH = "sessions/chats/s.jsonl"


def turns(*texts: str, minute: int = 0) -> str:
    return jsonl(*(
        {"role": "user", "content": text, "timestamp": f"2026-11-01T09:{minute + n:02d}:00Z"}
        for n, text in enumerate(texts)
    ))  # fmt: skip


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def synced(settings: Settings) -> Any:
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        return index.sync()


def found(settings: Settings, query: str) -> list[str]:
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return [hit.path for hit in index.search(query, mode="keyword")]


def status_and_check(settings: Settings) -> tuple[dict[str, Any], Any]:
    embedder = RecordingEmbedder()
    with open_index(settings, embedder=embedder) as index:
        return index.status(), check_index(settings, index.engine, model_id=embedder.model_id)


def same_index(a: Settings, b: Settings) -> bool:
    with open_index(a, embedder=RecordingEmbedder()) as one, open_index(b, embedder=RecordingEmbedder()) as two:
        return bool(one.store.snapshot() == two.store.snapshot())


def snapshot_of(settings: Settings) -> Any:
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return index.store.snapshot()


def over_bound_transcript(tmp_path: Path, engine_kind: EngineKind) -> tuple[Path, Settings, str]:
    """A transcript synced within its bound; returns its path, the settings and lines that take it past."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    write(root, "MEMORY.md", "# Facts\n\n- the spare key is under the flowerpot\n")
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen", "filler words " * 20))
    bound = 3 * log.stat().st_size
    settings = engine_kind.settings(root, session_folders=[str(chats)], session_max_file_bytes=bound)
    assert synced(settings).reindexed == 2
    chatter = (f"more filler chatter number {n} " * 6 for n in range(30))
    filler = turns(*chatter, "the lighthouse keeper waved", minute=5)
    assert len(filler) > bound
    return log, settings, filler


def test_a_transcript_that_grows_past_its_bound_is_indexed_within_it(engine_kind: EngineKind, tmp_path: Path) -> None:
    """Past ``session_max_file_bytes`` a transcript is indexed as its whole lines within the bound,
    by a sync as by a fresh index (DESIGN invariant 1; a rebuild skipped it whole): one warning,
    later appends change nothing indexed and say nothing, status lists it as partly indexed,
    check is healthy with a note, and a raised bound indexes the rest."""
    log, settings, filler = over_bound_transcript(tmp_path, engine_kind)
    bound = settings.session_max_file_bytes
    append(log, filler)
    within = log.read_bytes()[:bound]
    lines_within = within.count(b"\n")

    grown = synced(settings)
    assert grown.removed == 0 and grown.reindexed == 1
    (warning,) = grown.warnings
    assert warning.startswith(f"{PATH}: only its first ") and "raise session_max_file_bytes" in warning
    assert "0.0 MiB" not in warning  # a small bound is still a size (it read "the 0.0 MiB limit")
    assert found(settings, "ferry pier nineteen") == [PATH]
    assert found(settings, "more filler chatter number 1") == [PATH]  # lines after the old end, within the bound
    assert found(settings, "lighthouse keeper") == []
    with open_index(settings, embedder=RecordingEmbedder()) as index:  # get serves what it cites
        (hit,) = index.search("ferry pier nineteen", mode="keyword")
        assert index.get(f"{PATH}:{hit.start_line}-{hit.end_line}").lines[0].endswith("pier nineteen")
        assert len(index.get(f"{PATH}:1-{lines_within}").lines) == lines_within
        with pytest.raises(PathError, match="limit"):
            index.get(PATH)  # the whole file is not served
        with pytest.raises(PathError, match="past the first"):
            index.get(f"{PATH}:1-{lines_within + 1}")  # nor its lines past the bound
    options = {"sessions": settings.session_labels, "session_max_bytes": bound}
    excerpt = read_excerpt(settings.root, PATH, **options)
    assert excerpt.lines[0].endswith("pier nineteen") and excerpt.next_line == lines_within + 1
    with pytest.raises(PathError, match="past the first"):
        read_excerpt(settings.root, PATH, start=excerpt.next_line, **options)
    fresh = engine_kind.fresh(settings)
    assert synced(fresh).warnings == [warning]
    assert same_index(settings, fresh)

    append(log, turns("and the otters came back", minute=40))
    again = synced(settings)
    assert again.warnings == [] and again.removed == 0 and again.reindexed == 0 and again.unchanged_hash >= 1
    assert synced(settings).warnings == []  # unchanged since: nothing read
    status, verdict = status_and_check(settings)
    assert status["partly_indexed"] == [PATH] and status["skipped"] == []
    assert status["by_kind"]["session"]["files"] == 1
    assert verdict.exit_code == HEALTHY, verdict.problems
    assert any(PATH in note and "over session_max_file_bytes" in note for note in verdict.notes), verdict.notes

    past = time.time() - 10
    os.utime(log, (past, past))  # its stamp is trusted: only the raised bound makes a sync read it
    synced(settings)
    raised = dataclasses.replace(settings, session_max_file_bytes=64 * 2**20)
    rest = synced(raised)
    assert rest.reindexed == 1 and rest.warnings == []
    assert found(raised, "lighthouse keeper") == [PATH] and found(raised, "ferry pier nineteen") == [PATH]
    status, verdict = status_and_check(raised)
    assert status["partly_indexed"] == [] and verdict.exit_code == HEALTHY and verdict.notes == [], verdict.as_dict()
    fresh = engine_kind.fresh(raised)
    synced(fresh)
    assert same_index(raised, fresh)
    os.utime(log, (past, past))
    synced(raised)
    lowered = synced(settings)  # and back: the transcript is read again, within the bound
    assert lowered.reindexed == 1 and lowered.warnings == [f"{PATH}: {over_bound(log.stat().st_size, settings.session_max_file_bytes)}"]
    assert found(settings, "lighthouse keeper") == [] and status_and_check(settings)[1].exit_code == HEALTHY
    fresh = engine_kind.fresh(settings)
    synced(fresh)
    assert same_index(settings, fresh)


def test_an_over_bound_transcript_is_indexed_alike_by_sync_rebuild_and_a_model_change(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """The review's repro (pastbound.py, pastbound_model.py): after growing past its bound, a
    rebuild and a sync with another model lost every chunk of the transcript."""
    log, settings, filler = over_bound_transcript(tmp_path, engine_kind)
    append(log, filler)
    synced(settings)
    append(log, turns("and the otters came back", minute=40))
    synced(settings)
    incremental = snapshot_of(settings)
    assert found(settings, "ferry pier nineteen") == [PATH]
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        (warning,) = index.rebuild().warnings
    assert warning.startswith(f"{PATH}: only its first ")
    assert snapshot_of(settings) == incremental and found(settings, "ferry pier nineteen") == [PATH]
    with open_index(settings, write=True, embedder=RecordingEmbedder(model_id="test/other")) as index:
        index.sync()
    with open_index(settings, embedder=RecordingEmbedder(model_id="test/other")) as index:
        assert [hit.path for hit in index.search("ferry pier nineteen", mode="keyword")] == [PATH]
        assert [hit.path for hit in index.search("more filler chatter number 1", mode="keyword")] == [PATH]


def test_a_transcript_rewritten_past_its_bound_is_indexed_as_a_fresh_index_would(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """A log whose indexed lines changed (not only grew) and went past its bound is read again
    from its first line: its rows are those of a fresh index."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    root.mkdir()
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen", "filler words " * 20))
    bound = 3 * log.stat().st_size
    settings = engine_kind.settings(root, session_folders=[str(chats)], session_max_file_bytes=bound)
    assert synced(settings).reindexed == 1
    with log.open("r+b") as handle:  # the same file (inode), its first line changed, then past the bound
        handle.write(log.read_bytes().split(b"\n", 1)[0].replace(b"nineteen", b"twenty!!"))
        handle.seek(0, 2)
        handle.write(turns(*(f"more filler chatter number {n} " * 6 for n in range(30)), minute=5).encode())
    report = synced(settings)
    assert report.removed == 0 and report.reindexed == 1 and len(report.warnings) == 1
    assert found(settings, "ferry pier twenty") == [PATH] and found(settings, "nineteen") == []
    fresh = engine_kind.fresh(settings)
    synced(fresh)
    assert same_index(settings, fresh)


def test_a_transcript_an_older_memdex_skipped_as_too_large_is_indexed_within_its_bound(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """An index from before: the transcript over its bound is recorded as skipped (too large),
    with its stamp. The next sync indexes it within the bound (it is not "still skipped"), and
    a record left beside rows whose hash is the same is forgotten (status lists no skip)."""
    log, settings, filler = over_bound_transcript(tmp_path, engine_kind)
    append(log, filler)
    past = time.time() - 10
    os.utime(log, (past, past))
    synced(settings)
    reason = "0.1 MiB is over the 0.0 MiB limit"
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:  # as an older memdex left it
        index.store.remove_file(PATH)
        index.store.record_skipped(PATH, FileStamp.of(os.stat(log)), reason=reason, skipped_at_ns=time.time_ns())
    assert found(settings, "ferry pier nineteen") == []
    assert synced(settings).reindexed == 1
    assert found(settings, "ferry pier nineteen") == [PATH] and status_and_check(settings)[0]["skipped"] == []
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:  # rows kept beside a record
        index.store.record_skipped(PATH, FileStamp.of(os.stat(log)), reason=reason, skipped_at_ns=time.time_ns())
    os.utime(log, (past + 1, past + 1))
    assert synced(settings).unchanged_hash >= 1
    status, verdict = status_and_check(settings)
    assert status["skipped"] == [] and status["partly_indexed"] == [PATH] and verdict.exit_code == HEALTHY


def test_a_bad_line_is_warned_about_once_however_often_the_transcript_grows(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """Lines after the last chunk's start are parsed again on every append: a line over 4 MiB
    (or not JSON) there was warned about again each time (review of issue 18). Now only lines
    that were not whole before are; a line that was being written is warned about once done."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    root.mkdir()
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen"))
    append(log, '{"role": "user", "content": "' + "x" * (4 * 2**20) + '"}\n')  # line 2: over 4 MiB
    append(log, "not json at all\n")  # line 3
    settings = engine_kind.settings(root, session_folders=[str(chats)])
    first = synced(settings)
    assert first.warnings == [f"{PATH}: line 2: skipped, longer than 4 MiB", f"{PATH}: line 3: skipped, not JSON"]
    append(log, turns("the otters came back", minute=5) + '{"role": "user", "con')  # line 5 is being written
    second = synced(settings)
    assert second.tail_only == 1 and second.warnings == []
    assert found(settings, "otters") == [PATH]
    append(log, "tent is broken\n")  # line 5, done: not JSON
    third = synced(settings)
    assert third.tail_only == 1 and third.warnings == [f"{PATH}: line 5: skipped, not JSON"]


def test_a_sync_stopped_while_the_bound_changes_reads_the_transcripts_again_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound raised, and the sync stopped before it marked the transcripts to read again:
    the next sync still reads them within the new bound (review: the new bound was stored
    first, so the next sync marked nothing and the index kept the old bound's part for good)."""
    from indexer.store.sqlite.store import Store

    engine = EngineKind("sqlite", None, lambda: Path(tempfile.mkdtemp(dir=tmp_path)))
    log, settings, filler = over_bound_transcript(tmp_path, engine)
    append(log, filler)
    synced(settings)
    past = time.time() - 10
    os.utime(log, (past, past))
    synced(settings)
    raised = dataclasses.replace(settings, session_max_file_bytes=64 * 2**20)

    def interrupted(self: Store, paths: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Store, "invalidate_files", interrupted)
        with pytest.raises(KeyboardInterrupt):
            synced(raised)
    assert synced(raised).reindexed == 1
    fresh = engine.fresh(raised)
    synced(fresh)
    assert same_index(raised, fresh)


def test_an_over_bound_transcript_appended_to_while_embedded_is_not_read_again(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """A transcript over its bound grows while its chunks are embedded: it only grew, so it is
    written as read, without a second read (review: the check compared the whole file's first
    bytes with the hash of the part within the bound, so it always looked rewritten)."""
    log, settings, filler = over_bound_transcript(tmp_path, engine_kind)
    append(log, filler)

    class AppendsWhileEmbedding(RecordingEmbedder):
        def embed(self, texts: Any) -> Any:
            if not self.calls:
                append(log, turns("and the otters came back", minute=40))
            self.calls.append(len(texts))
            return super().embed(texts)

    embedder = AppendsWhileEmbedding()
    embedder.calls = []
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
    assert embedder.calls and report.reindexed == 1 and report.reread == 0
    assert found(settings, "more filler chatter number 1") == [PATH] and found(settings, "otters") == []
    again = synced(settings)  # the newer stamp: read, and within the bound nothing changed
    assert again.reindexed == 0 and again.unchanged_hash >= 1 and again.warnings == []
    fresh = engine_kind.fresh(settings)
    synced(fresh)
    assert same_index(settings, fresh)


def test_a_transcript_whose_first_line_is_longer_than_its_bound_is_said_to_have_nothing_indexed(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """No whole line lies within the bound, so nothing of the transcript is indexed: the warning,
    status and check say so (review: they said "only its first N MiB are indexed"), search finds
    none of it and get serves none of it, with the same reason."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    write(root, "MEMORY.md", "# Facts\n\n- the spare key is under the flowerpot\n")
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen " + "filler " * 400, "otters swim"))
    bound = len(log.read_bytes().split(b"\n")[0]) // 2
    settings = engine_kind.settings(root, session_folders=[str(chats)], session_max_file_bytes=bound)
    report = synced(settings)
    limit = mib(bound)
    assert report.warnings == [
        f"{PATH}: its first line is longer than the {limit} limit, so nothing of it is indexed "
        f"(raise session_max_file_bytes to index it): {mib(log.stat().st_size)} is over the {limit} limit"
    ]
    assert found(settings, "ferry pier nineteen") == [] and found(settings, "otters") == []
    status, verdict = status_and_check(settings)
    assert status["first_line_over_bound"] == [PATH] and status["partly_indexed"] == []
    assert verdict.exit_code == HEALTHY, verdict.problems
    assert verdict.notes == [
        f"1 transcripts have a first line longer than the {limit} limit (session_max_file_bytes; {PATH}): "
        "nothing of them is indexed"
    ]
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        with pytest.raises(PathError, match="its first line is longer than the .* limit"):
            index.get(f"{PATH}:1")
        with pytest.raises(PathError, match="limit"):
            index.get(PATH)
    with pytest.raises(PathError, match="its first line is longer than the .* limit"):
        read_excerpt(settings.root, PATH, sessions=settings.session_labels, session_max_bytes=bound)
    where = ["--db", settings.database_url, "--namespace", settings.namespace] if settings.database_url else []
    shown = CliRunner(env={"MEMDEX_ROOT": None, "MEMDEX_SESSION_MAX_FILE_BYTES": str(bound)}).invoke(
        cli, ["--root", str(root), "--session-folder", str(chats), *where, "status"]
    )
    assert shown.exit_code == 0, shown.output
    assert f"not indexed: {PATH}: its first line is longer than the {limit} limit" in shown.output
    assert "partly indexed" not in shown.output
    past = time.time() - 10
    os.utime(log, (past, past))
    assert synced(settings).warnings == []  # said once
    append(log, turns("the lighthouse keeper waved", minute=5))  # past the bound: still no whole line within it
    assert synced(settings).warnings == [] and found(settings, "lighthouse") == []


@pytest.mark.postgres
def test_two_writers_of_a_namespace_with_different_bounds_agree_on_the_larger(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hosts share a namespace with different ``session_max_file_bytes``: the index's bound is
    the larger, the smaller host is told once, and later syncs read nothing again (review: each
    sync stored its own bound, flipping it, and read every over-bound transcript again)."""
    namespace = f"bound-{uuid.uuid4().hex[:12]}"
    logs, hosts = {}, {}
    for name in ("small", "large"):
        chats = tmp_path / name / "chats"
        logs[name] = write(chats, f"{name}.jsonl", turns(f"the {name} ferry leaves from pier nineteen",
                                                          "filler words " * 20))  # fmt: skip
    low = 3 * logs["small"].stat().st_size
    for name in ("small", "large"):
        chatter = (f"{name} chatter number {n} " * 6 for n in range(60))
        last = "the zebra keeper waved" if name == "small" else "the lighthouse keeper waved"
        append(logs[name], turns(*chatter, last, minute=5))
        (tmp_path / name / "memory").mkdir()
        hosts[name] = make_settings(
            tmp_path / name / "memory", pg_url, namespace=namespace, session_folders=[str(logs[name].parent)],
            session_max_file_bytes=low if name == "small" else 64 * 2**20,
        )  # fmt: skip
    small, large = hosts["small"], hosts["large"]
    path = "sessions/chats/small.jsonl"
    past = time.time() - 10
    for log in logs.values():
        os.utime(log, (past, past))  # their stamps are trusted: only a changed bound makes a sync read them

    def sync(settings: Settings, host: str) -> Any:
        monkeypatch.setenv("MEMDEX_HOST", host)
        report = synced(settings)
        report.warnings = [w for w in report.warnings if "another root or host wrote them" not in w]  # the other's file
        return report

    first = sync(small, "small-host")
    assert first.reindexed == 1 and first.warnings == [f"{path}: {over_bound(logs['small'].stat().st_size, low)}"]
    assert found(small, "zebra") == []
    assert sync(large, "large-host").warnings == []
    told = sync(small, "small-host")  # the larger bound is the index's: its transcript is read within it
    assert told.reindexed == 1 and told.warnings == [
        f"session_max_file_bytes is {mib(low)} here, but another writer of this index set 64.0 MiB: "
        "its transcripts are indexed within the larger, 64.0 MiB"
    ]
    assert found(small, "zebra") == [path] and found(small, "lighthouse") == ["sessions/chats/large.jsonl"]
    for _ in range(2):  # no flip: nothing is read again, nothing said again
        for settings, host in ((small, "small-host"), (large, "large-host")):
            report = sync(settings, host)
            assert report.reindexed == 0 and report.warnings == [], (host, report)
    monkeypatch.setenv("MEMDEX_HOST", "small-host")
    status, verdict = status_and_check(small)
    assert status["session_max_file_bytes"] == 64 * 2**20 and status["partly_indexed"] == []
    assert verdict.exit_code == HEALTHY and not [note for note in verdict.notes if "session" in note.split("(")[0]]
    with open_index(small, embedder=RecordingEmbedder()) as index:
        (hit,) = index.search("zebra", mode="keyword")
        assert index.get(f"{hit.path}:{hit.start_line}-{hit.end_line}").lines[-1].endswith("zebra keeper waved")
    with open_index(small, write=True, embedder=RecordingEmbedder()) as index:  # the large host last synced long ago
        key = f"session_max_file_bytes@large-host:{large.root}"
        setting, bound, _ = index.store.meta()[key].split(":")
        index.store.set_meta(**{key: f"{setting}:{bound}:{int(time.time()) - 31 * 86400}"})
        fresh, later, unknown = (f"session_max_file_bytes@{name}:/x" for name in ("third", "later-memdex", "unknown"))
        now = int(time.time())
        index.store.set_meta(**{fresh: f"{low}:{low}:{now}", later: f"{low}:{low}:{now}:a later field", unknown: "x"})
    retired = sync(small, "small-host")  # it no longer counts: the small host's bound is the index's
    assert retired.reindexed == 1 and found(small, "zebra") == []
    assert retired.warnings == [f"{path}: {over_bound(logs['small'].stat().st_size, low)}"]
    with open_index(small, embedder=RecordingEmbedder()) as index:  # its record went with that sync's meta write
        writers = sorted(k for k in index.store.meta() if k.startswith("session_max_file_bytes@"))
    # fresh records stay, a later memdex's with a field appended too; one of no known form stays, uncounted
    assert writers == sorted([fresh, later, unknown, f"session_max_file_bytes@small-host:{small.root}"])


def test_status_lists_the_over_bound_transcripts_without_reading_every_file(
    engine_kind: EngineKind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``partly_indexed`` is a bounded read (an index on the size): status never reads every
    file's state (review: it did, so its cost grew with the index); SQLite searches the index."""
    log, settings, filler = over_bound_transcript(tmp_path, engine_kind)
    append(log, filler)
    for n in range(5):
        write(settings.root, f"notes/n{n}.md", f"# Note {n}\n\nsome fact {n}\n")
    synced(settings)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        def every_file(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("status read every file's state")

        monkeypatch.setattr(index.store, "file_states", every_file)
        status = index.status()
        assert status["partly_indexed"] == [PATH] and status["first_line_over_bound"] == [] and status["files"] == 7
        if engine_kind.name == "sqlite":
            plan = " ".join(str(row) for row in index.store.connection.execute(
                "EXPLAIN QUERY PLAN SELECT path, hash FROM files WHERE kind = ? AND size > ?", ("session", 1)))  # fmt: skip
            assert "USING INDEX files_kind_size" in plan, plan


@pytest.mark.postgres
def test_cli_get_serves_a_cited_range_past_this_hosts_bound_within_the_indexs(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: the host with the smaller setting got results citing lines within the index's
    (larger) bound, and `memdex get` from the CLI refused them by its own setting."""
    namespace = f"bound-{uuid.uuid4().hex[:12]}"
    logs, hosts = {}, {}
    for name in ("small", "large"):
        logs[name] = write(tmp_path / name / "chats", f"{name}.jsonl", turns(f"the {name} ferry leaves", "filler words " * 20))
    low = 3 * logs["small"].stat().st_size
    for name in ("small", "large"):
        append(logs[name], turns(*(f"{name} chatter number {n} " * 6 for n in range(60)), "the zebra keeper waved", minute=5))
        (tmp_path / name / "memory").mkdir()
        hosts[name] = make_settings(tmp_path / name / "memory", pg_url, namespace=namespace,
                                    session_folders=[str(logs[name].parent)],
                                    session_max_file_bytes=low if name == "small" else 64 * 2**20)  # fmt: skip
    for host, name in (("small-host", "small"), ("large-host", "large"), ("small-host", "small")):
        monkeypatch.setenv("MEMDEX_HOST", host)
        synced(hosts[name])
    small = hosts["small"]
    with open_index(small, embedder=RecordingEmbedder()) as index:
        hit = next(h for h in index.search("zebra", mode="keyword") if "small" in h.path)
        target = f"{hit.path}:{hit.start_line}-{hit.end_line}"
        expected = index.get(target).lines
    env = {"MEMDEX_ROOT": None, "MEMDEX_HOST": "small-host", "MEMDEX_SESSION_MAX_FILE_BYTES": str(low)}
    args = ["--root", str(small.root), "--session-folder", str(logs["small"].parent), "--db", pg_url,
            "--namespace", namespace]  # fmt: skip
    shown = CliRunner(env=env).invoke(cli, [*args, "get", target])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == expected and "zebra" in shown.output
    past = CliRunner(env=env).invoke(cli, [*args, "get", f"{hit.path}:{hit.end_line + 500}"])
    assert past.exit_code != 0 and "memdex: error:" in past.output  # past the file, or the index's bound, still refused


def test_a_writer_record_with_fields_a_later_memdex_appended_still_counts() -> None:
    """Mixed versions: a later memdex's record keeps counting (else this one's syncs would
    lower the bound and the later one's raise it, each reading the transcripts again)."""
    from indexer.indexing.tail import _record

    assert _record("67108864:67108864:1765000000:a later field") == (67108864, 1765000000)
    assert _record("67108864:67108864:1765000000") == (67108864, 1765000000)
    assert _record("x") is None and _record("1:2") is None and _record("a:2:3:4") is None
