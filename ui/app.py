"""The EvoFormer GUI (``evoformer ui``): upload seeds and a prelude, pick the operator and LLM,
set budgets, press Evolve; watch the run live; read each candidate's code and diffs; compress
chosen candidates and compare the variants; browse past runs.

The API key lives only in this Streamlit session (the password field's state) and is handed to a
run through the child's environment (local) or a Prefect Secret block (deployment); see ui/launch.py.
"""

from __future__ import annotations

import os
import subprocess
import typing
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from evoformer.compression.config import Quantizer
from evoformer.evolution.report import fitness_cell, folds_text, llm_quality_text, verdict
from evoformer.layout import RunLayout
from ui.launch import (
    DEFAULT_SECRET_BLOCK,
    Launched,
    RunStatus,
    compress_params,
    evolve_params,
    form_defaults,
    launched_of,
    log_tail,
    prefect_server_url,
    start_compress,
    start_evolve,
    status,
)
from ui.runs import (
    baselines,
    candidate_detail,
    compression_tables,
    fitness_kind,
    leaderboard,
    list_runs,
    load_population,
    pareto_points,
    progress,
    read_json,
    runs_root,
)

POLL_S = float(os.environ.get("EVOFORMER_UI_POLL_S", "2"))
QUANTIZERS = list(typing.get_args(Quantizer))


def _floats(text: str) -> list[float]:
    """'0.25, 0.5' -> [0.25, 0.5] (empty: none)."""
    return [float(part) for part in text.replace(",", " ").split()]


def _processes() -> dict[str, tuple[Launched, subprocess.Popen | None]]:
    """Runs started in this session: key 'evolve:<run>' or 'compress:<run>'."""
    return st.session_state.setdefault("processes", {})


def _text(key: str) -> str | None:
    """A text field's value, stripped; None when empty."""
    value = (st.session_state.get(key) or "").strip()
    return value or None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# -- sidebar: a new run ----------------------------------------------------------------------------


def new_run_form(runs_dir: str) -> None:
    """Seeds, prelude, operator, LLM, budgets, data, where to run; the Evolve button. The fields
    start at configs/demo.yaml's values (ui.launch.form_defaults)."""
    d = form_defaults().evolve
    operators = ["offline", "llm", "auto"]
    st.header("New evolution run")
    uploads = st.file_uploader(
        "Seed programs (.py)",
        type=["py"],
        accept_multiple_files=True,
        key="seed_files",
        help="Each defines build_model(input_dim, num_classes). None: the built-in seeds (or the folder below).",
    )
    st.text_input("…or a seed folder on this machine", key="seed_folder", placeholder="empty: built-in seed library")
    prelude = st.file_uploader(
        "Prelude (optional static code prepended to every program)", type=["py"], key="prelude_file"
    )
    operator = st.radio(
        "Operator",
        operators,
        index=operators.index(d.operator.kind),
        key="operator",
        horizontal=True,
        help="offline: AST mutations, no endpoint needed; llm: an OpenAI-compatible chat model.",
    )
    with st.expander("LLM settings", expanded=operator != "offline"):
        st.text_input("Base URL", key="llm_base_url", placeholder="https://api.openai.com/v1 (or vLLM, Ollama...)")
        st.text_input("Model", value=d.operator.llm.model, key="llm_model")
        st.text_input(
            "API key",
            type="password",
            key="api_key",
            help=(
                "Kept in this session only; handed to the run in its environment (local) "
                "or a Prefect Secret block (server)."
            ),
        )
        st.text_input("Secret block name (server runs)", value=DEFAULT_SECRET_BLOCK, key="secret_block")
    st.subheader("Budget")
    c1, c2 = st.columns(2)
    c1.number_input("Generations", min_value=0, value=d.generations, step=1, key="generations")
    c2.number_input("Children / generation", min_value=1, value=d.children, step=1, key="children")
    c1.number_input(
        "Training s / candidate", min_value=1.0, value=float(d.train.time_budget_s), step=5.0, key="time_budget"
    )
    c2.number_input("Max epochs", min_value=1, value=d.train.max_epochs, step=1, key="max_epochs")
    c1.number_input(
        "Train pairs (0: all)", min_value=0, value=d.train.max_train_pairs or 0, step=100, key="max_train_pairs"
    )
    c2.number_input("Trainings at once", min_value=1, value=d.trainings_at_once(), step=1, key="max_parallel")
    c1.number_input("Latency repeats", min_value=3, value=d.train.latency_repeats, step=1, key="latency_repeats")
    c2.number_input("Seed (RNG)", value=d.seed, step=1, key="rng_seed")
    c1.number_input(
        "CV folds", min_value=1, max_value=10, value=d.evaluation.folds, step=1, key="folds",
        help="Fitness is the mean val macro-F1 over folds of train + val; 1: the single val split.",
    )  # fmt: skip
    c2.checkbox("Cascade", value=d.evaluation.cascade.enabled, key="cascade", help="Screen children on one fold first.")
    with st.expander("Data and storage"):
        st.text_input(
            "Data file", key="source", placeholder="empty: $EVOFORMER_DATA, the shared Climate-FEVER file, then the hub"
        )
        st.text_input("Feature cache", key="cache_dir", value=d.data.storage.cache_dir)
        st.text_input("Run id", key="new_run_id", placeholder="empty: a new timestamped id")
    server = prefect_server_url()
    modes = ["deployment", "local"] if server else ["local"]
    st.radio(
        "Run on",
        modes,
        key="mode",
        horizontal=True,
        help=f"deployment: the evolve/evolve-nightly deployment on {server}"
        if server
        else "No Prefect server configured: a local child process.",
    )
    if st.button("Evolve", type="primary", key="evolve"):
        api_key = st.session_state.get("api_key") or None
        ss = st.session_state
        try:
            params = evolve_params(
                {
                    "generations": int(ss.generations),
                    "children": int(ss.children),
                    "seed": int(ss.rng_seed),
                    "operator": {"kind": operator, "llm": {"base_url": _text("llm_base_url"), "model": ss.llm_model}},
                    "seed_folder": _text("seed_folder"),
                    "max_parallel": int(ss.max_parallel),
                    "evaluation": {"folds": int(ss.folds), "cascade": {"enabled": bool(ss.cascade)}},
                    "train": {
                        "time_budget_s": float(ss.time_budget),
                        "max_epochs": int(ss.max_epochs),
                        "max_train_pairs": int(ss.max_train_pairs) or None,
                        "latency_repeats": int(ss.latency_repeats),
                    },
                    "data": {
                        "data": {"source": _text("source")},
                        "storage": {"runs_dir": runs_dir, "cache_dir": ss.cache_dir, "run_id": _text("new_run_id")},
                    },
                }
            )
            seeds = {f.name: f.getvalue() for f in uploads or []}
            launched, process = start_evolve(
                params,
                api_key,
                ss.get("mode", "local"),
                seeds,
                prelude.getvalue() if prelude else None,
                secret_block=_text("secret_block") or DEFAULT_SECRET_BLOCK,
            )
        except Exception as exc:  # noqa: BLE001 - shown to the user, e.g. the deployment is not registered on the server
            _show_failure("start", exc)
        else:
            _processes()[f"evolve:{launched.run_id}"] = (launched, process)
            st.session_state.run_select = launched.run_id
            st.success(f"Started {launched.run_id} ({launched.mode})")


def _show_failure(action: str, exc: Exception) -> None:
    """A start that failed: bad input or files plainly, anything else with its type (cut short)."""
    if isinstance(exc, (ValueError, ValidationError, OSError)):
        st.error(f"Could not {action}: {exc}")
    else:
        st.error(f"Could not {action} ({type(exc).__name__}): {str(exc)[:500]}")


# -- main: one run ------------------------------------------------------------------------------


def _status(run_dir: Path, kind: str = "evolve") -> tuple[RunStatus, Launched | None]:
    entry = _processes().get(f"{kind}:{run_dir.name}")
    if entry:
        return status(*entry), entry[0]
    if kind == "evolve":
        launched = launched_of(run_dir)
        if launched:
            return status(launched), launched
        finished = "evolve" in (read_json(RunLayout(run_dir).summary) or {})
        return RunStatus(state="Finished" if finished else "Unknown (not started from this GUI)", running=False), None
    return RunStatus(state="None", running=False), None


FITNESS_TITLE = "fitness (mean val macro-F1 over folds)"


def pareto_chart(points: list[dict], majority_val: float | None) -> alt.Chart:
    """Params (log) against fitness (the mean val macro-F1 over folds, ± 1 SE bars) of the fully
    evaluated candidates, seeds and children apart, the Pareto front highlighted."""
    df = pd.DataFrame(points)
    x = alt.X("params:Q", scale=alt.Scale(type="log"), title="parameters")
    y = alt.Y("val_macro_f1:Q", scale=alt.Scale(zero=False), title=FITNESS_TITLE)
    tooltip = ["id", "params", "fitness", "folds", "test_macro_f1", "generation", "operator", "front"]
    dots = (
        alt.Chart(df)
        .mark_point(filled=True, size=80)
        .encode(x=x, y=y, color=alt.Color("kind:N", title=""), shape=alt.Shape("kind:N", title=""), tooltip=tooltip)
    )
    front = (
        alt.Chart(df[df["front"]])
        .mark_line(
            interpolate="step-after", color="black", point=alt.OverlayMarkDef(size=220, filled=False, color="black")
        )
        .encode(x=x, y=y, tooltip=tooltip)
    )
    layers = [front, dots]  # the front's circles and steps under the points
    se = df[df["fitness_se"].notna()] if "fitness_se" in df else df.iloc[0:0]
    if not se.empty:
        se = se.assign(lo=se["val_macro_f1"] - se["fitness_se"], hi=se["val_macro_f1"] + se["fitness_se"])
        bars = (
            alt.Chart(se)
            .mark_rule(color="grey", opacity=0.6)
            .encode(x=x, y=alt.Y("lo:Q", title=FITNESS_TITLE), y2="hi:Q")
        )
        layers.insert(0, bars)
    if majority_val is not None:
        rule = pd.DataFrame({"val_macro_f1": [majority_val], "label": [f"majority class ({majority_val:.3f})"]})
        layers.insert(
            0, alt.Chart(rule).mark_rule(strokeDash=[4, 4], color="grey").encode(y="val_macro_f1:Q", tooltip=["label"])
        )
    return alt.layer(*layers).properties(height=380).interactive()


def run_view(run_dir: Path) -> None:
    """The live view of one run, refreshed every few seconds."""
    st.title(f"Run {run_dir.name}")
    busy = _status(run_dir)[0].running or _status(run_dir, "compress")[0].running
    st.session_state[f"busy-{run_dir.name}"] = busy

    @st.fragment(run_every=POLL_S if busy else None)
    def live() -> None:
        state, launched = _status(run_dir)
        if st.session_state.get(f"busy-{run_dir.name}") and not (
            state.running or _status(run_dir, "compress")[0].running
        ):
            st.session_state[f"busy-{run_dir.name}"] = False
            st.rerun()  # the run ended: redraw the page once, and stop polling
        prog = progress(run_dir)
        base = baselines(run_dir)
        majority = base.get("majority", {})
        people = load_population(run_dir)
        trained = [i for i in people if i.trained]
        cols = st.columns(4)
        cols[0].metric("State", state.state, help=state.detail or None)
        gen_text = (
            f"{max(prog.completed_generation, 0)} / {prog.total_generations}"
            if prog.total_generations is not None
            else str(max(prog.completed_generation, 0))
        )
        cols[1].metric("Generations done", gen_text if prog.completed_generation >= 0 else "seeds training")
        top = max(trained, key=lambda i: (i.f1, -i.size)) if trained else None
        kind = fitness_kind(run_dir, people)
        cols[2].metric(
            "Best fitness (CV mean)" if "cross-validation" in kind else "Best fitness (val macro-F1)",
            _fmt(top.f1) if top else "-",
            delta=f"{top.f1 - majority['val']:+.4f} vs majority (val)" if top and majority else None,
            help=f"{top.id}: fitness {fitness_cell(top)} ({kind}); test {_fmt(top.test_macro_f1)}" if top else None,
        )
        cols[3].metric(
            "Majority class (val / test)",
            f"{_fmt(majority.get('val'))} / {_fmt(majority.get('test'))}" if majority else "-",
        )
        st.progress(
            prog.fraction,
            text=f"{len(people)} candidates recorded, {prog.trained_folders} trainings finished"
            + (f"; stopped: {prog.stopped}" if prog.stopped else ""),
        )
        if state.detail and not state.running and state.state not in ("Completed", "Finished"):
            st.warning(f"{state.state}: {state.detail}")
        if prog.per_generation:
            st.dataframe(pd.DataFrame(prog.per_generation), hide_index=True, width="content")

        st.subheader("Leaderboard")
        if base:
            st.caption(
                "Baselines (macro-F1): "
                + "; ".join(f"{n} val {_fmt(s['val'])} / test {_fmt(s['test'])}" for n, s in base.items())
            )
        evolve = (read_json(RunLayout(run_dir).summary) or {}).get("evolve") or {}
        if evolve.get("candidates"):  # the run has ended: the verdict on fitness and on test
            st.info(verdict(evolve))
            if quality := llm_quality_text(evolve.get("llm") or {}):
                st.caption(quality)
        if people:
            screened = sum(i.stage == "screened" for i in people)
            st.caption(
                f"Leaderboard: {len(people)} candidates, {len(trained)} trained ok (fully evaluated)"
                + (f", {screened} stopped by the cascade after stage 1" if screened else "")
            )
            st.caption(
                f"Fitness: {kind}, mean val macro-F1 over the folds ± SE (folds: each fold's score; stage 1: the "
                "score of a child the cascade stopped, not a fitness). Test: the kept (fold-0) model's, measured, "
                "never used to choose."
            )
            st.dataframe(pd.DataFrame(leaderboard(people)), hide_index=True, width="stretch")
        else:
            st.caption("No candidate finished yet (the seeds train first).")

        st.subheader("Pareto front")
        points = pareto_points(people)
        if points:
            st.altair_chart(pareto_chart(points, majority.get("val")), width="stretch")
            st.caption(f"Pareto front: {sum(p['front'] for p in points)} of {len(points)} trained candidates (circled)")

        if people:
            candidate_section(run_dir, people, majority)
        if trained:
            compress_section(run_dir, [i.id for i in trained])
        if launched and launched.log_path:
            with st.expander("Run log (tail)"):
                st.code(log_tail(launched.log_path) or "(empty)", language="text")

    live()


def candidate_section(run_dir: Path, people: list, majority: dict) -> None:
    """Pick a candidate: its metrics beside the majority class, its code and diffs against its parents."""
    st.subheader("Candidate")
    ids = [row["id"] for row in leaderboard(people)]
    chosen = st.selectbox("Candidate", ids, key=f"candidate-{run_dir.name}")
    detail = candidate_detail(run_dir, chosen, people) if chosen else None
    if detail is None:
        return
    i = detail.individual
    cols = st.columns(4)
    cols[0].metric("Status", i.status)
    cols[1].metric("Params", f"{i.params:,}" if i.params else "-")
    cols[2].metric(
        "Fitness (CV mean)" if len(i.fold_f1) > 1 else "Fitness (val macro-F1)",
        fitness_cell(i) or "-",
        delta=f"{i.val_macro_f1 - majority['val']:+.4f} vs majority (val)"
        if i.trained and i.val_macro_f1 is not None and majority
        else None,
        help=f"folds: {folds_text(i.fold_f1)}" if i.fold_f1 else None,
    )
    cols[3].metric(
        "Test macro-F1",
        _fmt(i.test_macro_f1),
        delta=f"{i.test_macro_f1 - majority['test']:+.4f} vs majority"
        if i.test_macro_f1 is not None and majority
        else None,
    )
    st.caption(
        f"generation {i.generation}, operator {i.operator}, parents: {', '.join(i.parents) or 'none (seed)'}"
        + (f"; stage {i.stage}" if i.stage else "")
        + (f"; folds {folds_text(i.fold_f1)}" if i.fold_f1 else "")
        + (f"; copy of {i.copy_of}" if i.copy_of else "")
        + (f"; majority class val {_fmt(majority.get('val'))} / test {_fmt(majority.get('test'))}" if majority else "")
        + (f"; {i.reason}" if i.reason else "")
    )
    code_tab, diff_tab, metrics_tab = st.tabs(["Code", "Diff against parents", "Metrics"])
    with code_tab:
        st.code(detail.source or "(no program file)", language="python")
    with diff_tab:
        if not detail.diffs:
            st.caption("A seed has no parent." if not i.parents else "The parents' programs are missing.")
        for parent, diff in detail.diffs.items():
            st.caption(f"{parent} → {i.id}")
            st.code(diff or "(identical programs)", language="diff")
    with metrics_tab:
        st.json(detail.metrics or {"status": i.status, "reason": i.reason}, expanded=False)


def compress_section(run_dir: Path, trained_ids: list[str]) -> None:
    """Choose candidates and compression settings, press Compress, see the tables."""
    st.subheader("Compression")
    key = run_dir.name
    chosen = st.multiselect("Candidates to compress", trained_ids, key=f"compress-ids-{key}")
    d = form_defaults().compression.config  # configs/demo.yaml's compression settings
    with st.expander("Compression settings"):
        c1, c2 = st.columns(2)
        c1.text_input("Unstructured sparsities", value=", ".join(map(str, d.sparsities)), key=f"sparsities-{key}")
        c2.text_input("Structured ratios", value=", ".join(map(str, d.structured_ratios)), key=f"ratios-{key}")
        st.multiselect("Quantizers", QUANTIZERS, default=d.quantizers, key=f"quantizers-{key}")
        c1.number_input("Fine-tune epochs", min_value=1, value=d.finetune.max_epochs, key=f"ft-epochs-{key}")
        c2.number_input("Fine-tune s", min_value=1.0, value=float(d.finetune.time_budget_s), key=f"ft-budget-{key}")
        c1.number_input(
            "Fine-tune pairs (0: all)",
            min_value=0,
            value=d.finetune.max_train_pairs or 0,
            step=100,
            key=f"ft-pairs-{key}",
        )
        c2.number_input("Latency repeats (compression)", min_value=3, value=d.latency_repeats, key=f"lat-{key}")
    state, launched = _status(run_dir, "compress")
    if st.button("Compress", key=f"compress-{key}", disabled=not chosen or state.running):
        ss = st.session_state
        try:
            params = compress_params(
                key,
                str(run_dir.parent),
                chosen,
                {
                    "sparsities": _floats(ss[f"sparsities-{key}"]),
                    "structured_ratios": _floats(ss[f"ratios-{key}"]),
                    "quantizers": ss[f"quantizers-{key}"],
                    "latency_repeats": int(ss[f"lat-{key}"]),
                    "finetune": {
                        "max_epochs": int(ss[f"ft-epochs-{key}"]),
                        "time_budget_s": float(ss[f"ft-budget-{key}"]),
                        "max_train_pairs": int(ss[f"ft-pairs-{key}"]) or None,
                    },
                },
            )
            mode = "deployment" if (launched_of(run_dir) and launched_of(run_dir).mode == "deployment") else "local"
            started, process = start_compress(params, mode)
        except Exception as exc:  # noqa: BLE001 - shown to the user, e.g. the deployment is not registered on the server
            _show_failure("compress", exc)
        else:
            _processes()[f"compress:{key}"] = (started, process)
            st.rerun()  # poll while it runs
    if launched:
        st.caption(
            f"Compression of {', '.join(launched.candidates)}: {state.state}"
            + (f" ({state.detail})" if state.detail else "")
        )
    for table in compression_tables(run_dir):
        st.caption(
            f"Compressed {table.candidate}: {table.status}, {len(table.rows)} variants; "
            f"best: {table.best or 'none within the val budget'}" + (f" ({table.reason})" if table.reason else "")
        )
        st.dataframe(pd.DataFrame(table.rows), hide_index=True, width="stretch")
    if launched and launched.log_path and not state.running and state.state == "Failed":
        st.code(log_tail(launched.log_path, 3000), language="text")


# -- page ------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="EvoFormer", layout="wide")
    with st.sidebar:
        runs_dir = st.text_input("Runs folder", value=str(runs_root()), key="runs_dir")
        new_run_form(runs_dir)
        st.header("Runs")
        runs = list_runs(Path(runs_dir))
        ids = [r.run_id for r in runs]
        if st.session_state.get("run_select") not in ids:
            st.session_state.pop("run_select", None)
        selected = st.selectbox(
            "Run",
            ids,
            key="run_select",
            placeholder="no runs yet",
            format_func=lambda rid: (
                rid
                + (
                    ""
                    if rid not in {r.run_id for r in runs}
                    else "  " + ",".join(next(r.kinds for r in runs if r.run_id == rid))
                )
            ),
        )
    if selected:
        run_view(Path(runs_dir) / selected)
    else:
        st.title("EvoFormer")
        st.info(
            "Upload seed programs (or use the built-in ones), set a budget and press Evolve; "
            "past runs appear in the sidebar."
        )


main()
