"""``actstore demo``: the whole study on a tiny model trained here, beside its untrained twin."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from actstore._extras import requires_extras
from actstore._locations import located
from actstore.experiment._config import ExperimentConfig, parse_config
from actstore.experiment._index import md_table, md_to_html
from actstore.experiment._run import ExperimentRun

__all__ = ["demo_config", "run_demo"]

MODELS = (
    (
        "trained",
        "a tiny Qwen2-architecture model trained here for a few minutes on text from the "
        "prompt generators (multiplication, squaring, kinetic energy)",
    ),
    (
        "random",
        "its random-initialised twin: the same config and the same initial weights, never "
        "trained (the control: whatever a probe finds here comes from the input tokens, not "
        "from learned computation)",
    ),
)


def demo_config() -> ExperimentConfig:
    """The demo's experiment config, shipped inside the package."""
    import tomllib

    text = resources.files("actstore.experiment").joinpath("demo.toml").read_text()
    return parse_config(tomllib.loads(text))


def _models(model_cache: str | None, retrain: bool, log: Callable[[str], None]) -> dict[str, Path]:
    from actstore.tinymodels import default_cache_dir, demo_model_key, get_demo_model

    root = Path(model_cache) if model_cache else default_cache_dir()
    if retrain:
        base = root / f"tiny-qwen2-{demo_model_key()}"
        for d in (base, Path(f"{base}-twin")):
            shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    trained = get_demo_model(root)
    twin = get_demo_model(root, random_twin=True)
    log(f"[demo] models ready in {time.perf_counter() - t0:.1f} s: {trained}")
    return {"trained": trained, "random": twin}


def _rows(run: ExperimentRun, kind: str, name: str) -> list[dict[str, Any]]:
    try:
        return run._read_json(f"{kind}_{name}.json").get("layers", [])
    except FileNotFoundError:
        return []


def _side_by_side(
    runs: dict[str, ExperimentRun], kind: str, probe: str, columns: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per layer: for each model, ``columns`` (header suffix -> JSON key) of a result."""
    by_model = {m: {r["layer"]: r for r in _rows(run, kind, probe)} for m, run in runs.items()}
    layers = sorted(set().union(*[set(v) for v in by_model.values()]))
    rows = []
    for layer in layers:
        row: dict[str, Any] = {"layer": layer}
        for m, table in by_model.items():
            for header, key in columns.items():
                row[f"{m} {header}"] = table.get(layer, {}).get(key, float("nan"))
        rows.append(row)
    return rows


PROBE_COLUMNS = {"cv_r2": "cv_r2", "shuffled cv_r2": "control_cv_r2"}
DETECT_COLUMNS = {
    "min error": "probe_mean_min_error",
    "chance": "random_target_mean_min_error",
    "hit rate": "probe_hit_rate",
}


def write_demo_report(out: Path, runs: dict[str, ExperimentRun]) -> Path:
    """The demo's own report: both models side by side, with what each figure means."""
    cfg = next(iter(runs.values())).config
    md = [
        "# actstore demo: where does a model compute v²?\n",
        "Probes are fitted on arithmetic prompts (the product or square as target) and run at "
        "every token of kinetic-energy problems, comparing each prediction with the problem's "
        "v². Two models, same architecture:\n",
    ]
    md += [f"- **{name}**: {what} (`{runs[name].model}`)." for name, what in MODELS]
    md.append("")
    detected = set(cfg.detect.probes) if cfg.detect is not None else set()
    for pc in cfg.probes:
        md += [
            f"## Probe CV R² for `{pc.target}` at position `{pc.position}` (probe '{pc.name}')\n",
            "Held-out 5-fold R² per layer; 'shuffled' is the same probe fitted on shuffled "
            "labels (its R² should be near or below 0).\n",
        ]
        if pc.target == "interaction":
            md.append(
                "`interaction` = (x - c)(y - c), the part of the product that is not linear in "
                "the operands. A linear function of x and y already explains most of the variance "
                "of x·y, so the `value` probes also succeed on the untrained twin, whose residual "
                "stream still carries the operand tokens; this probe needs the product computed.\n"
            )
        md.append(md_table(_side_by_side(runs, "probes", pc.name, PROBE_COLUMNS)))
        if pc.name in detected:
            md += [
                f"### Detection on kinetic-energy prompts with probe '{pc.name}'\n",
                "Mean over prompts of the smallest |prediction - v²| over the prompt's tokens "
                "(the reference study's 'average minimum error'), beside the same number for a "
                "random in-range target (chance); hit rate: share of prompts whose best token is "
                "the written v².\n",
                md_table(_side_by_side(runs, "detect", pc.name, DETECT_COLUMNS)),
            ]
    md.append("## Figures\n")
    for name, _ in MODELS:
        run = runs[name]
        for pc in cfg.probes:
            d = run.out / "report" / pc.name
            for fig, caption in (
                ("layer_summary.png", "per-layer summary: CV R² with control; detection vs chance"),
                ("computation_heatmaps.png", "prediction - v² per layer (rows) and token"),
            ):
                if (d / fig).exists():
                    rel = os.path.relpath(d / fig, out)
                    md.append(f"**{name} model, probe '{pc.name}'**: {caption}\n\n![]({rel})\n")
        md.append(f"Full report of the {name} model: [{name}/report.md]({name}/report.md)\n")
    path = out / "report.md"
    text = "\n".join(md)
    path.write_text(text)
    html_text = md_to_html(text.replace("report.md)", "report.html)"), "actstore demo")
    (out / "report.html").write_text(html_text)
    return path


@requires_extras("the demo")
@located("write", "out")
def run_demo(
    *,
    out: str | os.PathLike[str] = "demo_out",
    model_cache: str | None = None,
    retrain: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Train (or reuse) the tiny model, run the demo study on it and its twin, write the report.

    Returns the path of the demo's ``report.md``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before minutes of training
    models = _models(model_cache, retrain, log)
    cfg = demo_config()
    runs = {}
    for name, _ in MODELS:
        run = ExperimentRun(cfg, out=out / name, model=models[name], log=log, label=f"{name} model")
        run.run()
        runs[name] = run
    path = write_demo_report(out, runs)
    log(f"[demo] finished in {time.perf_counter() - t0:.1f} s")
    log(f"[demo] report: {path} (and {out / 'report.html'})")
    log(f"[demo] figures: {out}/trained/report/*/ and {out}/random/report/*/")
    return path
