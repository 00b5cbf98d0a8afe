"""What each sub-command prints without ``--json``: the run's tables next to the baselines.

Only the standard library at import; pandas is imported by the one formatter that needs it."""

from __future__ import annotations

from typing import Any


def baseline_lines(baselines: dict[str, dict[str, float]]) -> list[str]:
    """The baselines (majority class first) next to any quality figure."""
    return [
        f"baseline {name:<10} val {scores['val']:.4f}  test {scores['test']:.4f}  (macro-F1)"
        for name, scores in baselines.items()
    ]


def format_retrain_summary(summary: dict[str, Any]) -> str:
    """Each retrained candidate's new outcome."""
    lines = [f"run {summary['run_id']}  ->  {summary['run_dir']}"]
    for entry in summary["candidates"] or [
        {"id": "(none)", "status": "nothing failed", "reason": "", "val_macro_f1": None}
    ]:
        f1 = entry["val_macro_f1"]
        lines.append(
            f"{entry['id']}: {entry['status']}"
            + (f"  fitness {f1:.4f}" if f1 is not None else "")
            + (f"  ({entry['reason']})" if entry["reason"] else "")
        )
    return "\n".join(lines + [f"report: {summary['report']}"])


def format_compress_summary(summary: dict[str, Any]) -> str:
    """The comparison table of every compressed candidate (ratios against its fp32 model)."""
    import pandas as pd

    lines = [f"run {summary['run_id']}  ->  {summary['run_dir']}"]
    for entry in summary["candidates"]:
        lines += [
            "",
            f"{entry['candidate']}: {entry['status']}"
            + (f" ({entry['reason']})" if entry["reason"] else "")
            + f"   results: {entry['folder']}",
        ]
        if entry["table"]:
            with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
                lines.append(pd.DataFrame(entry["table"]).drop(columns=["status"]).to_string(index=False, na_rep="-"))
            lines.append(
                "size_x = fp32 bytes / variant bytes; speedup = fp32 ms / variant ms (same run, "
                f"{entry['environment'].get('threads', '?')} thread); "
                "* = fastest at batch 1 within the val macro-F1 budget" + ("" if entry["best"] else " (none within it)")
            )
    lines += baseline_lines(summary["baselines"])
    return "\n".join(lines)


def format_synth_summary(summary: dict[str, Any]) -> str:
    """Gate counts, imported files, label agreement and where the augmented set is."""
    from evoformer.synthetic.report import file_rows, gate_rows

    lines = [
        f"run {summary['run_id']}  ->  {summary['run_dir']}",
        "",
        "gate                 input   kept  dropped  reasons",
    ]
    for r in gate_rows(summary):
        lines.append(f"{r['gate']:<19} {r['input']:>6} {r['kept']:>6} {r['dropped']:>8}  {r['reasons']}")
    files = file_rows(summary)
    if files:
        lines += ["", "file                              generator   rows  examples  rejected  label from"]
        lines += [
            f"{r['file']:<33} {r['generator']:<10} {r['rows']:>5} {r['examples']:>9} {r['rejected']:>9}  "
            f"{r['label_from']}"
            for r in files
        ]
    gen = summary.get("generation")
    if gen:
        lines.append(
            f"generation: {gen['requests']} requests ({gen['failed_requests']} failed), {gen['examples']} examples, "
            f"{gen['rejected']} items rejected" + (f"; stopped: {gen['stopped']}" if gen["stopped"] else "")
        )
    v = summary.get("label_verification")
    if v:
        lines.append(
            f"label verification ({v['verifier']}): agreement {v['agreement']}, kappa {v['cohen_kappa']}, "
            f"{v['checked']} checked"
            + (f"; the classifier on real val: {v['reference']}" if v.get("reference") else "")
        )
    lines += [
        "",
        f"kept {summary['kept']} synthetic pairs ({summary['synthetic_fraction_of_train']:.1%} of real train): "
        f"{summary['kept_labels']}",
        f"augmented set {summary['augmented']['version']}: {summary['augmented']['path']}",
        f"report: {summary['files']['report.json']}",
    ]
    return "\n".join(lines)


def format_pipeline_summary(summary: dict[str, Any]) -> str:
    """The data and baseline tables, the evolve summary, the compression tables, where the report
    is, and last the verdict: did the best evolved candidate beat the best seed (fitness, test)?"""
    from evoformer.evolution.report import verdict

    parts = [format_data_summary(summary["data"]), format_evolve_summary(summary["evolve"], with_verdict=False)]
    if summary["compress"]:
        parts.append(format_compress_summary(summary["compress"]))
    parts.append(f"report: {summary['report']}\n\n{verdict(summary['evolve'])}")
    return "\n\n".join(parts)


def _children(n: int) -> str:
    return f"{n} child" if n == 1 else f"{n} children"


def _fitness_kind_line(summary: dict[str, Any]) -> str:
    from evoformer.evolution.report import fitness_kind_text

    fitness = summary.get("fitness")
    line = f"fitness: {fitness_kind_text(fitness)} (mean val macro-F1 over the folds ± SE)"
    if not fitness:
        return line
    line += f"; a gain must exceed {fitness['noise_se']:g} SE to dominate"
    if fitness.get("cascade"):
        line += (
            f"\ncascade: {_children(fitness.get('screened_out', 0))} stopped after stage 1 (no fitness), "
            f"{fitness.get('fully_evaluated', 0)} candidates fully evaluated"
        )
    else:
        line += f"\ncascade: off, {fitness.get('fully_evaluated', 0)} candidates fully evaluated"
    return line


def candidate_line(label: str, entry: dict[str, Any]) -> str:
    """``label  id  params  fitness 0.512 ± 0.011 (full, 3 folds), test 0.498`` of one candidate brief."""
    from evoformer.evolution.report import fitness_text

    fitness = entry.get("fitness") or {}
    mean = fitness.get("mean") if fitness.get("mean") is not None else entry.get("val_macro_f1")
    stage = fitness.get("stage") or "-"
    folds = fitness.get("folds_done")
    where = f"{stage}, {folds} fold{'s' if folds != 1 else ''}" if folds else stage
    test = entry.get("test_macro_f1")
    params = entry.get("params")
    return (
        f"{label:<16} {entry['id']:<22} {'-' if params is None else format(params, ','):>9} params  "
        f"fitness {fitness_text(mean, fitness.get('se')) or '-'} ({where}), "
        f"test {'-' if test is None else format(test, '.3f')}"
    )


def format_evolve_summary(summary: dict[str, Any], with_verdict: bool = True) -> str:
    """Counts, how fitness was measured, best candidates (fitness ± SE, stage, test) and the final
    Pareto front next to the baselines, ending with the verdict on fitness and on test."""
    from evoformer.evolution.report import llm_quality_text, verdict

    c = summary["candidates"]
    lines = [
        f"run {summary['run_id']}  ->  {summary['run_dir']}",
        f"operator: {summary['operator_reason']}",
        f"generations: {summary['generations']}" + (f"  (stopped: {summary['stopped']})" if summary["stopped"] else ""),
        f"candidates: {c['total']} total, {c['ok']} ok, {c['rejected']} rejected before training, "
        f"{c['failed']} failed in training",
        _fitness_kind_line(summary),
        "",
        "test is the kept (fold-0) model's macro-F1: measured, never used to choose.",
    ]
    for label, entry in (
        ("best", summary["best"]),
        ("best seed", summary["best_seed"]),
        ("best evolved", summary["best_evolved"]),
    ):
        if entry:
            lines.append(candidate_line(label, entry))
    lines += ["", "final Pareto front (fitness against params):"]
    for entry in summary["front"]:
        lines.append(candidate_line("", entry))
    lines += baseline_lines(summary["baselines"])
    llm = summary["llm"]
    if summary["operator"] == "llm":
        lines.append(
            f"LLM: {llm['requests']} requests, {llm['retries']} retries, {llm['cache_hits']} cached, "
            f"{llm['tokens']:,} tokens, ${llm['cost']:.4f}"
        )
        if quality := llm_quality_text(llm):
            lines.append(quality)
    lines.append(f"lineage: {summary['lineage']}   Pareto plot: {summary['pareto_plot']}")
    if with_verdict:
        lines += ["", verdict(summary)]
    return "\n".join(lines)


def format_train_summary(summary: dict[str, Any]) -> str:
    """One candidate's outcome next to the baselines."""
    lines = [f"{summary['name']}: {summary['status']}" + (f" ({summary['reason']})" if summary["reason"] else "")]
    m = summary["metrics"]
    if m:
        lines.append(
            f"params {m['params']:,}  epochs {m['epochs']} (best {m['best_epoch']})  train {m['train_seconds']:.1f} s"
        )
        lines.append(
            f"latency ms/example: batch1 {m['latency_ms']['batch1']:.3f}  batch64 {m['latency_ms']['batch64']:.3f}"
        )
        lines.append("model      split  macro_f1  accuracy")
        for split in ("val", "test"):
            lines.append(f"candidate  {split:<5} {m[split]['macro_f1']:>9.4f} {m[split]['accuracy']:>9.4f}")
    elif summary.get("stderr_tail"):
        lines += ["stderr (tail):", summary["stderr_tail"][-1500:]]
    for name, scores in summary["baselines"].items():
        lines.append(f"{name:<10} val {scores['val']:.4f}  test {scores['test']:.4f}  (macro-F1)")
    lines.append(f"candidate folder: {summary['folder']}")
    return "\n".join(lines)


def format_data_summary(summary: dict[str, Any]) -> str:
    """Human-readable split and baseline tables (majority line always shown)."""
    lines = [
        f"run {summary['run_id']}  ->  {summary['run_dir']}",
        "",
        "split   pairs  claims  SUPPORTS  REFUTES  NOT_ENOUGH_INFO",
    ]
    for name, s in summary["splits"].items():
        lab = s["labels"]
        lines.append(
            f"{name:<6} {s['pairs']:>6} {s['claims']:>7} {lab['SUPPORTS']:>9} {lab['REFUTES']:>8} "
            f"{lab['NOT_ENOUGH_INFO']:>16}"
        )
    lines += [f"claim overlap between splits: {summary['claim_overlap']}", ""]
    lines.append("baseline   split  macro_f1  weighted_f1  accuracy")
    for name, result in summary["baselines"].items():
        for split in ("val", "test"):
            m = result[split]
            lines.append(f"{name:<10} {split:<5} {m['macro_f1']:>9.4f} {m['weighted_f1']:>12.4f} {m['accuracy']:>9.4f}")
    lines += [
        "",
        f"features: {summary['features_path']} ({'reused from cache' if summary['features_cached'] else 'computed'})",
    ]
    return "\n".join(lines)
