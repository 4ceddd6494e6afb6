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
- with a token budget, a hit whose best line does not fit (one long line: a chat
  message, a pasted log) is shown as the best-matching part of that line
  (``Packed.excerpt``, at least ``MIN_PART_TOKENS``) when it matches the query
  better than the whole lines that fit (or none fits), its citation still the
  whole line: ``get path:N`` returns that line exactly;
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

from indexer.store.tokenizer import CJK_RUN

LineWeight = Callable[[str], float]
HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
MIN_PART_TOKENS = 32  # a part of a long line shorter than this is not worth a result
# A long line shows at most 1/PART_SHARE of the token budget (500 of 1,500; 0: up to all of it). On the
# long-line benchmark (bench/eval_long_lines.py) 3 found the most evidence: 0, 3, 6, 10 gave hit 0.691,
# 0.729, 0.697, 0.652 (fewer, longer parts miss more lines; many short ones cut the evidence off).
PART_SHARE = 3
PART_CANDIDATES = 64  # where a long line's best part may start: its start and before its first matches
WIDE_PUNCTUATION = re.compile("[\u3000-\u3004\u3006\u3008-\u303f\uff00-\uffef]")  # 。、「」（）: a token each, as CJK characters
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
    cut: bool = False  # a line of ``lines`` is only its best part (``excerpt``)

    @property
    def excerpt(self) -> str | None:
        """What to read when a long line was cut to its best part (None: read the cited lines)."""
        return "\n".join(self.lines) if self.cut else None


@dataclass(frozen=True)
class Budget:
    """At most ``lines`` lines and ``tokens`` estimated tokens (None: no bound)."""

    lines: int | None = None
    tokens: int | None = None

    @property
    def part_tokens(self) -> int | None:
        """With a token bound: the most of one long line a result shows (a hit of one longer
        line is cut to its best part of this size, so several long lines share the budget)."""
        if self.tokens is None or not PART_SHARE:
            return None
        return max(MIN_PART_TOKENS, self.tokens // PART_SHARE)

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
    lines = hit.lines  # read from each end to its first content line (reading every line: ~1 ms a search)
    first = next((i for i, line in enumerate(lines) if not is_filler(line)), None)
    if first is None:
        first = last = 0
    else:
        last = next(i for i in range(len(lines) - 1, first - 1, -1) if not is_filler(lines[i]))
    if (first, last) == (0, len(hit.lines) - 1):
        return hit
    return Hit(hit.path, hit.start_line + first, hit.start_line + last, hit.score, hit.lines[first : last + 1],
               hit.heading, hit.key)  # fmt: skip


def estimate_tokens(line: str) -> int:
    """A cheap token estimate: one per four characters of English-like text, one per
    Chinese, Japanese or Korean character or punctuation mark (each is a token or more in every common
    tokenizer: 400 of them counted as 100 let a 1,500-token budget read ~6,000), at
    least one per line."""
    if line.isascii():
        return max(1, (len(line) + 3) // 4)
    cjk = sum(len(run) for run in CJK_RUN.findall(line)) + len(WIDE_PUNCTUATION.findall(line))
    return max(1, (len(line) - cjk + 3) // 4 + cjk)


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
    cut: bool = False


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
        lines, start, trimmed, cut = hit.lines, hit.start_line, False, False
        long_line = budget.part_tokens is not None and len(lines) == 1 and estimate_tokens(lines[0]) > budget.part_tokens
        if long_line or not budget.fits(used, budget.cost(lines)):
            lines, start = ((), start) if long_line else _best_window(hit, budget, used, weight)
            trimmed = True
            part, part_start = _best_part(hit, budget, used, weight)
            if part and (not lines or weight(hit.lines[part_start - hit.start_line]) > sum(map(weight, lines))):
                lines, start, cut = part, part_start, True  # the best line's part outweighs the whole lines that fit
            if not lines:
                continue
        cost = budget.cost(lines)
        spans.append(_Span(
            hit.path, start, start + len(lines) - 1, hit.score, hit.heading,
            dict(zip(range(start, start + len(lines)), lines)), [hit.key], trimmed, cut,
        ))  # fmt: skip
        used = (used[0] + cost[0], used[1] + cost[1])
    return [
        Packed(s.path, s.start, s.end, s.score, s.heading, tuple(s.lines[n] for n in range(s.start, s.end + 1)),
               tuple(s.keys), s.trimmed, s.cut)
        for s in spans
    ]  # fmt: skip


def _merge(spans: list[_Span], touching: list[_Span], hit: Hit, new: dict[int, str]) -> None:
    first = touching[0]  # the best-ranked: it keeps its place and its heading
    for other in touching[1:]:
        first.lines.update(other.lines)
        first.keys.extend(other.keys)
        first.score = max(first.score, other.score)
        first.trimmed = first.trimmed or other.trimmed
        first.cut = first.cut or other.cut
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



def _best_part(hit: Hit, budget: Budget, used: tuple[int, int], weight: LineWeight) -> tuple[tuple[str, ...], int]:
    """The best-matching part of the hit's best line (most weight, earliest on ties) that fits
    the token budget left, "…" marking what was left out; empty when less than
    ``MIN_PART_TOKENS`` are left (or there is no token budget)."""
    if budget.tokens is None or (budget.lines is not None and used[0] >= budget.lines):
        return (), hit.start_line
    left = min(budget.tokens - used[1], budget.part_tokens or budget.tokens)
    if left < MIN_PART_TOKENS:
        return (), hit.start_line
    weights = [weight(line) for line in hit.lines]
    index = max(range(len(hit.lines)), key=lambda i: (weights[i], -i))
    line = hit.lines[index]
    per_token = 4 if line.isascii() else max(1.0, len(line) / estimate_tokens(line))  # characters (CJK: ~1)
    part = best_part(line, chars=max(1, int(per_token * left) - 8), weight=weight)
    while part and estimate_tokens(part) > left:  # never expected: "…" and rounding are allowed for
        part = part[:-8]
    return ((part,), hit.start_line + index) if part else ((), hit.start_line)


def best_part(line: str, *, chars: int, weight: LineWeight) -> str:
    """The ``chars``-long part of ``line`` (cut at spaces where it can be) that weighs
    most, earliest on ties, with "…" where text was left out; ``line`` when it fits."""
    if len(line) <= chars:
        return line
    starts = [0]
    for match in re.finditer(r"\w+", line):  # start a little before each word, so its context shows
        if len(starts) >= PART_CANDIDATES:
            break
        if weight(match.group()) > 0:
            starts.append(max(0, match.start() - chars // 4))
    best = (-1.0, 0, "")
    for start in sorted(set(starts)):
        start = _word_start(line, start)
        end = min(len(line), start + chars)
        if end < len(line):
            space = line.rfind(" ", start + chars // 2, end)
            end = space if space > start else end
        text = line[start:end]
        start += len(text) - len(text.lstrip())
        text = text.strip()
        score = weight(text)
        if score > best[0]:
            best = (score, start, text)
    _, start, text = best
    return ("…" if start > 0 else "") + text + ("…" if start + len(text) < len(line.rstrip()) else "")


def _word_start(line: str, position: int) -> int:
    """``position`` moved forward to the start of a word (unless it already is one)."""
    if position == 0 or line[position - 1].isspace():
        return position
    space = line.find(" ", position)
    return space + 1 if 0 <= space < position + 40 else position
