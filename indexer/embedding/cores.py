"""How many threads bulk embedding may use: ``embed_threads = "auto"``.

Before each bulk model call, ``CoreBudget`` measures how busy the cores this
process may run on were since its last look, from everyone *else's* point of
view: the busy time ``/proc/stat`` shows for those cores, minus this process's
own CPU time (``os.times``). The call gets the whole cores nobody else used:

    threads = clamp(floor(cores - others_busy + SLACK), 1, cores)

so an idle machine uses every core, a busy one backs off to a single thread
(never fewer), and each call looks again (a call is a few seconds of work).
Where ``/proc/stat`` is missing (macOS), or the last look is too old to say much
about now (a watcher idle for hours), the 1-minute load average stands in for the
others' use (minus this process's own use over the window).
With too short a window to measure (the first call right after start-up), the
call runs on one thread: never worse than a fixed single thread.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

# A core counts as free when others used less than 1 - SLACK of it: two threads
# under contention lose to one (each operator waits for its slowest thread: a bare
# 2-thread encoder was 44% slower than 1 thread at load 5.5, issue 21), so a core
# must be nearly idle before a thread is put on it.
SLACK = 0.25
MIN_WINDOW_SECONDS = 0.05
# A longer window (a watcher idle for hours) would average old quiet with new load:
# the 1-minute load average says more about now.
MAX_WINDOW_SECONDS = 30.0
PROC_STAT = Path("/proc/stat")
AUTO = "auto"


def usable_cores() -> list[int]:
    """The CPU numbers this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def threads_for(cores: int, others_busy: float) -> int:
    """Threads for one call, given ``cores`` usable cores of which others kept ``others_busy`` busy."""
    free = cores - max(0.0, others_busy)
    return max(1, min(cores, math.floor(free + SLACK)))


def busy_seconds(stat_text: str, cpus: list[int]) -> float | None:
    """Seconds the given CPUs spent busy (everything but idle and iowait) since boot,
    read from ``/proc/stat``'s ``cpuN`` lines; None when a CPU's line is missing."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    wanted, total = {f"cpu{n}" for n in cpus}, 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted:
            values = [int(v) for v in rest.split()]
            # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
            total += sum(values[:8]) - values[3] - values[4]
            wanted.discard(name)
    return None if wanted else total / ticks


@dataclass
class _Sample:
    wall: float
    own: float  # this process's CPU seconds (all threads)
    busy: float | None  # the usable cores' busy seconds, all processes


class CoreBudget:
    """Threads for the next bulk call: every core nobody else is using, at least one."""

    def __init__(self) -> None:
        self.cpus = usable_cores()
        self.cores = len(self.cpus)
        self._last = self._sample()
        self.last_others_busy: float | None = None  # for logs, status and tests

    def _sample(self) -> _Sample:
        times = os.times()
        try:
            busy = busy_seconds(PROC_STAT.read_text(), self.cpus)
        except (OSError, ValueError, IndexError):
            busy = None
        return _Sample(time.monotonic(), times.user + times.system, busy)

    def threads(self) -> int:
        """How many threads the next call may use; the window since the previous call is what is measured."""
        now = self._sample()
        last, window = self._last, now.wall - self._last.wall
        if window < MIN_WINDOW_SECONDS:
            return 1  # nothing measured yet: the safe choice
        self._last = now
        own = max(0.0, (now.own - last.own) / window)
        if now.busy is not None and last.busy is not None and window <= MAX_WINDOW_SECONDS:
            others = (now.busy - last.busy) / window - own
        else:
            try:
                others = os.getloadavg()[0] - own
            except (AttributeError, OSError):
                return 1
        self.last_others_busy = max(0.0, others)
        return threads_for(self.cores, others)
