"""Runs inside the sandbox: load a trained candidate, make its compressed variants, and report each
variant's predictions, size file, parameter counts and latency. Never sees val or test labels:
fine-tuning asks the orchestrator for best/stop, as training does.

Usage (by the runner only): ``python -I -m evoformer.compression.worker FOLDER``.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from evoformer.candidates.job import PROGRAM_FILE, TRAIN_LABELS_FILE, WEIGHTS_FILE
from evoformer.candidates.training import build, fit, fit_sets, measure_latency, predict, probe, tensors
from evoformer.compression.config import QUANTIZER_LABELS, CompressConfig, structured_variant, unstructured_variant
from evoformer.compression.job import REFERENCE, VARIANTS_DIR, CompressJob, CompressWorkerResult, VariantOutput
from evoformer.features.store import load_split_features
from evoformer.sandbox import audit
from evoformer.sandbox.protocol import Channel, Outcome, run_job


def main(folder: Path) -> int:
    return run_job(folder, CompressJob, run, CompressWorkerResult)


def _import_libraries(config: CompressConfig) -> dict[str, str]:
    """Import the libraries this configuration uses before the audit hook is on (they read and
    cache files as they load); report their versions. A missing one fails only its variants."""
    import importlib

    import torch

    modules = ["onnx", "onnxruntime", "onnxscript", "onnxruntime.quantization", "torch.onnx._internal.exporter._core"]
    wanted = (["torch_pruning"] if config.structured_ratios else []) + (
        ["torchao", "torchao.quantization"] if "torchao" in config.quantizers else []
    )
    if "onnxruntime" in config.quantizers or config.onnx_fp32:
        wanted += modules
    versions = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            versions[name] = f"unavailable: {type(exc).__name__}"
            continue
        if "." not in name:
            versions[name] = getattr(module, "__version__", "?")
    return versions


class VariantMaker:
    """Builds, measures and records variants; a failing variant is recorded, never fatal."""

    def __init__(self, folder: Path, job: CompressJob, data: dict, y_train: np.ndarray, channel: Channel) -> None:
        self.folder, self.job, self.config = folder, job, job.config
        self.data, self.y_train, self.channel = data, y_train, channel
        self.variants: list[VariantOutput] = []
        self.exports: dict[str, Path] = {}
        (folder / VARIANTS_DIR).mkdir(exist_ok=True)
        self.example = tensors(data["val"], np.arange(min(2, len(data["val"]))))

    def path(self, name: str, suffix: str) -> Path:
        return self.folder / VARIANTS_DIR / (name.replace("%", "pct").replace("+", "_") + suffix)

    def record(
        self,
        name: str,
        technique: str,
        forward: Callable,
        file: Path,
        counts: tuple[int, int],
        epochs: int = 0,
        started: float | None = None,
    ) -> None:
        nc = self.job.num_classes
        self.variants.append(
            VariantOutput(
                name=name,
                technique=technique,
                file=str(file.relative_to(self.folder)),
                val_pred=predict(forward, self.data["val"], nc).tolist(),
                test_pred=predict(forward, self.data["test"], nc).tolist(),
                params_total=counts[0],
                params_nonzero=counts[1],
                latency_ms=measure_latency(forward, self.data["val"], self.config.latency_repeats),
                finetune_epochs=epochs,
                seconds=round(time.perf_counter() - (started or time.perf_counter()), 3),
            )
        )

    @contextlib.contextmanager
    def attempt(self, name: str, technique: str) -> Iterator[None]:
        from evoformer.compression.techniques import NotApplicable

        try:
            yield
        except NotApplicable as exc:
            self.variants.append(
                VariantOutput(name=name, technique=technique, status="not_applicable", reason=str(exc))
            )
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            reason = f"{type(exc).__name__}: {str(exc)[:500]}"
            self.variants.append(VariantOutput(name=name, technique=technique, status="failed", reason=reason))

    def finetune(self, model, name: str) -> int:
        fitted = fit(
            model,
            self.data["train"],
            self.data["val"],
            self.y_train,
            self.config.finetune,
            self.job.num_classes,
            self.channel,
            tag={"variant": name},
        )
        return fitted.epochs

    def quantized(self, model, base: str, counts: tuple[int, int]) -> None:
        """Every configured int8 path applied to ``model`` (left unchanged)."""
        from evoformer.compression import techniques

        for quantizer in self.config.quantizers:
            name = QUANTIZER_LABELS[quantizer] if base == REFERENCE else f"{base}+{QUANTIZER_LABELS[quantizer]}"
            started = time.perf_counter()
            with self.attempt(name, quantizer):
                if quantizer == "onnxruntime":
                    self.onnx(model, base, name, quantize=True, started=started)
                    continue
                import torch

                if quantizer == "torch_ao":
                    quantized = techniques.dynamic_int8(copy.deepcopy(model))
                    forward = _without_mha_fastpath(quantized)
                else:
                    quantized = techniques.torchao_int8(copy.deepcopy(model))
                    forward = quantized
                file = self.path(name, ".pt")
                torch.save(quantized.state_dict(), file)
                self.record(name, quantizer, forward, file, counts, started=started)

    def exported(self, model, base: str) -> Path:
        """The ONNX export of the ``base`` model, made once and shared by its fp32 and int8 variants."""
        from evoformer.compression import onnx_runtime

        if base not in self.exports:
            scratch = self.folder / "tmp" / self.path(base, ".onnx").name
            self.exports[base] = onnx_runtime.export_onnx(model, self.example, scratch)
        return self.exports[base]

    def onnx(self, model, base: str, name: str, quantize: bool, started: float) -> None:
        from evoformer.compression import onnx_runtime

        fp32, file = self.exported(model, base), self.path(name, ".onnx")
        if quantize:
            onnx_runtime.quantize_onnx(fp32, file, self.config.onnx_int8_ops)
        else:
            shutil.copyfile(fp32, file)
        session = onnx_runtime.OnnxModel(file, self.config.threads)
        self.record(
            name,
            "onnxruntime" if quantize else "onnxruntime-fp32",
            session,
            file,
            onnx_runtime.onnx_counts(file),
            started=started,
        )


def _without_mha_fastpath(model) -> Callable:
    """``quantize_dynamic`` models with ``nn.MultiheadAttention`` crash on the MHA fast path."""
    from evoformer.compression.techniques import mha_fastpath_disabled

    def forward(x, mask):
        with mha_fastpath_disabled():
            return model(x, mask)

    model.eval()
    return forward


def run(folder: Path, job: CompressJob) -> CompressWorkerResult:
    import torch
    from safetensors.torch import load_model, save_model

    config: CompressConfig = job.config
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.finetune.seed)
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    tempfile.tempdir = str(tmp)  # exporters and quantizers write scratch files: keep them inside the folder
    environment = _import_libraries(config) | {"threads": str(config.threads)}
    from evoformer.compression import techniques

    channel = Channel()
    train, val = fit_sets(folder, job.features_path, job.fold)
    data = {"train": train, "val": val, "test": load_split_features(job.features_path, "test")}
    y_train = np.load(folder / TRAIN_LABELS_FILE)
    source = (folder / PROGRAM_FILE).read_text()
    if job.audit_hook:
        audit.install(str(folder))

    model = build(source, data["train"].dim, job.num_classes)
    try:
        load_model(model, str(folder / WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001
        raise Outcome(
            "build_error", f"the trained weights do not fit the program: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    probe(model, data["train"], job.num_classes)
    model.eval()
    maker = VariantMaker(folder, job, data, y_train, channel)
    reference_counts = techniques.parameter_counts(model)
    maker.record(REFERENCE, "none", model, folder / WEIGHTS_FILE, reference_counts)
    maker.quantized(model, REFERENCE, reference_counts)
    if config.onnx_fp32:
        with maker.attempt("onnx-fp32", "onnxruntime-fp32"):
            maker.onnx(model, REFERENCE, "onnx-fp32", quantize=False, started=time.perf_counter())

    for sparsity in config.sparsities:
        name, started = unstructured_variant(sparsity), time.perf_counter()
        with maker.attempt(name, "global-magnitude"):
            pruned = copy.deepcopy(model)
            weights = techniques.global_magnitude_prune(pruned, sparsity)
            epochs = maker.finetune(pruned, name)
            weights.make_permanent()
            file = maker.path(name, ".safetensors")
            save_model(pruned, str(file))
            maker.record(name, "global-magnitude", pruned, file, techniques.parameter_counts(pruned), epochs, started)

    for ratio in config.structured_ratios:
        name, started = structured_variant(ratio), time.perf_counter()
        with maker.attempt(name, "structured"):
            pruned = techniques.structured_prune(model, maker.example, ratio, job.num_classes)
            probe(pruned, data["train"], job.num_classes)
            epochs = maker.finetune(pruned, name)
            file = maker.path(name, ".safetensors")
            save_model(pruned, str(file))
            counts = techniques.parameter_counts(pruned)
            maker.record(name, "structured", pruned, file, counts, epochs, started)
            if config.quantize_structured:
                maker.quantized(pruned, name, counts)
    return CompressWorkerResult(status="ok", variants=maker.variants, environment=environment)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
