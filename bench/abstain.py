"""Abstention on a REALTALK-style data set: does ``confidence`` tell answerable
questions from unanswerable ones? (bench/eval_realtalk.py ``--abstain``)

- answerable: each chat's own questions, asked of that chat's index;
- unanswerable: every other chat's questions, asked of this chat's index with
  their speakers' names replaced by this chat's speakers (a name shared by the
  two chats is mapped to the other speaker), so names give nothing away.

The features of each search's first candidate (indexer/retrieval/confidence.py)
are recorded, a logistic model with equal weight per class is fitted (its cut
placed to flag 10% of answerable questions) and
evaluated on held-out chats (each chat's questions scored by a model fitted on
the other chats: leave one chat out, and two halves). The labelled fixture's
queries (all answerable) are asked too: the cut is placed so that at most 10% of
the answerable questions of either set fall below it. The model fitted on
every chat is printed as the coefficients to put in confidence.py. With the
coefficients in confidence.py, the figures of the product itself (the first
result's ``confidence`` against the 0.5 cut) are printed too.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from indexer.retrieval import confidence as model

SPEAKERS = re.compile(r"messages between (.+) and (.+)$")
NAME = re.compile(r"\b[A-Za-z][a-z]+(?:\s+Khan)?\b")


def chat_speakers(memory: Path, chat: str) -> tuple[str, str]:
    first = (memory / chat / "MEMORY.md").read_text().splitlines()[0]
    found = SPEAKERS.search(first)
    if found is None:
        raise SystemExit(f"{chat}/MEMORY.md: no 'messages between A and B' line")
    return found.group(1).strip(), found.group(2).strip()


def swap_names(question: str, source: tuple[str, str], target: tuple[str, str]) -> str:
    """``question`` with ``source``'s speakers renamed to ``target``'s (first names; spelling
    variants such as Muhammad / Muhhamed matched by similarity)."""
    if source[0] == target[0] or source[1] == target[1]:
        target = (target[1], target[0])
    firsts = [name.split()[0].lower() for name in source]
    renamed = [name.split()[0].capitalize() for name in target]

    def rename(match: re.Match[str]) -> str:
        word = match.group(0).split()[0].lower()
        for first, new in zip(firsts, renamed):
            similar = word[:1] == first[:1] and difflib.SequenceMatcher(None, word, first).ratio() >= 0.75
            if word == first or (len(word) > 2 and similar):
                return new
        return match.group(0)

    return NAME.sub(rename, question)


def negatives(by_chat: dict[str, list[dict]], memory: Path) -> dict[str, list[dict]]:
    """chat -> the other chats' questions, renamed to this chat's speakers."""
    speakers = {chat: chat_speakers(memory, chat) for chat in by_chat}
    out: dict[str, list[dict]] = defaultdict(list)
    for chat in sorted(by_chat):
        for other in sorted(by_chat):
            if other == chat:
                continue
            for question in by_chat[other]:
                text = swap_names(question["question"], speakers[other], speakers[chat])
                shares = bool(set(speakers[chat]) & set(speakers[other]))  # the same person: their facts may be here too
                out[chat].append({"qid": f"neg-{chat}-{question['qid']}", "question": text, "conv": chat,
                                  "source": other, "shares_speaker": shares})  # fmt: skip
    return out


class Recorder:
    """Wraps confidence.confidence: keeps the features of each search's first candidate."""

    def __init__(self) -> None:
        self.original = model.confidence
        self.first: dict[str, float] | None = None

    def __enter__(self) -> Recorder:
        def recording(features):
            if self.first is None:
                self.first = dict(features)
            return self.original(features)

        model.confidence = recording
        return self

    def __exit__(self, *exc) -> None:
        model.confidence = self.original

    def take(self) -> dict[str, float]:
        first, self.first = self.first, None
        return first or dict.fromkeys(model.FEATURES, 0.0)


def ask_all(index, questions: list[dict], options: dict, recorder: Recorder, label: int, chat: str) -> list[dict]:
    rows = []
    for question in questions:
        results = index.search(question["question"], **options)
        features = recorder.take()
        top = max((r.confidence for r in results if r.confidence is not None), default=0.0)
        rows.append({
            "chat": chat, "label": label, "features": features, "confidence": top, "question": question["question"],
            "top_score": results[0].score if results else 0.0,
            "shares_speaker": question.get("shares_speaker", False),
        })  # fmt: skip
    return rows


FLAG_ANSWERABLE = 0.10  # the cut (0.5) is placed so that this share of the fitted answerable questions falls below it


def fixture_rows(fixture: Path, queries: Path, embedder, options: dict, recorder: Recorder) -> list[dict]:
    """The labelled fixture's queries (all answerable) asked of the fixture, indexed in a temporary folder."""
    import tempfile

    from indexer import make_settings, open_index

    asked = [{"question": q["query"]} for q in json.loads(queries.read_text())]
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(fixture, Path(tmp) / "index.db")
        with open_index(settings, write=True, embedder=embedder) as index:
            index.sync()
        with open_index(settings, embedder=embedder) as index:
            return ask_all(index, asked, options, recorder, 1, "fixture")


def fit(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, steps: int = 50, flag_answerable: float = FLAG_ANSWERABLE,
    also: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Logistic regression with equal total weight per class (Newton steps, L2 on the
    standardised coefficients), its intercept then moved so that at most ``flag_answerable``
    of the answerable rows fall below 0.5 (a false "nothing relevant" costs more than a
    missed one), in ``x`` and in ``also`` (another set's answerable rows, e.g. the labelled
    fixture's); returns (intercept, coefficients) on the raw features."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
    weight = np.where(y == 1, 0.5 / max(1, y.sum()), 0.5 / max(1, (1 - y).sum())) * len(y)
    beta = np.zeros(z.shape[1])
    penalty = l2 * np.eye(z.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -30, 30)))
        gradient = z.T @ (weight * (p - y)) + penalty @ beta
        hessian = (z * (weight * p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    coefficients = beta[1:] / std
    intercept = float(beta[0] - (coefficients * mean).sum())
    cut = np.quantile(x[y == 1] @ coefficients + intercept, flag_answerable)  # the logit to move to 0
    if also is not None and len(also):
        cut = min(cut, np.quantile(also @ coefficients + intercept, flag_answerable))
    return intercept - float(cut), coefficients


def predict(intercept: float, coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(intercept + x @ coefficients, -30, 30)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(an answerable question scores above an unanswerable one), ties half."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([positive, negative]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([positive, negative])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def flagged(scores: np.ndarray, labels: np.ndarray, cut: float = model.NOTHING_RELEVANT) -> tuple[float, float]:
    """(share of answerable, share of unanswerable) below the cut."""
    return float((scores[labels == 1] < cut).mean()), float((scores[labels == 0] < cut).mean())


def matrix(rows: list[dict]) -> np.ndarray:
    return np.array([[row["features"][name] for name in model.FEATURES] for row in rows]).reshape(len(rows), -1)


def held_out(rows: list[dict], folds: list[list[str]], fixture: list[dict]) -> tuple[np.ndarray, float]:
    """Each row's probability from a model fitted on the rows of the other folds (the cut
    placed with the fixture's answerable rows too), and the mean share of the fixture flagged."""
    x, extra = matrix(rows), matrix(fixture)
    y = np.array([row["label"] for row in rows], dtype=float)
    chats = np.array([row["chat"] for row in rows])
    out = np.zeros(len(rows))
    fixture_flagged = []
    for fold in folds:
        test = np.isin(chats, fold)
        intercept, coefficients = fit(x[~test], y[~test], also=extra)
        out[test] = predict(intercept, coefficients, x[test])
        if len(extra):
            fixture_flagged.append(float((predict(intercept, coefficients, extra) < model.NOTHING_RELEVANT).mean()))
    return out, float(np.mean(fixture_flagged)) if fixture_flagged else float("nan")


def report(rows: list[dict], fixture: list[dict]) -> dict:
    """The figures over every negative, and over those whose chat shares no speaker with the
    asked chat (a shared speaker is the same person, whose facts may well be in both chats).
    ``fixture``: the labelled fixture's queries (all answerable), asked of the fixture."""
    summary = {"all_negatives": summarise(rows, fixture)}
    summary["negatives_sharing_no_speaker"] = summarise([row for row in rows if not row["shares_speaker"]], fixture)
    return summary


def summarise(rows: list[dict], fixture: list[dict]) -> dict:
    chats = sorted({row["chat"] for row in rows})
    x = matrix(rows)
    y = np.array([row["label"] for row in rows], dtype=float)
    summary: dict = {"answerable": int(y.sum()), "unanswerable": int((1 - y).sum())}
    summary["raw_top_score_auroc"] = round(auroc(np.array([row["top_score"] for row in rows]), y), 3)
    for name, folds in (("leave_one_chat_out", [[c] for c in chats]), ("two_halves", [chats[0::2], chats[1::2]])):
        scores, fixture_flagged = held_out(rows, folds, fixture)
        answerable, unanswerable = flagged(scores, y)
        summary[name] = {"auroc": round(auroc(scores, y), 3), "flagged_answerable": round(answerable, 3),
                         "flagged_unanswerable": round(unanswerable, 3),
                         "fixture_flagged": round(fixture_flagged, 3)}  # fmt: skip
    intercept, coefficients = fit(x, y, also=matrix(fixture))
    summary["fitted_on_all"] = {"intercept": round(intercept, 4),
                                "coefficients": {n: round(float(c), 4) for n, c in zip(model.FEATURES, coefficients)}}  # fmt: skip
    product = np.array([row["confidence"] for row in rows])
    answerable, unanswerable = flagged(product, y)
    fixture_product = np.array([row["confidence"] for row in fixture])
    summary["product"] = {"auroc": round(auroc(product, y), 3), "flagged_answerable": round(answerable, 3),
                          "flagged_unanswerable": round(unanswerable, 3),
                          "fixture_flagged": round(float((fixture_product < model.NOTHING_RELEVANT).mean()), 3),
                          "note": "confidence.py's coefficients as they are (in-sample if fitted on this run)"}  # fmt: skip
    return summary
