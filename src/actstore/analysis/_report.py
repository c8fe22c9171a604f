"""``write_report``: one experiment's figures and tables as Markdown and HTML."""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actstore._locations import located
from actstore.analysis._plots import (
    plot_alpha_curves,
    plot_heatmaps,
    plot_layer_summary,
    plot_traces,
)

if TYPE_CHECKING:
    from actstore.analysis._detect import DetectionResult
    from actstore.analysis._probes import ProbeSet

__all__ = ["write_figures", "write_report"]

FIGURES = {
    "heatmaps": "computation_heatmaps.png",
    "traces": "computation_traces.png",
    "summary": "layer_summary.png",
    "alphas": "cv_r2_vs_alpha.png",
}


@located("write", "out_dir")
def write_figures(
    probes: ProbeSet,
    result: DetectionResult | None,
    out_dir: str | Path,
    *,
    prompts: Sequence[int] | None = None,
) -> dict[str, Path]:
    """Save the four figures as PNG into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FIGURES.items()}
    plot_layer_summary(probes, result, path=paths["summary"])
    plot_alpha_curves(probes, path=paths["alphas"])
    if result is None:
        del paths["heatmaps"], paths["traces"]
        return paths
    plot_heatmaps(result, prompts, path=paths["heatmaps"])
    plot_traces(result, prompts, path=paths["traces"])
    return paths


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _tables(probes: ProbeSet, result: DetectionResult | None) -> list[tuple[str, str, list[dict]]]:
    tables = [
        (
            "Probes",
            "Held-out (k-fold) R² and MAE at the alpha chosen by CV; training R² only beside "
            "them; the control is the same probe fitted on labels shuffled across prompts.",
            probes.metrics(),
        )
    ]
    if result is not None:
        keep = ("mean_min_error", "hit_rate", "median_span_rank", "mean_z", "p_value", "_corrected")
        rows = [
            {k: v for k, v in r.items() if k == "layer" or k.endswith(keep)}
            for r in result.summary()
        ]
        tables.append(
            (
                "Detection",
                "Mean over prompts of the smallest |prediction − target| over each prompt's "
                "tokens (the reference study's 'average minimum error'), beside the same number "
                "for the shuffled-label probe and for a random in-range target (chance level). "
                "hit_rate: share of prompts whose best token lies in the span "
                f"{result.span!r}; z: best token vs the prompt's own token errors."
                # One sentence per layer: does detection beat chance (docs/significance.md)?
                + "".join(f"\n\n{sentence}" for sentence in result.conclusions()),
                rows,
            )
        )
        best = result.per_prompt("probe")
        layer = result.best_layer
        tables.append(
            (
                f"Per prompt at layer {layer}",
                "Best-matching token of each prompt (first 20 prompts).",
                [{k: r[k] for k in r if k != "layer"} for r in best if r["layer"] == layer][:20],
            )
        )
    return tables


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    # Token strings may hold '|' or newlines: escape them so the table stays a table.
    cell = lambda v: _fmt(v).replace("|", "\\|").replace("\n", "\\n")  # noqa: E731
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@located("write", "out_dir")
def write_report(
    probes: ProbeSet,
    result: DetectionResult | None,
    out_dir: str | Path,
    *,
    title: str = "actstore experiment",
    prompts: Sequence[int] | None = None,
    figures: dict[str, Path] | None = None,
) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` (figures beside them) into ``out_dir``.

    ``figures`` (from :func:`write_figures` into the same ``out_dir``) reuses figures already
    drawn instead of drawing them again. Returns the paths: ``markdown``, ``html`` and one per
    figure.
    """
    out = Path(out_dir)
    if figures is None:
        figures = write_figures(probes, result, out, prompts=prompts)
    tables = _tables(probes, result)
    lineage = {"probes": probes.lineage}
    if result is not None:
        lineage["detection"] = {k: v for k, v in result.lineage.items() if k != "probe"}
    when = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    captions = {
        "summary": "Per layer: probe CV R² with its control; detection error vs chance.",
        "alphas": "Probe CV R² against alpha.",
        "heatmaps": "Prediction − target per layer and token (span boxed, best token dotted).",
        "traces": "Predictions over tokens, one line per layer; true value dashed.",
    }
    md = [f"# {title}\n", f"Generated {when} by actstore.\n"]
    for name, caption, rows in tables:
        md += [f"## {name}\n", caption + "\n", _md_table(rows)]
    md.append("## Figures\n")
    for key, path in figures.items():
        md.append(f"![{captions[key]}]({path.name})\n\n*{captions[key]}*\n")
    md += ["## Lineage\n", "```json\n" + json.dumps(lineage, indent=2, default=str) + "\n```\n"]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:1100px;"
        "margin:auto}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>Generated {when} by actstore.</p>",
    ]
    for name, caption, rows in tables:
        parts += [f"<h2>{html.escape(name)}</h2><p>{html.escape(caption)}</p>", _html_table(rows)]
    parts.append("<h2>Figures</h2>")
    for key, path in figures.items():
        parts.append(
            f"<figure><img src='{html.escape(path.name)}' alt='{html.escape(captions[key])}'>"
            f"<figcaption>{html.escape(captions[key])}</figcaption></figure>"
        )
    parts.append(
        "<h2>Lineage</h2><pre>"
        + html.escape(json.dumps(lineage, indent=2, default=str))
        + "</pre></body></html>"
    )
    html_path = out / "report.html"
    html_path.write_text("".join(parts))
    return {"markdown": md_path, "html": html_path, **figures}
