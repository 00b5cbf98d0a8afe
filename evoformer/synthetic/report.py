"""The synthetic run's report: files under ``runs/<id>/synthetic/`` and its markdown and tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evoformer.files import write_text_atomic
from evoformer.labels import LABELS
from evoformer.synthetic.gates import GateOutcome

KEPT_FILE = "synthetic.parquet"
REJECTED_FILE = "rejected.parquet"
SYNTHESIS_REPORT_FILE = "report.json"
REPORT_MD = "report.md"


def gate_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per gate: input, kept, dropped and the reasons."""
    return [
        {
            "gate": g["gate"],
            "input": g["input"],
            "kept": g["kept"],
            "dropped": g["dropped"],
            "reasons": "; ".join(f"{k}: {v}" for k, v in g["reasons"].items()),
        }
        for g in report["gates"]
    ]


def file_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per imported file: rows read, examples, rejected, label source."""
    files = (report.get("imports") or {}).get("files", [])
    return [
        {
            "file": Path(f["path"]).parent.name + "/" + Path(f["path"]).name,
            "generator": f["generator"],
            "rows": f["rows_read"],
            "examples": f["examples"],
            "rejected": f["rejected"],
            "label_from": ", ".join(f["label_sources"]),
        }
        for f in files
    ]


def report_markdown(report: dict[str, Any]) -> str:
    """Gates, files, rejections and label agreement as markdown."""
    lines = ["# Synthetic data report", "", "| gate | input | kept | dropped | reasons |", "|---|---:|---:|---:|---|"]
    lines += [
        f"| {r['gate']} | {r['input']} | {r['kept']} | {r['dropped']} | {r['reasons']} |" for r in gate_rows(report)
    ]
    files = file_rows(report)
    if files:
        lines += ["", "| file | generator | rows | examples | rejected | label from |", "|---|---|---:|---:|---:|---|"]
        lines += [
            f"| {r['file']} | {r['generator']} | {r['rows']} | {r['examples']} | {r['rejected']} | {r['label_from']} |"
            for r in files
        ]
    verdict = report.get("label_verification")
    if verdict:
        lines += [
            "",
            f"Label verification ({verdict['verifier']}): agreement {verdict['agreement']}, Cohen's kappa "
            f"{verdict['cohen_kappa']}, {verdict['checked']} checked, {verdict['no_verdict']} without verdict.",
            "",
        ]
        if verdict.get("reference"):
            lines.append(f"The classifier on real val: {verdict['reference']}.")
        gate = next((g for g in report["gates"] if g["gate"] == "label_verification"), None)
        if gate and gate["detail"].get("agreement_by_source"):
            lines.append(
                "Agreement by source: "
                + ", ".join(f"{k} {v}" for k, v in gate["detail"]["agreement_by_source"].items())
                + "."
            )
        lines += ["", "| given \\ predicted | " + " | ".join(LABELS) + " |", "|---|" + "---:|" * len(LABELS)]
        lines += [f"| {g} | " + " | ".join(str(verdict["confusion"][g][p]) for p in LABELS) + " |" for g in LABELS]
    aug = report["augmented"]
    lines += [
        "",
        f"Kept {report['kept']} synthetic pairs ({report['synthetic_fraction_of_train']:.1%} of real train): "
        f"{report['kept_labels']}.",
        f"Augmented set {aug['version']}: `{aug['path']}`.",
    ]
    return "\n".join(lines) + "\n"


def write_report_files(folder: Path, outcome: GateOutcome, report: dict[str, Any]) -> None:
    """Kept and rejected tables, report.json and report.md under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    outcome.kept.to_parquet(folder / KEPT_FILE, index=False)
    rejected = outcome.rejected.copy()
    rejected["similarity"] = pd.to_numeric(rejected["similarity"], errors="coerce")
    rejected.astype({c: "string" for c in rejected.columns if c != "similarity"}).to_parquet(
        folder / REJECTED_FILE, index=False
    )
    write_text_atomic(folder / SYNTHESIS_REPORT_FILE, json.dumps(report, indent=2, default=str))
    write_text_atomic(folder / REPORT_MD, report_markdown(report))
