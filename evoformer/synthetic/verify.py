"""Label verification: a classifier trained on real train data, or an LLM judge; agreement statistics."""

from __future__ import annotations

import logging

import numpy as np
from pydantic import BaseModel, Field

from evoformer.labels import LABEL_TO_ID, LABELS, normalize_label
from evoformer.llm import BudgetExhausted, LLMAuthError, LLMClient, LLMError
from evoformer.metrics import ClassificationMetrics, classification_metrics
from evoformer.synthetic.jsontext import json_values

log = logging.getLogger(__name__)

JUDGE_SYSTEM = (
    "You check fact-verification data. Given a claim and an evidence sentence, answer whether the evidence "
    'SUPPORTS the claim, REFUTES it, or gives NOT_ENOUGH_INFO. Reply with JSON only: {"label": "..."}.'
)


class Agreement(BaseModel):
    """How often the verifier agrees with the examples' labels."""

    verifier: str
    checked: int = 0
    no_verdict: int = Field(default=0, description="Examples the verifier gave no usable label for (kept).")
    agreement: float | None = None
    cohen_kappa: float | None = None
    per_label: dict[str, dict[str, float | int | None]] = Field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = Field(default_factory=dict, description="given label -> predicted -> count")
    reference: dict[str, float] | None = Field(default=None, description="The classifier's own metrics on real val.")


def pair_features(claims: np.ndarray, evidences: np.ndarray) -> np.ndarray:
    """``[u, v, |u-v|, u*v]`` of claim and evidence embeddings (as the logistic-regression baseline)."""
    return np.hstack([claims, evidences, np.abs(claims - evidences), claims * evidences])


def train_classifier(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int = 0):
    """Standardised, class-balanced logistic regression, C chosen on real val macro-F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best: tuple[object, ClassificationMetrics, float] | None = None  # (model, its val metrics, its C)
    for c in (0.001, 0.01, 0.1):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
        )
        model.fit(x_train, y_train)
        metrics = classification_metrics(y_val, model.predict(x_val))
        if best is None or metrics.macro_f1 > best[1].macro_f1:
            best = (model, metrics, c)
    assert best is not None  # the loop above fits three values of C
    model, metrics, c = best
    return model, {"val_macro_f1": round(metrics.macro_f1, 4), "val_accuracy": round(metrics.accuracy, 4), "C": c}


def judge_label(client: LLMClient, claim: str, evidence: str, temperature: float = 0.0) -> str | None:
    """The judge's label, or None for a reply with no usable label or a failed call (auth and budget raise)."""
    messages = [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Claim: {claim}\nEvidence: {evidence}"},
    ]
    try:
        reply = client.complete(messages, temperature=temperature, json_mode=True)
    except (LLMAuthError, BudgetExhausted):
        raise
    except LLMError as exc:
        log.warning("label judge: request failed (%s)", exc)
        return None
    for value in json_values(reply.text):
        if isinstance(value, dict) and "label" in value:
            try:
                return normalize_label(value["label"])
            except ValueError:
                return None
    try:
        return normalize_label(reply.text.strip().strip(".\"'"))
    except ValueError:
        return None


def agreement(verifier: str, given: list[str], predicted: list[str | None]) -> Agreement:
    """Agreement, Cohen's kappa, per-label agreement and the confusion of given against predicted labels."""
    pairs = [(g, p) for g, p in zip(given, predicted, strict=False) if p is not None]
    out = Agreement(verifier=verifier, checked=len(pairs), no_verdict=len(given) - len(pairs))
    out.confusion = {g: {p: 0 for p in LABELS} for g in LABELS}
    for g, p in pairs:
        out.confusion[g][p] += 1
    if not pairs:
        return out
    n = len(pairs)
    observed = sum(g == p for g, p in pairs) / n
    out.agreement = round(observed, 4)
    matrix = np.array([[out.confusion[g][p] for p in LABELS] for g in LABELS], dtype=float)
    expected = float((matrix.sum(1) * matrix.sum(0)).sum()) / n**2
    out.cohen_kappa = round((observed - expected) / (1 - expected), 4) if expected < 1 else None
    for g in LABELS:
        total = int(matrix[LABEL_TO_ID[g]].sum())
        out.per_label[g] = {
            "given": total,
            "agreed": out.confusion[g][g],
            "agreement": round(out.confusion[g][g] / total, 4) if total else None,
        }
    return out
