"""Quality gates over synthetic examples, each reporting its counts.

In order: schema (pydantic, upstream), exact duplicates (within the set and against train),
decontamination (too similar to any val or test claim or evidence), near duplicates (within the
set and against train, by frozen-encoder cosine), optional label verification, class balance.
Every dropped example is kept in the ``rejected`` table with its gate and reason.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from evoformer.config.synthesize import GateConfig  # noqa: F401  (declared with the other settings)
from evoformer.labels import LABEL_TO_ID, LABELS
from evoformer.progress import Progress, ProgressLog, say
from evoformer.synthetic.balance import balance_targets, choose_rows
from evoformer.synthetic.records import SYNTHETIC_COLUMNS, Rejection, SyntheticExample
from evoformer.synthetic.similarity import greedy_near_duplicates, max_pair_similarity, max_similarity, pair_key
from evoformer.synthetic.verify import Agreement, agreement, pair_features, train_classifier

Embed = Callable[[list[str]], np.ndarray]
Judge = Callable[[str, str], "str | None"]
JUDGE_THREADS = 8
REJECTED_COLUMNS = [*SYNTHETIC_COLUMNS, "gate", "reason", "similarity", "match"]


class GateReport(BaseModel):
    """Counts of one gate."""

    gate: str
    input: int
    kept: int
    dropped: int
    reasons: dict[str, int] = Field(default_factory=dict)
    detail: dict[str, Any] = Field(default_factory=dict)


@dataclass
class GateOutcome:
    kept: pd.DataFrame
    rejected: pd.DataFrame
    reports: list[GateReport]
    agreement: Agreement | None = None


def _reason_kind(reason: str) -> str:
    """A reason without its specifics (numbers, quoted text), for counting."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason))[:120]


class _Run:
    """The working set: the frame of kept examples, the rejected rows and the reports; each gate's
    counts and the seconds since the start also go to ``progress``, if given."""

    def __init__(self, frame: pd.DataFrame, progress: Progress | None = None) -> None:
        self.frame = frame.reset_index(drop=True)
        self.rejected: list[dict[str, Any]] = []
        self.reports: list[GateReport] = []
        self.progress, self.started = progress, time.perf_counter()

    def say(self, line: str) -> None:
        say(self.progress, f"{line}, {time.perf_counter() - self.started:.0f} s")

    def drop(
        self, gate: str, drops: dict[int, tuple[str, float | None, str | None]], detail: dict[str, Any] | None = None
    ) -> None:
        """Drop rows ``{index: (reason, similarity, match)}`` and report the gate."""
        before = len(self.frame)
        reasons: Counter[str] = Counter()
        for i, (reason, sim, match) in sorted(drops.items()):
            row = self.frame.iloc[i].to_dict()
            self.rejected.append(row | {"gate": gate, "reason": reason, "similarity": sim, "match": match})
            reasons[reason.split(":")[0]] += 1
        self.frame = self.frame.drop(index=list(drops)).reset_index(drop=True)
        self.reports.append(
            GateReport(
                gate=gate,
                input=before,
                kept=len(self.frame),
                dropped=len(drops),
                reasons=dict(reasons),
                detail=detail or {},
            )
        )
        self.say(f"gate {gate}: kept {len(self.frame)} of {before}")


def schema_report(rows: int, examples: int, rejections: list[Rejection], rejected_total: int) -> GateReport:
    """The schema gate: rows read against rows that validated (rejections happen upstream, in pydantic)."""
    reasons = Counter(_reason_kind(r.reason) for r in rejections)
    if rejected_total > len(rejections):
        reasons["(further rejections not itemised)"] = rejected_total - len(rejections)
    return GateReport(gate="schema", input=rows, kept=examples, dropped=rejected_total, reasons=dict(reasons))


def examples_frame(examples: list[SyntheticExample]) -> pd.DataFrame:
    return pd.DataFrame([e.model_dump() for e in examples], columns=SYNTHETIC_COLUMNS)


class _Embeddings:
    """Embeddings by text, computed in a few batched calls."""

    def __init__(self, embed: Embed) -> None:
        self.embed = embed
        self.index: dict[str, np.ndarray] = {}

    def add(self, texts: list[str]) -> None:
        new = sorted(set(texts) - self.index.keys())
        if new:
            self.index.update(zip(new, self.embed(new), strict=False))

    def of(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, next(iter(self.index.values())).shape[0] if self.index else 1), dtype=np.float32)
        return np.stack([self.index[t] for t in texts]).astype(np.float32)


def run_gates(
    examples: list[SyntheticExample],
    schema: GateReport,
    splits: dict[str, pd.DataFrame],
    config: GateConfig,
    embed: Embed,
    judge: Judge | None = None,
    progress: Progress | None = None,
) -> GateOutcome:
    """Apply the gates to ``examples`` against the real ``splits`` (train, val, test frames).
    ``progress``, if given, gets a start line with the sizes, one line per gate with its counts, the
    label judge's progress (every ~10% or 30 s, whichever is rarer) and an end line with the time;
    ``embed`` reports its own progress (it is the caller's)."""
    run = _Run(examples_frame(examples), progress)
    run.reports.append(schema)
    train, val, test = splits["train"], splits["val"], splits["test"]
    say(
        progress,
        f"gates: {len(run.frame)} examples against {len(train)} train, {len(val)} val and {len(test)} test pairs "
        f"(label verification: {config.verify})",
    )

    # exact duplicates
    train_keys = {pair_key(c, e): i for i, (c, e) in enumerate(zip(train["claim"], train["evidence"], strict=False))}
    seen: dict[str, int] = {}
    drops: dict[int, tuple[str, float | None, str | None]] = {}
    for i, (c, e, label) in enumerate(zip(run.frame["claim"], run.frame["evidence"], run.frame["label"], strict=False)):
        key = pair_key(c, e)
        if key in train_keys:
            drops[i] = ("exact copy of a train pair", 1.0, f"train row {train_keys[key]}")
        elif key in seen:
            first = seen[key]
            same = run.frame.at[first, "label"] == label
            drops[i] = (
                "exact duplicate within the synthetic set" + ("" if same else " (other label)"),
                1.0,
                run.frame.at[first, "origin"],
            )
        else:
            seen[key] = i
    run.drop("exact_duplicates", drops)

    # embeddings, once per text
    vectors = _Embeddings(embed)
    holdout = {
        name: sorted(set(frame["claim"]) | set(frame["evidence"])) for name, frame in (("val", val), ("test", test))
    }
    vectors.add(list(run.frame["claim"]) + list(run.frame["evidence"]))
    vectors.add(list(train["claim"]) + list(train["evidence"]) + holdout["val"] + holdout["test"])
    run.say(f"gates: {len(vectors.index)} texts embedded")

    # decontamination against val and test
    held_texts = holdout["val"] + holdout["test"]
    held_split = ["val"] * len(holdout["val"]) + ["test"] * len(holdout["test"])
    held = vectors.of(held_texts)
    c_best, c_where = max_similarity(vectors.of(list(run.frame["claim"])), held)
    e_best, e_where = max_similarity(vectors.of(list(run.frame["evidence"])), held)
    drops = {}
    for i in range(len(run.frame)):
        which, best, where = (
            ("claim", c_best[i], c_where[i]) if c_best[i] >= e_best[i] else ("evidence", e_best[i], e_where[i])
        )
        if best >= config.decontamination_threshold:
            drops[i] = (
                f"{which} too similar to a {held_split[where]} text: cos {best:.3f}",
                float(best),
                held_texts[where],
            )
    kept_max = np.maximum(c_best, e_best)[[i for i in range(len(run.frame)) if i not in drops]]
    run.drop(
        "decontamination",
        drops,
        {
            "threshold": config.decontamination_threshold,
            "holdout_texts": len(held_texts),
            "max_similarity_kept": round(float(kept_max.max()), 4) if len(kept_max) else None,
            "by_split": dict(Counter(held_split[c_where[i] if c_best[i] >= e_best[i] else e_where[i]] for i in drops)),
        },
    )

    # near duplicates: within the set, then against train
    claims, evidences = vectors.of(list(run.frame["claim"])), vectors.of(list(run.frame["evidence"]))
    within = greedy_near_duplicates(claims, evidences, config.near_duplicate_threshold)
    t_best, t_where = max_pair_similarity(
        claims, evidences, vectors.of(list(train["claim"])), vectors.of(list(train["evidence"]))
    )
    drops = {}
    for i in range(len(run.frame)):
        if t_best[i] >= config.near_duplicate_threshold:
            drops[i] = (
                f"near duplicate of a train pair: cos {t_best[i]:.3f}",
                float(t_best[i]),
                f"train row {int(t_where[i])}",
            )
        elif i in within:
            j, sim = within[i]
            drops[i] = (f"near duplicate within the synthetic set: cos {sim:.3f}", sim, run.frame.at[j, "origin"])
    run.drop("near_duplicates", drops, {"threshold": config.near_duplicate_threshold})

    # label verification
    verdict: Agreement | None = None
    if config.verify != "none" and len(run.frame):
        given = list(run.frame["label"])
        reference = None
        if config.verify == "classifier":
            run.say(f"label verification: fitting the classifier on {len(train)} train pairs (3 values of C)")
            model, reference = train_classifier(
                pair_features(vectors.of(list(train["claim"])), vectors.of(list(train["evidence"]))),
                train["label"].map(LABEL_TO_ID).to_numpy(),
                pair_features(vectors.of(list(val["claim"])), vectors.of(list(val["evidence"]))),
                val["label"].map(LABEL_TO_ID).to_numpy(),
            )
            predicted: list[str | None] = [
                LABELS[k]
                for k in model.predict(
                    pair_features(vectors.of(list(run.frame["claim"])), vectors.of(list(run.frame["evidence"])))
                )
            ]
        else:
            if judge is None:
                raise ValueError("verify='llm' needs an LLM judge (configure an endpoint)")
            run.say(f"label verification: asking the LLM judge about {len(run.frame)} examples")
            judged = ProgressLog(progress, "label verification", len(run.frame), unit="examples")
            predicted = []
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=JUDGE_THREADS
            ) as pool:  # the client caps requests in flight
                for verdict_label in pool.map(judge, run.frame["claim"], run.frame["evidence"]):
                    predicted.append(verdict_label)
                    judged.advance(1)  # here, in this thread: ProgressLog is not thread-safe
        verdict = agreement(config.verify, given, predicted)
        verdict.reference = reference
        drops = {}
        if config.verify_action == "filter":
            drops = {
                i: (f"verifier ({config.verify}) says {p}", None, p)
                for i, (g, p) in enumerate(zip(given, predicted, strict=False))
                if p is not None and p != g
            }
        by_source: dict[str, list[bool]] = {}
        for source, g, p in zip(run.frame["source"], given, predicted, strict=False):
            if p is not None:
                by_source.setdefault(source, []).append(g == p)
        detail = verdict.model_dump(exclude={"confusion", "per_label"}) | {
            "action": config.verify_action,
            "agreement_by_source": {src: round(float(np.mean(v)), 4) for src, v in sorted(by_source.items())},
        }
        run.drop("label_verification", drops, detail)

    # class balance
    counts = dict(Counter(run.frame["label"]))
    train_counts = dict(Counter(train["label"]))
    targets = balance_targets(counts, train_counts, config.balance)
    keep = choose_rows(list(run.frame["label"]), targets, config.balance.seed)
    drops = {int(i): (f"over the {run.frame.at[int(i), 'label']} target", None, None) for i in np.flatnonzero(~keep)}
    run.drop(
        "class_balance",
        drops,
        {
            "mode": config.balance.mode,
            "before": {name: counts.get(name, 0) for name in LABELS},
            "targets": targets,
            "train": {name: train_counts.get(name, 0) for name in LABELS},
        },
    )

    rejected = pd.DataFrame(run.rejected, columns=REJECTED_COLUMNS)
    run.say(f"gates: kept {len(run.frame)} of {len(examples)} examples")
    return GateOutcome(
        kept=run.frame[SYNTHETIC_COLUMNS].copy(), rejected=rejected, reports=run.reports, agreement=verdict
    )
