"""Confidence on hybrid results (retrieval/confidence.py) and what the CLI and MCP say with it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from conftest import RecordingEmbedder, write

from indexer import open_index
from indexer.retrieval import confidence as model
from indexer.retrieval.confidence import NOTHING_RELEVANT, confidence, nothing_relevant, query_signals

NEUTRAL = {"coverage": 0.5, "matched": 0.5, "absent": 0.2, "agreement": 0.2, "lift": 0.1}


@pytest.mark.parametrize(("feature", "direction"), [("coverage", 1), ("lift", 1), ("matched", 1), ("agreement", 1), ("absent", -1)])
def test_confidence_follows_the_evidence(feature, direction):
    more = confidence({**NEUTRAL, feature: 1.0})
    less = confidence({**NEUTRAL, feature: 0.0})
    assert (more - less) * direction > 0
    assert 0.0 <= less <= 1.0 and 0.0 <= more <= 1.0


def test_the_cut_separates_a_clear_answer_from_nothing_found():
    answered = {"coverage": 1.0, "matched": 1.0, "absent": 0.0, "agreement": 0.5, "lift": 0.2}
    unknown = {"coverage": 0.0, "matched": 0.0, "absent": 1.0, "agreement": 0.0, "lift": 0.02}
    assert confidence(answered) >= NOTHING_RELEVANT > confidence(unknown)


def test_query_signals_absent_share_and_list_agreement():
    idfs = {"penicillin": 3.0, "allergi": 1.0}
    keyword = [(cid, 1.0) for cid in range(1, 11)]
    vector = [(cid, 0.5) for cid in (1, 2, 3, 20, 21, 22, 23, 24, 25, 26)]
    vector = [(cid, 0.9 - 0.01 * n) for n, (cid, _) in enumerate(vector)]  # ten cosines, 0.90 down to 0.81
    signals = query_signals({"penicillin": 0, "allergi": 4}, idfs, keyword, vector)
    assert signals.absent == pytest.approx(0.75) and signals.agreement == pytest.approx(0.3)
    assert signals.baseline == pytest.approx(0.81)  # fewer than 20: the last one
    assert query_signals({}, {}, [], []).absent == 0.0


def test_nothing_relevant():
    assert nothing_relevant([0.2, 0.4]) is True
    assert nothing_relevant([0.2, 0.7]) is False
    assert nothing_relevant([None, None]) is None  # keyword or vector mode: no confidence
    assert nothing_relevant([]) is True


class FlatEmbedder(RecordingEmbedder):
    """Every query (text starting "?") at cosine 0.5 to every chunk: confidence then rests on the words."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            rows[i, :2] = (0.5, 0.75**0.5) if text.startswith("?") else (1.0, 0.0)
        return rows


def test_hybrid_results_carry_confidence_and_a_topic_memory_never_mentions_is_below_the_cut(root, settings):
    write(root, "MEMORY.md", "# Memory\n\n- Penicillin allergy: came out in hives in 2009.\n")
    write(root, "notes/garden.md", "# Garden\n\nThe tomatoes need staking in June.\n")
    write(root, "notes/bike.md", "# Bike\n\nThe rear brake pads were replaced in May.\n")
    embedder = FlatEmbedder()
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
        known = index.search("? penicillin allergy hives")
        unknown = index.search("? xylophone quasar")
        keyword = index.search("penicillin allergy", mode="keyword")
    assert known[0].path == "MEMORY.md" and known[0].confidence >= NOTHING_RELEVANT
    assert unknown and all(r.confidence is not None and r.confidence < NOTHING_RELEVANT for r in unknown)
    assert max(r.confidence for r in known[1:]) < known[0].confidence
    assert keyword and all(r.confidence is None for r in keyword)


def test_coefficients_are_fitted_not_placeholders():
    assert model.INTERCEPT != 0.0 and all(model.COEFFICIENTS[name] != 0.0 for name in model.FEATURES)
