"""The index page of one experiment run: headline tables and links to each probe's report."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actstore.experiment._detect_stage import detected_pairs, results_name

__all__ = ["coverage_sentence", "md_table", "md_to_html", "write_index"]


def _fmt(v: Any) -> str:
    if v is None:  # an undefined number (null in the results files)
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def md_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts), columns in the given order."""
    if not rows:
        return "_(no rows)_\n"
    cols = list(columns or rows[0].keys())
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;"
    "text-align:right}img{max-width:100%}code{background:#f4f4f4}"
)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"\[(.+?)\]\((.+?)\)", r"<a href='\2'>\1</a>", text)


def md_to_html(md: str, title: str, *, base: Path | None = None) -> str:
    """HTML for the small Markdown subset the reports use (headings, lists, tables, images).

    With ``base`` (the folder the Markdown's relative paths start from), local images are
    embedded as ``data:`` URIs, so the page needs no file beside it.
    """
    from actstore.analysis._html import image_data_uri

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    ]
    parts.append(f"<style>{_STYLE}</style></head><body>")
    table: list[list[str]] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if table:
            head, *body = table
            parts.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
            for row in body:
                parts.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
            table = []
        m = re.match(r"^(#{1,4}) (.*)", line)
        img = re.match(r"^!\[(.*?)\]\((.+?)\)$", line.strip())
        if m:
            n = len(m.group(1))
            parts.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif img:
            alt, src = html.escape(img.group(1)), img.group(2)
            local = base / src if base is not None and "://" not in src else None
            src = (
                image_data_uri(local) if local is not None and local.is_file() else html.escape(src)
            )
            parts.append(f"<p><img src='{src}' alt='{alt}'></p>")
        elif line.startswith("<!--"):
            continue
        elif line.startswith("- "):
            parts.append(f"<ul><li>{_inline(line[2:])}</li></ul>")
        elif line.strip():
            parts.append(f"<p>{_inline(line)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


PROBE_COLUMNS = ("layer", "alpha", "cv_r2", "control_cv_r2", "train_r2", "cv_mae")


def headline_tables(
    run: Any,
) -> list[tuple[str, str, list[dict[str, Any]], tuple[str, ...], list[str]]]:
    """(title, caption, rows, columns, sentences) for every probe family and detection of a run.

    ``sentences``: for detection, one verdict per layer (does it beat chance); else empty.
    """
    tables = []
    for pc in run.config.probes:
        rows = run._read_json(f"probes_{pc.name}.json").get("layers", [])
        tables.append(
            (
                f"Probe '{pc.name}': {pc.target} at position {pc.position}",
                "Held-out k-fold R² (cv_r2) at the alpha chosen by CV; control_cv_r2 is the same "
                "probe fitted on shuffled labels; train_r2 is shown only beside them.",
                rows,
                PROBE_COLUMNS,
                [],
            )
        )
        for block, probe in detected_pairs(run.config):
            if probe != pc.name or not (run.results_dir / results_name(block, probe)).exists():
                continue
            from actstore.analysis._report import detection_table

            data = run._read_json(results_name(block, probe))
            rows, sentences = detection_table(data.get("layers", []))
            where = f" (block '{block.name}')" if block.name is not None else ""
            tables.append(
                (
                    f"Detection with '{pc.name}' on '{block.prompt_set}'{where}",
                    "Mean over prompts of the smallest |prediction - target| over each prompt's "
                    "tokens, beside the shuffled-label probe and a random in-range target "
                    "(chance); hit rate: best token inside the span "
                    f"{data.get('span')!r}; verdict: does detection beat chance (rule in "
                    "docs/reports.md)." + coverage_sentence(data.get("span_coverage")),
                    rows,
                    tuple(rows[0]) if rows else ("layer",),
                    sentences,
                )
            )
    return tables


def coverage_sentence(coverage: dict[str, Any] | None) -> str:
    """`` Span 'S' is empty in K of N prompts ...`` for a results file's ``span_coverage``."""
    if not coverage or not coverage.get("n_empty"):
        return ""
    k, n = coverage["n_empty"], coverage["n_scored"]
    return (
        f" Span {coverage['span']!r} is empty in {k} of {n} prompts (the text never has it, e.g. "
        f"the model wrote another number): the hit rate counts the other {n - k}; the min error "
        "counts all."
    )


def write_index(run: Any, sections: Sequence[tuple[Any, Any, dict[str, Path]]]) -> Path:
    """Write ``report.md`` and/or ``report.html`` (``[report] formats``) at the top of a run's
    output folder; returns the first written."""
    cfg = run.config
    out: Path = run.out
    tables = headline_tables(run)
    md = [
        f"# {run.label}\n",
        f"{cfg.description}\n" if cfg.description else "",
        f"- model: `{run.model_description()}`\n- cache: `{os.path.relpath(run.cache_url, out)}`\n",
    ]
    for title, caption, rows, cols, sentences in tables:
        md += [f"## {title}\n", f"{caption}\n", md_table(rows, cols)]
        md += [f"- {s}" for s in sentences] + ([""] if sentences else [])
    md.append("## Reports and figures per probe\n")
    for pc, det, paths in sections:
        label = pc.name
        if det is not None and det.name is not None:
            label += f", detection '{det.name}' on '{det.prompt_set}'"
        rel = os.path.relpath(paths.get("markdown", paths.get("html")), out)
        md.append(f"- [{label}]({rel})\n")
        if "summary" in paths:
            md.append(f"\n![summary of {label}]({os.path.relpath(paths['summary'], out)})\n")
    text = "\n".join(md)
    formats = cfg.report.formats
    written = []
    for fmt in ("md", "html"):
        path = out / f"report.{fmt}"
        if fmt not in formats:
            path.unlink(missing_ok=True)  # left by an earlier run with other formats
            continue
        if fmt == "md":
            path.write_text(text)
        else:
            html_text = md_to_html(text.replace("report.md)", "report.html)"), run.label, base=out)
            path.write_text(html_text, encoding="utf-8")
        written.append(path)
    return written[0]
