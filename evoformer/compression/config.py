"""What a compression run tries: pruning sparsities and ratios, quantizers, fine-tuning, measurement."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evoformer.candidates.job import TrainConfig
from evoformer.fields import factory_field, form_schema

Quantizer = Literal["torch_ao", "torchao", "onnxruntime"]
QUANTIZER_LABELS: dict[str, str] = {
    "torch_ao": "int8-torch.ao",
    "torchao": "int8-torchao",
    "onnxruntime": "int8-onnxruntime",
}


def unstructured_variant(sparsity: float) -> str:
    return f"unstructured-{sparsity:.0%}"


def structured_variant(ratio: float) -> str:
    return f"structured-{ratio:.0%}"


def default_finetune() -> TrainConfig:
    """Short fine-tuning after pruning: a few epochs at a lower learning rate, best epoch on val."""
    return TrainConfig(max_epochs=3, time_budget_s=90.0, learning_rate=3e-4, patience=1)


class CompressConfig(BaseModel):
    """The variants made from one trained candidate, and how they are fine-tuned and measured."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    sparsities: list[float] = factory_field(
        lambda: [0.5, 0.8],
        title="Unstructured sparsities",
        description="Global unstructured magnitude pruning levels (each fine-tuned, then made permanent).",
    )
    structured_ratios: list[float] = factory_field(
        lambda: [0.25, 0.5],
        description=(
            "Structured pruning: share of channels / FFN neurons / head dims removed by importance (Torch-Pruning)."
        ),
    )
    quantizers: list[Quantizer] = factory_field(
        lambda: list[Quantizer](["torch_ao", "onnxruntime"]),
        title="Int8 quantizers",
        description=(
            "Dynamic int8 paths: torch_ao (quantize_dynamic), torchao (Int8DynamicActivationInt8Weight), onnxruntime."
        ),
    )
    onnx_int8_ops: list[str] = factory_field(
        lambda: ["MatMul", "Gemm"],
        title="ONNX int8 op types",
        description="ONNX op types quantized by onnxruntime (add Conv for smaller but, here, slower conv models).",
    )
    quantize_structured: bool = Field(
        default=True, title="Quantize structured variants", description="Also quantize each structured-pruned variant."
    )
    onnx_fp32: bool = Field(
        default=True,
        title="Measure fp32 under ONNX Runtime",
        description="Also measure the fp32 model under ONNX Runtime (runtime gain alone).",
    )
    finetune: TrainConfig = factory_field(
        default_finetune,
        title="Fine-tuning",
        description="Fine-tuning after each pruning (a short training: few epochs, lower learning rate).",
    )
    latency_repeats: int = Field(
        default=50,
        ge=3,
        title="Latency repeats (variants)",
        description="Timed runs per batch size of each variant (median after warm-up).",
    )
    threads: int = Field(
        default=1,
        ge=1,
        title="Latency threads",
        description="Fixed torch / ONNX Runtime threads for every latency measurement.",
    )
    max_f1_drop: float = Field(
        default=0.01,
        ge=0,
        title="Largest macro-F1 drop",
        description="Largest val macro-F1 drop a variant may have to be 'best'.",
    )

    def finetuned_variants(self) -> set[str]:
        """Names of the variants that are fine-tuned (the only ones that may report epochs)."""
        return {unstructured_variant(s) for s in self.sparsities} | {
            structured_variant(r) for r in self.structured_ratios
        }
