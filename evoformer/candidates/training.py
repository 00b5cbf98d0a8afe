"""The training loop of a candidate: build the program's model, train it, predict, time it, save it.

It runs inside the sandbox only: the candidate worker (``evoformer.candidates.worker``) runs
``run`` for a training job, and the compression worker reuses ``build``, ``fit``, ``predict`` and
friends for fine-tuning. Val labels never come here: after each epoch ``fit`` sends its val
predictions over the protocol channel and the orchestrator answers whether this is the best
epoch and whether to stop. Test labels never come here either; test predictions are made once,
with the best weights.
"""

from __future__ import annotations

import copy
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np

from evoformer.candidates.job import (
    FOLD_FILE,
    PROGRAM_FILE,
    TRAIN_LABELS_FILE,
    WEIGHTS_FILE,
    TrainConfig,
    TrainJob,
    WorkerResult,
)
from evoformer.candidates.module_trace import ModuleTrace
from evoformer.candidates.program import ENTRY_POINT
from evoformer.features.store import PoolRows, SplitFeatures, load_split_features
from evoformer.sandbox import audit
from evoformer.sandbox.protocol import Channel, Outcome, limit_outcome


def run(folder: Path, job: TrainJob) -> WorkerResult:
    setup_start = time.perf_counter()
    import torch

    torch.set_num_threads(job.threads)
    torch.manual_seed(job.train.seed)
    np.random.seed(job.train.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    channel = Channel()
    train, val = fit_sets(folder, job.features_path, job.fold)
    test = load_split_features(job.features_path, "test")
    y_train = np.load(folder / TRAIN_LABELS_FILE)
    source = (folder / PROGRAM_FILE).read_text()
    if job.audit_hook:
        audit.install(str(folder))

    model = build(source, train.dim, job.num_classes)
    probe(model, train, job.num_classes)
    setup_seconds = time.perf_counter() - setup_start
    if job.smoke:
        smoke_step(model, train, y_train, job.num_classes)
        length_probe(model, train, job.num_classes)
        return WorkerResult(status="ok", timings_s={"setup": round(setup_seconds, 4)})
    fitted = fit(model, train, val, y_train, job.train, job.num_classes, channel)
    started = time.perf_counter()
    test_pred = predict(model, test, job.num_classes)
    latency = measure_latency(model, val, job.train.latency_repeats)
    evaluated = time.perf_counter()
    save_weights(model, folder / WEIGHTS_FILE)
    timings = {
        "setup": setup_seconds,
        "train": fitted.train_seconds,
        "evaluate": evaluated - started,
        "save": time.perf_counter() - evaluated,
    }
    return WorkerResult(
        status="ok",
        val_pred=fitted.val_pred.tolist(),
        test_pred=test_pred.tolist(),
        epochs=fitted.epochs,
        best_epoch=fitted.best_epoch,
        train_seconds=round(fitted.train_seconds, 3),
        latency_ms=latency,
        timings_s={k: round(v, 4) for k, v in timings.items()},
    )


def fit_sets(folder: Path, features_path: str, fold: bool) -> tuple[SplitFeatures | PoolRows, SplitFeatures | PoolRows]:
    """What trains and what validates: the train and val splits, or (``fold``) the rows of both
    that ``FOLD_FILE`` in ``folder`` names."""
    train = load_split_features(features_path, "train")
    val = load_split_features(features_path, "val")
    if not fold:
        return train, val
    with np.load(folder / FOLD_FILE) as index:
        return PoolRows([train, val], index["train_index"]), PoolRows([train, val], index["val_index"])


class Fitted(NamedTuple):
    epochs: int
    best_epoch: int
    val_pred: np.ndarray
    train_seconds: float


def fit(
    model,
    train,
    val,
    y_train: np.ndarray,
    config: TrainConfig,
    num_classes: int,
    channel: Channel,
    tag: dict | None = None,
) -> Fitted:
    """AdamW with class-weighted cross-entropy; after each epoch the val predictions go to the
    orchestrator, which answers best/stop. Ends with the best epoch's weights loaded.
    ``tag`` is added to each epoch message (the compression worker names its variant there)."""
    import torch

    rng = np.random.default_rng(config.seed)
    started = time.perf_counter()
    train_index = np.arange(len(train))
    if config.max_train_pairs:
        train_index = rng.permutation(train_index)[: config.max_train_pairs]
    counts = np.bincount(y_train[train_index], minlength=num_classes).astype(np.float64)
    weights = torch.tensor(len(train_index) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    best_state, best_epoch, epochs, val_pred = None, -1, 0, None
    epoch_seconds = 0.0
    for epoch in range(config.max_epochs):
        elapsed = time.perf_counter() - started
        if epoch > 0 and elapsed + epoch_seconds > config.time_budget_s:
            break
        epoch_start = time.perf_counter()
        model.train()
        out_of_time = False
        for batch in bucketed_batches(train_index, train.lengths, config.batch_size, rng):
            if time.perf_counter() - started > config.time_budget_s:
                out_of_time = True  # the budget also ends an epoch that is too long for it
                break
            x, mask = tensors(train, batch)
            loss = training_loss(loss_fn, model(x, mask), torch.from_numpy(y_train[batch]), num_classes)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
        epochs = epoch + 1
        epoch_pred = predict(model, val, num_classes)
        epoch_seconds = time.perf_counter() - epoch_start
        message = {
            "type": "epoch",
            **(tag or {}),
            "epoch": epoch,
            "loss": float(loss.detach()),
            "val_pred": epoch_pred.tolist(),
        }
        reply = channel.ask(message)
        if reply.get("best", best_state is None):
            best_state, best_epoch, val_pred = copy.deepcopy(model.state_dict()), epoch, epoch_pred
        if reply.get("stop") or out_of_time:
            break
    train_seconds = time.perf_counter() - started
    if best_state is None or val_pred is None:
        raise Outcome("runtime_error", "training ended before its first epoch")
    model.load_state_dict(best_state)
    return Fitted(epochs, best_epoch, val_pred, train_seconds)


def bucketed_batches(index: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 50):
    """Shuffled batches of similar length: less padding, same randomness across epochs and seeds."""
    shuffled = rng.permutation(index)
    batches = []
    for start in range(0, len(shuffled), batch_size * pool):
        chunk = shuffled[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def build(source: str, input_dim: int, num_classes: int):
    import torch

    namespace: dict = {"__name__": "candidate"}
    try:
        exec(compile(source, PROGRAM_FILE, "exec"), namespace)  # noqa: S102 - this is the sandbox
        factory = namespace.get(ENTRY_POINT)
        if not callable(factory):
            raise Outcome("build_error", f"{ENTRY_POINT} is not defined")
        model = factory(input_dim, num_classes)
    except Outcome:
        raise
    except BaseException as exc:  # noqa: BLE001
        raise program_fault(exc, "build_error") from exc
    if not isinstance(model, torch.nn.Module):
        raise Outcome("build_error", f"{ENTRY_POINT} returned {type(model).__name__}, not torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):
        raise Outcome("build_error", "the model has no trainable parameters")
    return model


def program_fault(exc: BaseException, status: str, what: str = "", where: str = "") -> Outcome:
    """The outcome of an exception the program raised: a limit's (memory, time) if it was one, else
    ``status`` with ``what: Type: message`` and ``where`` (a :class:`ModuleTrace` location) after it.
    The traceback goes to stderr, where the orchestrator reads the program's own frames from."""
    traceback.print_exc()
    message = f"{type(exc).__name__}: {str(exc)[:500]}" + (f"; raised {where}" if where else "")
    return limit_outcome(exc) or Outcome(status, f"{what}: {message}" if what else message)


def tensors(features, batch):
    import torch

    x, mask = features.batch(batch)
    return torch.from_numpy(x), torch.from_numpy(mask)


MAX_TRAINING_HEADS = 64


def training_loss(loss_fn, output, targets, num_classes: int):
    """The loss of one training batch. In training mode a program may return a tuple or list of
    logits (ensemble heads) instead of one tensor: each head gets its own cross-entropy and the
    loss is their mean, so the heads learn independently. In eval mode it returns one tensor,
    e.g. the heads' mean log-probability."""
    heads = list(output) if isinstance(output, (tuple, list)) else [output]
    if not 1 <= len(heads) <= MAX_TRAINING_HEADS:
        raise Outcome(
            "invalid_output", f"forward returned {len(heads)} heads in training; 1 to {MAX_TRAINING_HEADS} allowed"
        )
    for logits in heads:
        check_logits(logits, len(targets), num_classes)
    return sum(loss_fn(logits, targets) for logits in heads) / len(heads)


def check_logits(logits, batch: int, num_classes: int) -> None:
    import torch

    if not isinstance(logits, torch.Tensor):
        raise Outcome("invalid_output", f"forward returned {type(logits).__name__}, not a tensor")
    if tuple(logits.shape) != (batch, num_classes):
        raise Outcome("invalid_output", f"logits have shape {tuple(logits.shape)}, expected ({batch}, {num_classes})")
    if not torch.isfinite(logits).all():
        raise Outcome("invalid_output", "logits contain NaN or inf")


def probe(model, features, num_classes: int) -> None:
    """One forward pass on two real examples before training."""
    eval_forward(model, features, np.arange(min(2, len(features))), num_classes, "forward failed")


def eval_forward(model, features, batch: np.ndarray, num_classes: int, what: str) -> None:
    """One eval-mode forward pass on ``batch`` whose logits must be well formed; an exception of the
    program becomes its ``runtime_error`` outcome, ``what`` (``{tokens}``: the padded length) first."""
    import torch

    x, mask = tensors(features, batch)
    model.eval()
    with torch.no_grad(), ModuleTrace(model) as trace:
        try:
            logits = model(x, mask)
        except Outcome:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise program_fault(exc, "runtime_error", what.format(tokens=x.shape[1]), trace.where()) from exc
    check_logits(logits, len(batch), num_classes)


SMOKE_BATCH = 8


def smoke_step(model, features, y_train: np.ndarray, num_classes: int) -> None:
    """One training-mode forward and backward pass on the first few examples: the loss must be
    finite and reach at least one parameter with a finite gradient."""
    import torch

    batch = np.arange(min(SMOKE_BATCH, len(features)))
    x, mask = tensors(features, batch)
    model.train()
    with ModuleTrace(model) as trace:
        try:
            output = model(x, mask)
        except Outcome:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise program_fault(exc, "runtime_error", "training step failed", trace.where()) from exc
    try:
        loss = training_loss(torch.nn.CrossEntropyLoss(), output, torch.from_numpy(y_train[batch]), num_classes)
        loss.backward()
    except Outcome:
        raise
    except BaseException as exc:  # noqa: BLE001
        raise program_fault(exc, "runtime_error", "training step failed") from exc
    if not torch.isfinite(loss):
        raise Outcome("invalid_output", "the training loss is NaN or inf")
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    if not grads:
        raise Outcome("runtime_error", "the loss reaches no trainable parameter (no gradient)")
    if not all(torch.isfinite(g).all() for g in grads):
        raise Outcome("invalid_output", "a gradient is NaN or inf")


def length_probe(model, features, num_classes: int, size: int = 4) -> None:
    """Eval-mode forward passes on the shortest and on the longest examples, each batch padded to
    its own length. Why: the smoke and probe batches are the first examples, all padded to one
    length, and models written by an LLM often break at another one (a positional table shorter
    than the longest input, a convolution whose output no longer lines up with the mask), which
    would otherwise surface only in evaluation, after a whole training."""
    order = np.argsort(features.lengths, kind="stable")
    for batch in (order[:size], order[-size:]):
        eval_forward(
            model, features, batch, num_classes, f"forward failed on {len(batch)} examples padded to {{tokens}} tokens"
        )


def predict(model, features, num_classes: int) -> np.ndarray:
    """Predicted label ids for every example, in length-sorted batches of about 128.
    ``model`` is a module or any callable (x, mask) -> logits tensor."""
    import torch

    if isinstance(model, torch.nn.Module):
        model.eval()
    out = []
    order = np.argsort(features.lengths, kind="stable")
    with torch.no_grad():
        for batch in np.array_split(order, max(1, len(order) // 128)):
            x, mask = tensors(features, batch)
            logits = model(x, mask)
            check_logits(logits, len(batch), num_classes)
            out.append((batch, logits.argmax(dim=1).numpy()))
    pred = np.empty(len(features), dtype=np.int64)
    for batch, labels in out:
        pred[batch] = labels
    return pred


def measure_latency(model, features, repeats: int) -> dict[str, float]:
    """Median ms per example at batch 1 and 64 after warm-up, with the process's fixed thread count.
    ``model`` is a module or any callable (x, mask) -> logits."""
    import torch

    if isinstance(model, torch.nn.Module):
        model.eval()
    result = {}
    for size in (1, 64):
        x, mask = tensors(features, np.arange(min(size, len(features))))
        with torch.no_grad():
            for _ in range(3):
                model(x, mask)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x, mask)
                times.append(time.perf_counter() - start)
        result[f"batch{size}"] = round(1000 * float(np.median(times)) / len(x), 4)
    return result


def save_weights(model, path: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(path))
