"""``write_report``: one experiment's figures and tables as Markdown and one self-contained HTML.

``report.md`` links the PNG figures saved beside it; ``report.html`` embeds them (``data:`` URIs)
and adds the interactive token view (:mod:`actstore.analysis._html`), so it can be shared alone.
Detection is reported with its controls and one sentence per layer saying whether it beats chance
(:mod:`actstore.analysis._verdict`).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actstore._locations import located
from actstore.analysis._html import MAX_PROMPTS, image_data_uri, token_view_data, token_view_html
from actstore.analysis._plots import plot_alpha_curves, plot_layer_summary
from actstore.analysis._tokenplots import plot_heatmaps, plot_traces
from actstore.analysis._verdict import VERDICTS, verdict_rows

if TYPE_CHECKING:
    from actstore.analysis._detect_result import DetectionResult
    from actstore.analysis._probeset import ProbeSet

__all__ = ["FIGURES", "FORMATS", "detection_table", "write_figures", "write_report"]

#: Report formats :func:`write_report` can write.
FORMATS = ("md", "html")

FIGURES = {
    "heatmaps": "computation_heatmaps.png",
    "traces": "computation_traces.png",
    "summary": "layer_summary.png",
    "alphas": "cv_r2_vs_alpha.png",
}


@located("write", "out_dir", local=True)
def write_figures(
    probes: ProbeSet,
    result: DetectionResult | None,
    out_dir: str | Path,
    *,
    prompts: Sequence[int] | None = None,
    plots: Collection[str] | None = None,
) -> dict[str, Path]:
    """Save the figures as PNG into ``out_dir``; returns name -> path of those drawn.

    The layer summary and the alpha curves plot R², so classification probes (``logistic``,
    ``mean_diff``) get the two detection figures only (their metrics are in the report's table).
    ``plots`` (keys of :data:`FIGURES`; default: all) limits which are drawn.

    Parameters
    ----------
    probes : ProbeSet
        The probes (one per layer).
    result : DetectionResult or None
        Detection with these probes; ``None`` draws the probe figures only.
    out_dir : str or Path
        A local folder, created if missing.
    prompts : sequence of int, optional
        Prompt labels to draw in the token heatmaps and traces (default: the first few; see
        :func:`plot_heatmaps`).
    plots : collection of str, optional
        Which figures: ``summary``, ``alphas``, ``heatmaps``, ``traces`` (default: all).

    Returns
    -------
    dict[str, Path]
        Figure key -> PNG path, for the figures drawn.

    Raises
    ------
    InvalidArgumentError
        If ``plots`` names a figure not in :data:`FIGURES`, or ``out_dir`` is a URL.
    StorageError, ReadOnlyError
        If ``out_dir`` cannot be written.
    """
    wanted = set(FIGURES if plots is None else plots)
    unknown = sorted(wanted - set(FIGURES))
    if unknown:
        from actstore.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"expected plots among {', '.join(FIGURES)}, got {unknown[0]!r}; name one of those"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FIGURES.items()}
    drawers = {
        "summary": lambda: plot_layer_summary(probes, result, path=paths["summary"]),
        "alphas": lambda: plot_alpha_curves(probes, path=paths["alphas"]),
        "heatmaps": lambda: plot_heatmaps(result, prompts, path=paths["heatmaps"]),
        "traces": lambda: plot_traces(result, prompts, path=paths["traces"]),
    }
    if probes.kind != "ridge":
        wanted -= {"summary", "alphas"}
    if result is None:
        wanted -= {"heatmaps", "traces"}
    for key in FIGURES:
        if key in wanted:
            drawers[key]()
    return {k: p for k, p in paths.items() if k in wanted}


def _fmt(v: Any) -> str:
    if v is None:  # e.g. alpha_at_edge of an interior alpha
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


#: Detection columns of the reports, in order (those a result lacks are left out).
DETECTION_COLUMNS = (
    "layer",
    "probe_mean_min_error",
    "shuffled_probe_mean_min_error",
    "random_target_mean_min_error",
    "p_value",
    "p_value_corrected",
    "p_value_random_target_corrected",
    "probe_hit_rate",
    "random_target_hit_rate",
    "probe_median_span_rank",
    "probe_mean_z",
)


def detection_table(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-layer detection rows with the controls, p-values when present and a ``verdict`` column.

    Parameters
    ----------
    rows : sequence of dict
        ``DetectionResult.summary()`` (or the ``layers`` of its JSON).

    Returns
    -------
    tuple of (list of dict, list of str)
        The table rows (:data:`DETECTION_COLUMNS` that are present, then ``verdict``) and one
        sentence per layer (:func:`actstore.analysis._verdict.layer_verdict`).
    """
    present = [c for c in DETECTION_COLUMNS if any(c in r for r in rows)]
    verdicts = verdict_rows(rows)
    table = [
        {**{c: r.get(c, "") for c in present}, "verdict": VERDICTS[key]}
        for r, (key, _) in zip(rows, verdicts)
    ]
    return table, [sentence for _, sentence in verdicts]


def _tables(
    probes: ProbeSet, result: DetectionResult | None
) -> list[tuple[str, str, list[dict], list[str]]]:
    """(title, caption, rows, sentences) of every table of a report."""
    tables = [
        (
            "Probes",
            (
                "Held-out (k-fold) R² and MAE at the alpha chosen by CV; training R² only beside "
                "them; the control is the same probe fitted on labels shuffled across prompts."
                if probes.kind == "ridge"
                else f"{probes.kind} probe: held-out (k-fold) accuracy, balanced accuracy, ROC "
                "AUC and log-loss at the alpha chosen by CV; training accuracy only beside them; "
                "the control is the same probe fitted on labels shuffled across prompts."
            ),
            probes.metrics(),
            [],
        )
    ]
    if result is not None:
        rows, sentences = detection_table(result.summary())
        tables.append(
            (
                "Detection",
                "Mean over prompts of the smallest |prediction − target| over each prompt's "
                "tokens (the reference study's 'average minimum error'), beside the same number "
                "for the shuffled-label probe and for a random in-range target (chance level). "
                "hit_rate: share of prompts whose best token lies in the span "
                f"{result.span!r}; z: best token vs the prompt's own token errors. "
                "verdict: does detection beat chance in that layer (rule in "
                "docs/reports.md; with permutation p-values when the result has them: "
                "docs/significance.md).",
                rows,
                sentences,
            )
        )
        best = result.per_prompt("probe")
        layer = result.best_layer
        tables.append(
            (
                f"Per prompt at layer {layer}",
                "Best-matching token of each prompt (first 20 prompts).",
                [{k: r[k] for k in r if k != "layer"} for r in best if r["layer"] == layer][:20],
                [],
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


CAPTIONS = {
    "summary": "Per layer: probe CV R² with its control; detection error vs chance.",
    "alphas": "Probe CV R² against alpha.",
    "heatmaps": "|prediction − target| per layer and token, log scale clipped at the target's "
    "spread across prompts (its std; bright = close); every token labelled, span boxed red, "
    "each layer's best token circled with its prediction.",
    "traces": "Predictions over tokens, one line per layer, target dashed red; y-range capped "
    "at target ± 3 × the target's std (points beyond drawn as triangles on the edge).",
}

_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
    "padding:2px 6px;text-align:right}table{display:block;overflow-x:auto;max-width:100%}"
    "img{max-width:100%}figure{margin:1em 0}"
)


@located("write", "out_dir", local=True)
def write_report(
    probes: ProbeSet,
    result: DetectionResult | None,
    out_dir: str | Path,
    *,
    title: str = "actstore experiment",
    prompts: Sequence[int] | None = None,
    figures: dict[str, Path] | None = None,
    max_prompts: int = MAX_PROMPTS,
    formats: Collection[str] = FORMATS,
) -> dict[str, Path]:
    """Write ``report.md`` (figures linked) and a self-contained ``report.html`` into ``out_dir``.

    Parameters
    ----------
    probes : ProbeSet
        The fitted probes.
    result : DetectionResult, optional
        Their detection result; without it the report has no detection table, per-token
        figures or token view.
    out_dir : str or Path
        Output folder (the PNG figures are saved there too).
    title : str
        The report's heading.
    prompts : sequence of int, optional
        Prompt labels drawn in the per-token figures (default: the first few).
    figures : dict, optional
        From :func:`write_figures` into the same ``out_dir``: reuses figures already drawn.
    max_prompts : int
        Prompts embedded in the HTML token view (the first ones; the page notes the rest).
    formats : collection of str
        Which of ``"md"`` and ``"html"`` to write (default: both).

    Returns
    -------
    dict
        Paths: ``markdown`` and/or ``html`` (those written) and one per figure.

    Raises
    ------
    InvalidArgumentError
        If ``max_prompts`` is not a positive integer, or ``formats`` is empty or names another
        format.
    UnknownNameError
        If a label in ``prompts`` is not a prompt of the detection result.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        from actstore.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"expected formats among {', '.join(FORMATS)}, got "
            f"{repr(bad[0]) if bad else 'none'}; "
            "name one or both"
        )
    out = Path(out_dir)
    # The token view's data first: a bad max_prompts is refused before any figure is drawn.
    view = token_view_data(result, max_prompts=max_prompts) if result is not None else None
    if figures is None:
        figures = write_figures(probes, result, out, prompts=prompts)
    tables = _tables(probes, result)
    lineage: dict[str, Any] = {"probes": probes.lineage}
    if result is not None:
        lineage["detection"] = {k: v for k, v in result.lineage.items() if k != "probe"}
    when = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    md = [f"# {title}\n", f"Generated {when} by actstore.\n"]
    for name, caption, rows, sentences in tables:
        md += [f"## {name}\n", caption + "\n", _md_table(rows)]
        md += [f"- {s}" for s in sentences] + ([""] if sentences else [])
    md.append("## Figures\n")
    for key, path in figures.items():
        md.append(f"![{CAPTIONS[key]}]({path.name})\n\n*{CAPTIONS[key]}*\n")
    md += ["## Lineage\n", "```json\n" + json.dumps(lineage, indent=2, default=str) + "\n```\n"]
    written: dict[str, Path] = {}
    if "md" in formats:
        written["markdown"] = out / "report.md"
        written["markdown"].write_text("\n".join(md))
    if "html" not in formats:
        return {**written, **figures}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>Generated {when} by actstore. This page is "
        "self-contained: figures and data are embedded.</p>",
    ]
    for name, caption, rows, sentences in tables:
        parts += [f"<h2>{html.escape(name)}</h2><p>{html.escape(caption)}</p>", _html_table(rows)]
        if sentences:
            parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences))
            parts.append("</ul>")
    if view is not None:
        parts += ["<h2>Token view</h2>", token_view_html(view)]
    parts.append("<h2>Figures</h2>")
    for key, path in figures.items():
        parts.append(
            f"<figure><img src='{image_data_uri(path)}' alt='{html.escape(CAPTIONS[key])}'>"
            f"<figcaption>{html.escape(CAPTIONS[key])}</figcaption></figure>"
        )
    parts.append(
        "<h2>Lineage</h2><pre>"
        + html.escape(json.dumps(lineage, indent=2, default=str))
        + "</pre></body></html>"
    )
    written["html"] = out / "report.html"
    written["html"].write_text("".join(parts), encoding="utf-8")
    return {**written, **figures}
