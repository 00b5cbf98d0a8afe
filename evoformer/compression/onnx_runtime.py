"""ONNX export (torch.export / dynamo, dynamic batch and length), dynamic int8 with ONNX Runtime,
and an inference session that behaves like a model. Runs inside the sandbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

MAX_DIM = 4096


def export_onnx(model: nn.Module, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> Path:
    """Export ``model(x, mask)`` with dynamic batch and sequence dimensions; node metadata (stack
    traces) is dropped so the file holds the graph and the weights only."""
    batch = torch.export.Dim("batch", min=1, max=MAX_DIM)
    length = torch.export.Dim("length", min=1, max=MAX_DIM)
    program = torch.onnx.export(
        model.eval(),
        example,
        dynamo=True,
        dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}),
        verbose=False,
    )
    if program is None:  # torch returns None only for the legacy exporter, which dynamo=True does not use
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))
    strip_metadata(path)
    _check_dynamic(path, example)
    return path


def _check_dynamic(path: Path, example: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The graph must accept another batch size and length than the example's; a forward that
    branches on concrete shapes gets exported for the example's shape only."""
    from evoformer.compression.techniques import NotApplicable

    x, mask = example
    other = (
        torch.zeros(1, x.shape[1] + 3, *x.shape[2:], dtype=x.dtype),
        torch.ones(1, x.shape[1] + 3, dtype=mask.dtype),
    )
    try:
        OnnxModel(path, threads=1)(*other)
    except Exception as exc:  # noqa: BLE001
        raise NotApplicable(
            f"the exported graph only runs on the example's shape (the forward depends on concrete "
            f"sizes): {str(exc)[:200]}"
        ) from exc


def strip_metadata(path: Path) -> None:
    """Drop per-node doc strings and metadata (the exporter stores Python stack traces there)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    onnx.save(model, str(path))


def quantize_onnx(source: Path, target: Path, op_types: list[str] | None = None) -> Path:
    """Dynamic int8 (weights int8 ahead of time, activations at run time) on ``op_types``, by
    default MatMul and Gemm only: ORT's ConvInteger was 2-3x slower than fp32 Conv here."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=op_types or ["MatMul", "Gemm"]
    )
    strip_metadata(target)
    return target


def onnx_counts(path: Path) -> tuple[int, int]:
    """(total, non-zero) numbers stored in an ONNX file: initializers and constant nodes."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = list(graph.initializer) + [
        attribute.t
        for node in graph.node
        if node.op_type == "Constant"
        for attribute in node.attribute
        if attribute.name == "value"
    ]
    total = nonzero = 0
    for tensor in tensors:
        values = numpy_helper.to_array(tensor)
        total += values.size
        nonzero += int(np.count_nonzero(values))
    return total, nonzero


class OnnxModel:
    """An ONNX Runtime session called like the model: ``(x, mask) -> logits`` tensors."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feeds = dict(zip(self.inputs, (x.numpy(), mask.numpy()), strict=False))
        return torch.from_numpy(self.session.run(None, feeds)[0])
