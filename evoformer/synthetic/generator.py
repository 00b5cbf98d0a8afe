"""LLM generation of claim/evidence examples: one prompt per (target label, topic), few-shot from train.

Requests go through :class:`evoformer.llm.LLMClient` (retries, usage ledger, budget, reply cache)
in JSON mode; replies are parsed robustly (fences, prose around JSON, a bare array) and every
item is validated with pydantic. Failed requests and unusable items are counted with reasons.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from evoformer.config.synthesize import DEFAULT_TOPICS, GenerationConfig  # noqa: F401  (declared with the other settings)
from evoformer.data.sources import MAX_REPORTED_REJECTIONS
from evoformer.labels import normalize_label
from evoformer.llm import BudgetExhausted, LLMAuthError, LLMClient, LLMError
from evoformer.progress import Progress, ProgressLog, say
from evoformer.synthetic.importer import row_fields
from evoformer.synthetic.jsontext import json_values_found
from evoformer.synthetic.records import Rejection, SyntheticExample

log = logging.getLogger(__name__)

LABEL_INSTRUCTIONS = {
    "SUPPORTS": "the evidence sentence SUPPORTS the claim: it states facts that make the claim true",
    "REFUTES": "the evidence sentence REFUTES the claim: it states facts that show the claim is false",
    "NOT_ENOUGH_INFO": "the evidence sentence is on the same topic but gives NOT_ENOUGH_INFO: "
    "it neither supports nor refutes the claim",
}
SYSTEM = (
    "You write training data for climate fact-checking. Each example is a short claim as it might appear in the "
    "news or on social media, and one encyclopedic evidence sentence. Reply with JSON only, in the form "
    '{"examples": [{"claim": "...", "evidence": "..."}]}.'
)


class RequestPlan(BaseModel):
    index: int
    label: str
    topic: str
    count: int


class GenerationReport(BaseModel):
    """What generation asked for and got."""

    requests: int = 0
    failed_requests: int = 0
    stopped: str = ""
    items: int = Field(default=0, description="Items found in replies (and replies without any).")
    examples: int = 0
    rejected: int = 0
    labels: dict[str, int] = Field(default_factory=dict)
    rejections: list[Rejection] = Field(default_factory=list, description=f"The first {MAX_REPORTED_REJECTIONS}.")


@dataclass
class Generated:
    examples: list[SyntheticExample]
    report: GenerationReport


def plan_requests(config: GenerationConfig) -> list[RequestPlan]:
    """ceil(per_label / examples_per_request) requests per label; topics rotate across requests and labels."""
    plans: list[RequestPlan] = []
    labels = [normalize_label(label) for label in config.labels]
    for offset, label in enumerate(labels):
        remaining = config.per_label
        k = 0
        while remaining > 0:
            count = min(config.examples_per_request, remaining)
            topic = config.topics[(k * len(labels) + offset) % len(config.topics)]
            plans.append(RequestPlan(index=len(plans), label=label, topic=topic, count=count))
            remaining -= count
            k += 1
    return plans


def few_shot(train: pd.DataFrame, label: str, k: int, seed: int) -> list[tuple[str, str]]:
    """``k`` (claim, evidence) pairs of ``label`` drawn from the train split (never val or test)."""
    rows = train[train["label"] == label]
    if rows.empty or k == 0:
        return []
    picks = np.random.default_rng(seed).choice(len(rows), size=min(k, len(rows)), replace=False)
    return [(rows.iloc[i]["claim"], rows.iloc[i]["evidence"]) for i in sorted(picks)]


def build_messages(plan: RequestPlan, shots: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The chat messages of one request."""
    lines = [f"Write {plan.count} new, diverse examples about {plan.topic} where {LABEL_INSTRUCTIONS[plan.label]}."]
    if shots:
        lines.append("Examples of this label from real data (do not copy them):")
        lines += [json.dumps({"claim": c, "evidence": e}, ensure_ascii=False) for c, e in shots]
    lines.append(f'Reply with {{"examples": [...]}} holding exactly {plan.count} objects with "claim" and "evidence".')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def prompt_hash(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _items(text: str) -> tuple[list[object] | None, bool]:
    """The example items of a reply (``{"examples": [...]}``, a bare list, or one object) and whether
    the reply was whole; from a broken reply, the complete item objects found in it."""
    loose: list[object] = []
    for value, how in json_values_found(text):
        if isinstance(value, dict):
            for key in ("examples", "data", "items", "pairs"):
                if isinstance(value.get(key), list):
                    return value[key], True
            if any(isinstance(k, str) and k.lower() == "claim" for k in value):
                if how != "scan":
                    return [value], True
                loose.append(value)
        elif isinstance(value, list) and value:
            return value, True
    return (loose, False) if loose else (None, False)


def parse_reply(text: str, plan: RequestPlan, model: str, hash_: str) -> tuple[list[SyntheticExample], list[Rejection]]:
    """Validated examples of one reply, and a rejection per unusable item (or for a reply without JSON)."""
    where = f"request {plan.index}"
    items, whole = _items(text)
    if items is None:
        return [], [Rejection(origin=where, reason=f"reply holds no JSON examples: {text.strip()[:80]!r}")]
    examples, rejections = [], []
    if not whole:
        rejections.append(
            Rejection(
                origin=where,
                reason=f"malformed JSON reply: kept the {len(items)} complete item(s) in it; the rest is lost",
            )
        )
    for i, item in enumerate(items):
        origin = f"{where} item {i}"
        try:
            _, claim, evidence, label = row_fields(item)
            if label is not None and normalize_label(label) != plan.label:
                raise ValueError(f"label {label!r} is not the requested {plan.label}")
            examples.append(
                SyntheticExample(
                    claim=claim,
                    evidence=evidence,
                    label=plan.label,
                    source="llm",
                    generator=model,
                    prompt_hash=hash_,
                    origin=origin,
                )
            )
        except (ValidationError, ValueError, TypeError) as exc:
            reason = "; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            rejections.append(Rejection(origin=origin, reason=reason))
    return examples, rejections


def _one(client: LLMClient, plan: RequestPlan, train: pd.DataFrame, config: GenerationConfig):
    shots = few_shot(train, plan.label, config.few_shot, config.seed * 100_003 + plan.index)
    messages = build_messages(plan, shots)
    hash_ = prompt_hash(messages)
    try:
        reply = client.complete(
            messages, temperature=config.temperature, sample_index=plan.index, seed=config.seed, json_mode=True
        )
    except (LLMAuthError, BudgetExhausted):
        raise
    except LLMError as exc:
        return None, [Rejection(origin=f"request {plan.index}", reason=f"request failed: {exc}")]
    return parse_reply(reply.text, plan, reply.model or config.llm.model, hash_)


def generate(
    client: LLMClient, train: pd.DataFrame, config: GenerationConfig, progress: Progress | None = None
) -> Generated:
    """Run every planned request (``client.concurrency()`` at once); stop cleanly at the budget.
    ``progress``, if given, gets a start line (requests, labels, concurrency), a line every ~10% of
    the requests or 30 s, whichever is rarer (:class:`~evoformer.progress.ProgressLog`), and an end
    line with the counts and the time."""
    started = time.perf_counter()
    plans = plan_requests(config)
    report = GenerationReport()
    examples: list[SyntheticExample] = []
    concurrency = client.concurrency()
    say(
        progress,
        f"generation: {len(plans)} LLM requests for {config.per_label} examples per label "
        f"({', '.join(sorted({p.label for p in plans}))}), {concurrency} at once",
    )
    done = ProgressLog(progress, "generation", len(plans), unit="requests")
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(_one, client, plan, train, config) for plan in plans]
        for future in futures:  # one per plan, in plan order (so progress lags a slow early request)
            try:
                found, rejections = future.result()
            except BudgetExhausted as exc:
                report.stopped = str(exc)
                done.advance(1)
                continue
            done.advance(1)
            report.requests += 1
            if found is None:
                report.failed_requests += 1
                found = []
            report.items += len(found) + len(rejections)
            examples += found
            report.rejected += len(rejections)
            room = MAX_REPORTED_REJECTIONS - len(report.rejections)
            report.rejections += rejections[: max(room, 0)]
    if report.stopped:
        log.warning("generation stopped early: %s", report.stopped)
    report.examples = len(examples)
    report.labels = dict(Counter(e.label for e in examples))
    say(
        progress,
        f"generation: {report.requests} requests answered ({report.failed_requests} failed), {report.examples} "
        f"examples, {report.rejected} items rejected, {time.perf_counter() - started:.0f} s",
    )
    return Generated(examples=examples, report=report)
