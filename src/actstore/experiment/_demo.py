"""``actstore demo``: the whole study on a tiny model trained here, beside its untrained twin."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from actstore._extras import requires_extras
from actstore._locations import located
from actstore.experiment._config import ExperimentConfig, parse_config
from actstore.experiment._index import md_to_html
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
    from actstore.tinymodels import default_cache_dir, get_demo_model
    from actstore.tinymodels._cache import demo_model_key

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


def write_demo_report(out: Path, runs: dict[str, ExperimentRun]) -> Path:
    """The demo's own report: both models side by side, with what each figure means.

    Writes ``results.md`` (every table, generated from the runs' results, no timestamp: what
    ``make demo-docs`` copies into the docs), ``report.md`` (the same tables with an
    introduction, figures and links) and a self-contained ``report.html`` (figures embedded).
    """
    from actstore.experiment._demo_results import demo_results_md

    cfg = next(iter(runs.values())).config
    results = demo_results_md(runs)
    (out / "results.md").write_text(results, encoding="utf-8")
    md = [
        "# actstore demo: where does a model compute v²?\n",
        "Probes are fitted on arithmetic prompts (the product or square as target) and run at "
        "every token of kinetic-energy problems, comparing each prediction with the problem's "
        "v²: once on given worked solutions, once on the model's own continuations of the same "
        "problems (it continues each one greedily; where it never writes the true v², the span "
        "`v_squared` is empty and that prompt is left out of the hit rate, counted in the "
        "tables). Two models, same architecture:\n",
    ]
    md += [f"- **{name}**: {what} (`{runs[name].model}`)." for name, what in MODELS]
    md.append("")
    if any(pc.target == "interaction" for pc in cfg.probes):
        md.append(
            "`interaction` = (x - c)(y - c), the part of the product that is not linear in "
            "the operands. A linear function of x and y already explains most of the variance "
            "of x·y, so the `value` probes also succeed on the untrained twin, whose residual "
            "stream still carries the operand tokens; this probe needs the product computed.\n"
        )
    # The tables, verbatim from results.md (its own title dropped).
    md += [ln for ln in results.splitlines()[2:] if not ln.startswith("<!--")]
    md.append("\n## Figures\n")
    for name, _ in MODELS:
        run = runs[name]
        for pc, det, d in run._report_units():
            what = f"probe '{pc.name}'"
            if det is not None:
                what += f" on '{det.prompt_set}'"
            for fig, caption in (
                ("layer_summary.png", "per-layer summary: CV R² with control; detection vs chance"),
                (
                    "computation_heatmaps.png",
                    "|prediction - v²| per layer (rows) and token, log scale, bright = close",
                ),
            ):
                if (d / fig).exists():
                    rel = os.path.relpath(d / fig, out)
                    md.append(f"**{name} model, {what}**: {caption}\n\n![]({rel})\n")
        md.append(
            f"Full report of the {name} model (with the interactive token view in its HTML "
            f"form): [{name}/report.md]({name}/report.md)\n"
        )
    path = out / "report.md"
    text = "\n".join(md)
    path.write_text(text, encoding="utf-8")
    html_text = md_to_html(text.replace("report.md)", "report.html)"), "actstore demo", base=out)
    (out / "report.html").write_text(html_text, encoding="utf-8")
    return path


@requires_extras("the demo")
@located("write", "out", local=True)
def run_demo(
    *,
    out: str | os.PathLike[str] = "demo_out",
    model_cache: str | None = None,
    retrain: bool = False,
    reanalyse: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Train (or reuse) the tiny model, run the demo study on it and its twin, write the report.

    ``reanalyse`` re-runs every stage after extraction even when its config is unchanged (stages
    are fingerprinted by config, not by code: after a change to the analysis code, this is what
    makes the result tables come from the code as it is).

    Parameters
    ----------
    out
        Folder for the cache, results, figures and reports.
    model_cache
        Where the trained tiny model is kept between runs (default: the user cache folder).
    retrain
        Train the model again even when a trained one is cached.
    reanalyse
        Re-run every stage after extraction.
    log
        Called with each progress line.

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.

    Raises
    ------
    OSError
        An *out* that cannot be created (checked before training).
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before minutes of training
    models = _models(model_cache, retrain, log)
    cfg = demo_config()
    runs = {}
    for name, _ in MODELS:
        run = ExperimentRun(cfg, out=out / name, model=models[name], log=log, label=f"{name} model")
        if reanalyse:
            run.run(["extract"])
            run.run(["probes", "detect", "plots", "report"], force=True)
        else:
            run.run()
        runs[name] = run
    path = write_demo_report(out, runs)
    log(f"[demo] finished in {time.perf_counter() - t0:.1f} s")
    log(f"[demo] report: {path} (and {out / 'report.html'}); tables: {out / 'results.md'}")
    log(f"[demo] figures: {out}/trained/report/*/ and {out}/random/report/*/")
    return path
