"""Confidence: how likely a hybrid result is to be about something memory really holds.

Every hybrid result gets ``confidence`` in [0, 1]: a small logistic model over
evidence that can be defended without the benchmark:

- ``coverage``: the share of the query's IDF its bm25 reaches (fusion.py);
- ``matched``: the IDF share of the query's content words (by their first five
  letters, as snippets match them) found in the result's text;
- ``absent``: the IDF share of the query's content words found nowhere in the
  index (an entity or topic memory never mentions);
- ``agreement``: how many of the keyword search's first ten candidates are
  also among the vector search's first ten (0-1): two independent retrievers
  that agree have found the same thing;
- ``lift``: its cosine minus the vector list's 20th cosine: how far it stands
  out from what the query is merely near. The cosine itself was measured and
  left out: its level depends on the model and the memory (the labelled
  fixture's answerable queries sit lower than the dev set's): fitted on the dev
  set alone, a model with it flagged 30% of the fixture's answerable queries,
  one with ``lift`` instead 15%.

The score itself, the gap between the first and tenth scores and the share of
the query's capitalised words (names) missing from the index were measured too
and left out: they added nothing on held-out chats, and the names' weight came
out with the wrong sign (README).

The coefficients are fixed (``COEFFICIENTS``), fitted by bench/eval_realtalk.py
``--abstain`` on the REALTALK-style dev set: a chat's own questions against
other chats' questions with their speakers renamed to this chat's, with equal
weight per class, the cut placed where at most 10% of the answerable questions
of the dev set and of the labelled fixture fall below it (a false "nothing
relevant" costs more than a missed one), and evaluated on held-out chats (README). Below ``NOTHING_RELEVANT`` (0.5) a result
is probably not about the question: when no result reaches it, memory probably
holds nothing relevant.
Keyword and vector modes have no confidence (None): the model needs both lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .fusion import Evidence

NOTHING_RELEVANT = 0.5  # below this, a result is probably not about the question
AGREEMENT_DEPTH = 10  # candidates of each list compared for ``agreement``
LIFT_RANK = 20  # ``lift``: a result's cosine above the vector list's cosine at this rank (or its last)

FEATURES = ("coverage", "matched", "absent", "agreement", "lift")
# Fitted by ``bench/eval_realtalk.py --abstain`` on all ten chats (its "fitted_on_all"); README
# gives the figures on held-out chats. On the features' own scales (each about 0-1).
INTERCEPT = -0.4429
COEFFICIENTS: dict[str, float] = {
    "coverage": 1.45, "matched": 0.6421, "absent": -1.0556, "agreement": 1.5511, "lift": 4.15,
}  # fmt: skip

@dataclass(frozen=True)
class QuerySignals:
    """The query-level features (the same for each result of one search)."""

    absent: float
    agreement: float
    baseline: float  # the vector list's cosine at LIFT_RANK


def query_signals(
    term_counts: Mapping[str, int],
    idfs: Mapping[str, float],
    keyword: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
) -> QuerySignals:
    """``term_counts``: chunks containing each stemmed query term; ``idfs``: IDF per stem;
    ``keyword``, ``vector``: the two candidate lists, best first."""
    total = sum(idfs.values())
    absent = sum(idf for stem, idf in idfs.items() if term_counts.get(stem, 0) == 0) / total if total > 0 else 0.0
    top_keyword = {cid for cid, _ in keyword[:AGREEMENT_DEPTH]}
    top_vector = {cid for cid, _ in vector[:AGREEMENT_DEPTH]}
    baseline = vector[min(LIFT_RANK, len(vector)) - 1][1] if vector else 0.0
    return QuerySignals(absent, len(top_keyword & top_vector) / AGREEMENT_DEPTH, max(0.0, baseline))


def result_features(signals: QuerySignals, evidence: Evidence, cid: int, matched: float) -> dict[str, float]:
    """One result's features (``FEATURES``)."""
    return {
        "coverage": evidence.coverage.get(cid, 0.0),
        "matched": matched,
        "absent": signals.absent,
        "agreement": signals.agreement,
        "lift": max(0.0, evidence.cosine.get(cid, 0.0)) - signals.baseline,
    }


def matched_share(found: frozenset[str], term_idfs: Mapping[str, float]) -> float:
    """The IDF share of the query's word prefixes (``term_idfs``) in ``found``."""
    total = sum(term_idfs.values())
    return sum(term_idfs.get(term, 0.0) for term in found) / total if total > 0 else 0.0


def nothing_relevant(confidences: Sequence[float | None]) -> bool | None:
    """True when no result reaches the cut (none at all: True too); None when the
    results carry no confidence (keyword or vector mode)."""
    known = [value for value in confidences if value is not None]
    if not known:
        return True if not confidences else None
    return max(known) < NOTHING_RELEVANT


def confidence(features: Mapping[str, float]) -> float:
    """The logistic model: P(the result is about something memory holds), rounded to 3 places."""
    z = INTERCEPT + sum(COEFFICIENTS[name] * features[name] for name in FEATURES)
    return round(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), 3)
