"""Model-level compression techniques. Pure torch (plus Torch-Pruning and torchao); callers run
them inside the sandbox, since the models they touch are built from untrusted programs.

Measured on this CPU (torch 2.13, AVX-512 VNNI): ``torch.ao.quantization.quantize_dynamic`` is the
eager int8 path that is both smaller and faster here; torchao's int8 dynamic path is slower than
fp32 unless compiled; ONNX Runtime (``onnx_runtime.py``) is the fastest. See README, Compression.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import warnings
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.nn.utils import prune

# Parameters pruned globally: weight matrices and kernels (dim >= 2), never biases or norms.
_PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.MultiheadAttention, nn.GRU, nn.LSTM, nn.RNN)


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) over the model's parameters (after ``PrunedWeights.make_permanent``)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def prunable_parameters(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every weight matrix or kernel of the layer types above (dim >= 2), as (module, name)."""
    found: list[tuple[nn.Module, str]] = []
    for module in model.modules():
        if isinstance(module, _PRUNABLE_TYPES):
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2 and not name.endswith("_orig"):
                    found.append((module, name))
    return found


class PrunedWeights:
    """The weights a global pruning masked, with the hook that keeps them masked while fine-tuning."""

    def __init__(self, model: nn.Module, targets: list[tuple[nn.Module, str]]) -> None:
        self.targets = targets
        # Layers that read a child's weight before the child's own pre-hook runs (for example
        # TransformerEncoderLayer reading self_attn.in_proj_weight) would otherwise see the last
        # step's masked tensor, whose graph is already freed: recompute every masked weight first.
        self._hook = model.register_forward_pre_hook(lambda _module, _inputs: self._refresh())

    def _refresh(self) -> None:
        for module, name in self.targets:
            if hasattr(module, f"{name}_mask"):
                setattr(module, name, getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask"))

    def sparsity(self) -> float:
        """Share of zeros over the pruned weights."""
        zeros = total = 0
        for module, name in self.targets:
            weight = getattr(module, name)
            zeros += int((weight == 0).sum())
            total += weight.numel()
        return zeros / max(total, 1)

    def make_permanent(self) -> None:
        """Fold the masks into the weights (``prune.remove``) and drop the hook."""
        self._hook.remove()
        for module, name in self.targets:
            if hasattr(module, f"{name}_mask"):
                prune.remove(module, name)


def global_magnitude_prune(model: nn.Module, sparsity: float) -> PrunedWeights:
    """Global unstructured L1 pruning to ``sparsity`` over all prunable weights. The masks stay on,
    so fine-tuning keeps pruned weights at zero; call ``make_permanent`` afterwards."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    targets = prunable_parameters(model)
    if not targets:
        raise ValueError("the model has no prunable weight matrices")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    return PrunedWeights(model, targets)


@contextlib.contextmanager
def mha_fastpath_disabled() -> Iterator[None]:
    """``quantize_dynamic`` on ``nn.TransformerEncoder`` crashes with the MHA fast path on."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def dynamic_int8(model: nn.Module) -> nn.Module:
    """Post-training dynamic int8 on Linear, GRU and LSTM layers (``torch.ao`` path). The MHA
    packed ``in_proj`` stays fp32. Run the result under ``mha_fastpath_disabled``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.qint8)


def serialized_bytes(model: nn.Module) -> int:
    """Size of the saved state dict (what lands on disk)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


class NotApplicable(Exception):
    """The technique does not apply to this architecture (the reason says why)."""


def structured_prune(model: nn.Module, example_inputs: tuple, ratio: float, num_classes: int) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of its prunable channels, FFN neurons and attention
    widths removed by group L2 importance (Torch-Pruning's dependency graph keeps coupled layers
    consistent). The classifier stays ``num_classes`` wide and attention widths stay multiples of
    their heads. If shrinking the attention width breaks the model (its residual stream is the
    input itself), attention is kept whole and only the rest is pruned. ``model`` is untouched."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"structured pruning ratio must be in (0, 1), got {ratio}")
    if any(isinstance(m, (nn.GRU, nn.LSTM, nn.RNN)) for m in model.modules()):
        raise NotApplicable("Torch-Pruning 1.6 cannot prune recurrent layers (GRU/LSTM/RNN)")
    before = parameter_counts(model)[0]
    problems = []
    for keep_attention_width in (False, True):
        pruned = copy.deepcopy(model)
        try:
            _torch_pruning_step(pruned, example_inputs, ratio, num_classes, keep_attention_width)
            with torch.no_grad():
                logits = pruned.eval()(*example_inputs)
            if tuple(logits.shape) != (len(example_inputs[0]), num_classes) or not torch.isfinite(logits).all():
                raise ValueError(f"pruned model gives logits of shape {tuple(logits.shape)} or non-finite values")
        except Exception as exc:  # noqa: BLE001 - any failure means: try the safer setting, or not applicable
            problems.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        if parameter_counts(pruned)[0] < before:
            return pruned
        problems.append("nothing could be removed")
    raise NotApplicable("Torch-Pruning could not shrink this model: " + " | ".join(problems))


def _torch_pruning_step(
    model: nn.Module, example_inputs: tuple, ratio: float, num_classes: int, keep_attention_width: bool
) -> None:
    import torch_pruning as tp

    outputs = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    attention = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    options: dict = {"round_to": math.lcm(*(m.num_heads for m in attention))} if attention else {}
    if keep_attention_width:
        options = {"num_heads": {m: m.num_heads for m in attention}}  # Torch-Pruning then leaves the width alone
    pruner = tp.pruner.MetaPruner(
        model,
        example_inputs,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=outputs,
        **options,
    )
    pruner.step()
    for module in attention:  # keep the attention bookkeeping in step with the new width
        module.head_dim = module.embed_dim // module.num_heads


def torchao_int8(model: nn.Module) -> nn.Module:
    """torchao's int8 dynamic-activation, int8-weight path on every ``nn.Linear`` (in place)."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model.eval(), Int8DynamicActivationInt8WeightConfig())
    return model
