"""Pure packing of ranked hits into a reading budget.

An assistant reads a bounded amount of memory per question, so search returns
results in rank order until a budget of lines (and optionally of estimated
tokens) is spent:

- a hit that overlaps or touches an earlier result of the same file is merged
  into it (the result's span becomes the union, its score the best of its
  members, its heading the best member's), so the budget is not spent twice
  on the same lines and ``get path:start-end`` returns exactly its lines;
- a hit that does not fit whole is trimmed to the window of its lines that
  best matches the query (``line_weight``), so no result exceeds the budget;
- a merge that would overflow the budget is skipped; the total never exceeds it;
- at most ``limit`` results.

Before packing, ``without_filler`` drops blank, heading and empty-bullet lines at a hit's
edges: the heading is reported with the result, and reading it again would
spend the budget on lines that answer nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LineWeight = Callable[[str], float]
HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
EMPTY_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s+\[[ xX]?\])?\s*$")  # "-", "* ", "1.", "- [ ]"


@dataclass(frozen=True)
class Hit:
    """One ranked chunk: its raw lines ``start_line..end_line`` (1-based, inclusive)."""

    path: str
    start_line: int
    end_line: int
    score: float
    lines: tuple[str, ...]
    heading: str = ""
    key: int = 0  # the caller's id for the chunk, carried into ``Packed.keys``

    def __post_init__(self) -> None:
        if len(self.lines) != self.end_line - self.start_line + 1:
            raise ValueError(f"{self.path}:{self.start_line}-{self.end_line} carries {len(self.lines)} lines")


@dataclass(frozen=True)
class Packed:
    path: str
    start_line: int
    end_line: int
    score: float
    heading: str
    lines: tuple[str, ...]
    keys: tuple[int, ...]  # the hits merged into this result, best first
    trimmed: bool = False


@dataclass(frozen=True)
class Budget:
    """At most ``lines`` lines and ``tokens`` estimated tokens (None: no bound)."""

    lines: int | None = None
    tokens: int | None = None

    def cost(self, lines: Sequence[str]) -> tuple[int, int]:
        return len(lines), sum(estimate_tokens(line) for line in lines)

    def fits(self, used: tuple[int, int], extra: tuple[int, int]) -> bool:
        return (self.lines is None or used[0] + extra[0] <= self.lines) and (
            self.tokens is None or used[1] + extra[1] <= self.tokens
        )

    def full(self, used: tuple[int, int]) -> bool:
        return (self.lines is not None and used[0] >= self.lines) or (
            self.tokens is not None and used[1] >= self.tokens
        )


def is_filler(line: str) -> bool:
    """A blank line, a Markdown ATX heading, or a list item with no text (a template's empty bullet)."""
    return not line.strip() or HEADING.match(line) is not None or EMPTY_BULLET.match(line) is not None


def without_filler(hit: Hit) -> Hit:
    """The hit without blank and heading lines at its start and end (a hit of
    headings only keeps its first line)."""
    content = [i for i, line in enumerate(hit.lines) if not is_filler(line)]
    first, last = (content[0], content[-1]) if content else (0, 0)
    if (first, last) == (0, len(hit.lines) - 1):
        return hit
    return Hit(hit.path, hit.start_line + first, hit.start_line + last, hit.score, hit.lines[first : last + 1],
               hit.heading, hit.key)  # fmt: skip


def estimate_tokens(line: str) -> int:
    """A cheap token estimate for English-like text: one per four characters, at least one per line."""
    return max(1, (len(line) + 3) // 4)


@dataclass
class _Span:
    path: str
    start: int
    end: int
    score: float
    heading: str
    lines: dict[int, str]
    keys: list[int] = field(default_factory=list)
    trimmed: bool = False


def pack(
    hits: Sequence[Hit], *, budget: Budget, limit: int, line_weight: LineWeight | None = None
) -> list[Packed]:
    """Results in rank order until ``budget`` is spent or ``limit`` results are taken."""
    weight = line_weight or (lambda line: 0.0)
    spans: list[_Span] = []
    used = (0, 0)
    for hit in hits:
        if budget.full(used):
            break
        touching = [s for s in spans if s.path == hit.path and s.start <= hit.end_line + 1 and hit.start_line <= s.end + 1]
        if touching:
            new = {n: t for n, t in zip(range(hit.start_line, hit.end_line + 1), hit.lines) if not any(s.start <= n <= s.end for s in touching)}
            extra = budget.cost(list(new.values()))
            if not budget.fits(used, extra):
                continue
            _merge(spans, touching, hit, new)
            used = (used[0] + extra[0], used[1] + extra[1])
            continue
        if len(spans) >= limit:
            continue
        lines, start, trimmed = hit.lines, hit.start_line, False
        if not budget.fits(used, budget.cost(lines)):
            lines, start = _best_window(hit, budget, used, weight)
            trimmed = True
            if not lines:
                continue
        cost = budget.cost(lines)
        spans.append(_Span(
            hit.path, start, start + len(lines) - 1, hit.score, hit.heading,
            dict(zip(range(start, start + len(lines)), lines)), [hit.key], trimmed,
        ))  # fmt: skip
        used = (used[0] + cost[0], used[1] + cost[1])
    return [
        Packed(s.path, s.start, s.end, s.score, s.heading, tuple(s.lines[n] for n in range(s.start, s.end + 1)),
               tuple(s.keys), s.trimmed)
        for s in spans
    ]  # fmt: skip


def _merge(spans: list[_Span], touching: list[_Span], hit: Hit, new: dict[int, str]) -> None:
    first = touching[0]  # the best-ranked: it keeps its place and its heading
    for other in touching[1:]:
        first.lines.update(other.lines)
        first.keys.extend(other.keys)
        first.score = max(first.score, other.score)
        first.trimmed = first.trimmed or other.trimmed
        spans.remove(other)
    first.lines.update(new)
    first.keys.append(hit.key)
    first.start = min(first.lines)
    first.end = max(first.lines)
    first.score = max(first.score, hit.score)


def _best_window(hit: Hit, budget: Budget, used: tuple[int, int], weight: LineWeight) -> tuple[tuple[str, ...], int]:
    """The contiguous run of the hit's lines that fits the budget and weighs most
    (earliest on ties); empty when not even one line fits."""
    lines = hit.lines
    weights = [weight(line) for line in lines]
    best: tuple[float, int, int] | None = None  # (weight, -start, end)
    end = 0
    total = 0.0
    for start in range(len(lines)):
        end = max(end, start)
        while end < len(lines) and budget.fits(used, budget.cost(lines[start : end + 1])):
            total += weights[end]
            end += 1
        if end > start and (best is None or (total, -start) > best[:2]):
            best = (total, -start, end)
        if end > start:
            total -= weights[start]
    if best is None:
        return (), hit.start_line
    start, stop = -best[1], best[2]
    return lines[start:stop], hit.start_line + start

