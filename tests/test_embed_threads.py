"""embed_threads: "auto" (the idle cores, at least one, looked at before each bulk call) or a number;
a setting, an environment variable and a flag."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write

from indexer.cli.app import cli
from indexer.config.resolve import load_configuration
from indexer.embedding import cores
from indexer.embedding.cores import CoreBudget, busy_seconds, threads_for
from indexer.embedding.lazy import LazyEmbedder


def test_threads_follow_the_idle_cores_and_never_drop_below_one() -> None:
    assert threads_for(2, 0.0) == 2  # idle: every core
    assert threads_for(2, 0.2) == 2  # a little background noise leaves a core free
    assert threads_for(2, 0.5) == 1  # half a core taken: two threads would wait on each other
    assert threads_for(2, 1.0) == 1
    assert threads_for(2, 5.5) == 1  # heavy load: one thread, never zero
    assert threads_for(8, 3.0) == 5
    assert threads_for(1, 0.0) == 1


def test_busy_seconds_reads_only_the_usable_cores() -> None:
    stat = (
        "cpu  300 0 100 900 50 0 0 0 0 0\n"
        "cpu0 100 0 50 400 25 0 0 0 0 0\n"
        "cpu1 200 0 50 500 25 5 5 10 0 0\n"
        "intr 12345\n"
    )
    tick = 1 / __import__("os").sysconf("SC_CLK_TCK")
    assert busy_seconds(stat, [0]) == pytest.approx(150 * tick)  # user + system; idle and iowait are not busy
    assert busy_seconds(stat, [1]) == pytest.approx(270 * tick)  # irq, softirq and steal are busy
    assert busy_seconds(stat, [0, 1]) == pytest.approx(420 * tick)
    assert busy_seconds(stat, [2]) is None


def test_the_first_call_without_a_window_to_measure_uses_one_thread(monkeypatch) -> None:
    monkeypatch.setattr(cores, "MIN_WINDOW_SECONDS", 3600.0)
    assert CoreBudget().threads() == 1


def test_auto_backs_off_to_one_thread_when_other_processes_take_the_cores() -> None:
    """Real contention: one busy-looping process per usable core (and the budget's own use subtracted)."""
    budget = CoreBudget()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(budget.cores)]
    try:
        deadline = time.monotonic() + 30
        budget.threads()  # restart the window now that the hogs run
        seen = []
        while time.monotonic() < deadline:
            # Burn a little CPU ourselves: our own use must not count as the others'.
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                pass
            seen.append(budget.threads())
            if seen[-1] == 1 and budget.last_others_busy is not None and budget.last_others_busy > budget.cores - 1:
                break
        assert seen[-1] == 1, seen
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_own_cpu_use_is_not_counted_as_contention(monkeypatch) -> None:
    """A process that keeps its cores busy itself (as a 2-thread encoder does) is not 'others'."""
    readings = iter([(0.0, 0.0, 0.0), (1.0, 2.0, 2.0), (2.0, 2.5, 4.0)])  # wall, own CPU, all busy
    budget = CoreBudget.__new__(CoreBudget)
    budget.cpus, budget.cores, budget.last_others_busy = [0, 1], 2, None

    def sample():
        wall, own, busy = next(readings)
        return cores._Sample(wall, own, busy)

    monkeypatch.setattr(budget, "_sample", sample)
    budget._last = budget._sample()
    assert budget.threads() == 2 and budget.last_others_busy == 0.0  # all the busy time was ours
    assert budget.threads() == 1 and budget.last_others_busy == pytest.approx(1.5)  # others took 1.5 cores


def test_an_old_window_asks_the_load_average(monkeypatch) -> None:
    """A watcher idle for an hour: the hour's average would hide the load of the last minute."""
    readings = iter([(0.0, 0.0, 0.0), (3600.0, 1.0, 10.0)])  # nearly idle over the hour
    budget = CoreBudget.__new__(CoreBudget)
    budget.cpus, budget.cores, budget.last_others_busy = [0, 1], 2, None
    monkeypatch.setattr(budget, "_sample", lambda: cores._Sample(*next(readings)))
    monkeypatch.setattr(cores.os, "getloadavg", lambda: (1.8, 0.5, 0.2))
    budget._last = budget._sample()
    assert budget.threads() == 1 and budget.last_others_busy == pytest.approx(1.8, abs=0.01)


def test_setting_environment_and_flag(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "m"
    write(root, "MEMORY.md", "# Memory\n")
    found = load_configuration({"root": str(root)}, env={})
    assert found.settings.embed_threads == "auto" and found.values["embed_threads"].source == "default"
    write(root, ".memdex/config.toml", "embed_threads = 3\n")
    assert load_configuration({"root": str(root)}, env={}).settings.embed_threads == 3
    found = load_configuration({"root": str(root)}, env={"MEMDEX_EMBED_THREADS": "auto"})
    assert found.settings.embed_threads == "auto" and found.values["embed_threads"].source == "env MEMDEX_EMBED_THREADS"
    found = load_configuration({"root": str(root), "embed_threads": "2"}, env={"MEMDEX_EMBED_THREADS": "auto"})
    assert found.settings.embed_threads == 2 and found.values["embed_threads"].source == "flag --embed-threads"
    monkeypatch.setenv("MEMDEX_EMBED_THREADS", "1")
    result = CliRunner().invoke(cli, ["--root", str(root), "--embed-threads", "4", "config", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["settings"]["embed_threads"] == {"value": 4, "source": "flag --embed-threads"}


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", "999999"])
def test_a_bad_thread_count_is_one_line(tmp_path: Path, bad: str) -> None:
    write(tmp_path / "m", "MEMORY.md", "# Memory\n")
    result = CliRunner().invoke(cli, ["--root", str(tmp_path / "m"), "--embed-threads", bad, "index"])
    assert result.exit_code != 0
    assert result.output.startswith("memdex: error: flag --embed-threads: embed_threads:"), result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_bulk_calls_follow_the_budget_and_queries_stay_on_one_thread(monkeypatch) -> None:
    embedder = LazyEmbedder(backend="onnx")
    assert embedder.bulk_threads == "auto"
    monkeypatch.setattr(embedder._budget, "threads", lambda: 2)
    bulk = embedder.embed([f"a bulk batch of text number {i}" for i in range(8)])
    assert embedder.last_bulk_threads == 2
    assert embedder._onnx[2].session.get_session_options().intra_op_num_threads == 2
    monkeypatch.setattr(embedder._budget, "threads", lambda: 1)
    again = embedder.embed([f"a bulk batch of text number {i}" for i in range(8)])
    assert embedder.last_bulk_threads == 1
    assert abs(bulk - again).max() < 1e-4  # the same vectors, whatever the thread count
    embedder.embed(["one query"])
    threads = {n: e.session.get_session_options().intra_op_num_threads for n, e in embedder._onnx.items()}
    assert threads == {1: 1}  # the 2-thread bulk session was dropped when the bulk call went to 1
    fixed = LazyEmbedder(backend="onnx", bulk_threads=2)
    assert fixed._budget is None
    fixed.embed(["a bulk batch"] * 8)
    assert fixed.last_bulk_threads == 2


@pytest.mark.slow
def test_auto_keeps_one_bulk_session_whatever_counts_the_load_brings(monkeypatch) -> None:
    embedder = LazyEmbedder(backend="onnx")
    embedder.embed(["one query"])
    for count in (2, 3, 4, 3):  # the idle cores change between bulk calls
        monkeypatch.setattr(embedder._budget, "threads", lambda count=count: count)
        embedder.embed([f"a bulk batch of text number {i}" for i in range(8)])
        assert embedder.last_bulk_threads == count
        assert sorted(embedder._onnx) == [1, count]  # the query's session and this call's: was one per count ever used
