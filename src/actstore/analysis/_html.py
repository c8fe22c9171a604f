"""Self-contained HTML pieces: embedded images and the interactive token view.

Nothing here loads anything from the network: images are ``data:`` URIs, the token view is plain
HTML + CSS + a small inline script, and its data is JSON inside the page.

Token view. For one prompt and one layer at a time (two selectors; an address ending in
``#prompt=LABEL&layer=L`` selects them), every real token is a
``<span class="tok">`` holding the token's text, coloured by the probe's
``|prediction - target|`` on the heatmaps' log scale (bright = close), with the prediction,
target and error in its ``data-*`` attributes and on hover. Size rule: at most ``max_prompts``
prompts (default 40, the first ones) are embedded, predictions rounded to 4 significant digits;
a note on the page says how many prompts were left out.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.analysis._tokens import readable_tokens
from actstore.errors import InvalidArgumentError

if TYPE_CHECKING:
    from actstore.analysis._detect_result import DetectionResult

__all__ = ["MAX_PROMPTS", "image_data_uri", "token_view_data", "token_view_html"]

#: Prompts embedded in the token view by default.
MAX_PROMPTS = 40

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def image_data_uri(path: str | Path) -> str:
    """A ``data:`` URI holding the image file at ``path`` (PNG, SVG or JPEG), base64-encoded.

    Raises
    ------
    InvalidArgumentError
        If the file's suffix is not one of those.
    """
    p = Path(path)
    mime = _MIME.get(p.suffix.lower())
    if mime is None:
        raise InvalidArgumentError(
            f"expected an image file (.png, .svg, .jpg), got {p.name!r}; save figures as PNG"
        )
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"


def _round(v: float, digits: int = 4) -> float | None:
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def token_view_data(result: DetectionResult, *, max_prompts: int = MAX_PROMPTS) -> dict[str, Any]:
    """The token view's data (JSON-ready): tokens, span, best tokens and predictions per prompt.

    Parameters
    ----------
    result : DetectionResult
        From :func:`actstore.analysis.detect`.
    max_prompts : int
        Embed the first this many prompts (the size rule in the module's note).

    Returns
    -------
    dict
        ``layers``, ``scale`` (the target's spread, :func:`._tokenplots.error_scale`),
        ``log_range``, ``span``, ``n_prompts``
        (all of the result's) and ``prompts``: per embedded prompt ``label``, ``target``,
        ``n_tokens``, ``tokens`` (readable text), ``span`` (token positions), ``best`` (per
        layer) and ``pred`` (layer x token, ``None`` where not finite).

    Raises
    ------
    InvalidArgumentError
        If ``max_prompts`` is not a positive integer.
    """
    from actstore.analysis._tokenplots import LOG_RANGE, error_scale

    if not isinstance(max_prompts, int | np.integer) or max_prompts < 1:
        raise InvalidArgumentError(
            f"expected max_prompts to be a positive integer, got {max_prompts!r}; pass e.g. 40"
        )
    tok = result.tokens
    labels = readable_tokens(tok["token_str"].values, width=40)
    layers = [int(v) for v in result.predictions["layer"].values]
    best = np.asarray(result.stats["best_token"].sel(control="probe").values, dtype=np.int64)
    prompts = []
    for p in range(min(max_prompts, tok.sizes["prompt"])):
        nt = int(tok["n_tokens"].values[p])
        span = (
            [int(t) for t in np.flatnonzero(tok["span_mask"].values[p, :nt])]
            if "span_mask" in tok
            else []
        )
        pred = result.predictions.values[p, :, :nt, 0]
        target = float(tok["target"].values[p])
        prompts.append(
            {
                "label": int(tok["prompt"].values[p]),
                "target": _round(target, 6),
                "n_tokens": nt,
                "tokens": [str(s) or "∅" for s in labels[p, :nt]],
                "span": span,
                "best": [int(b) for b in best[p]],
                "pred": [[_round(float(v)) for v in row] for row in pred],
            }
        )
    return {
        "layers": layers,
        "scale": error_scale(result),
        "log_range": LOG_RANGE,
        "span": result.span,
        "n_prompts": int(tok.sizes["prompt"]),
        "prompts": prompts,
    }


_CSS = """
.tv{border:1px solid #ccc;padding:8px;margin:1em 0}
.tv-controls{margin-bottom:6px;font-size:14px}
#tv-status{font-size:13px;color:#333;margin:4px 0}
#tv-tokens{font-family:monospace;font-size:14px;line-height:1.9;text-align:left}
.tok{display:inline-block;padding:0 2px;margin:1px;border-radius:3px;white-space:pre;cursor:default}
.tok.span{outline:2px solid red}
.tok.best{box-shadow:0 0 0 2px #000 inset;font-weight:bold}
.tv-legend{height:12px;width:320px;display:inline-block;vertical-align:middle;
border:1px solid #999;background:linear-gradient(to right,%s)}
"""

# viridis_r (matplotlib), 9 stops: 0 = small error (bright yellow) ... 1 = far (dark purple).
_STOPS = [
    "#fde725",
    "#b5de2b",
    "#6ece58",
    "#35b779",
    "#1f9e89",
    "#26828e",
    "#31688e",
    "#3e4989",
    "#482878",
    "#440154",
]

_JS = r"""
(function(){
var D=JSON.parse(document.getElementById('tv-data').textContent);
var S=%s;
var ps=document.getElementById('tv-prompt'),ls=document.getElementById('tv-layer');
var box=document.getElementById('tv-tokens'),st=document.getElementById('tv-status');
function hex(h){return [1,3,5].map(function(i){return parseInt(h.substr(i,2),16);});}
function colour(err){
  if(err===null||!isFinite(err))return ['#ffffff',0];
  var lo=Math.log10(D.scale*D.log_range),hi=Math.log10(D.scale);
  var x=(Math.log10(Math.max(err,1e-300))-lo)/(hi-lo);x=Math.min(1,Math.max(0,x));
  var f=x*(S.length-1),i=Math.min(S.length-2,Math.floor(f)),t=f-i;
  var a=hex(S[i]),b=hex(S[i+1]),c=a.map(function(v,k){return Math.round(v+(b[k]-v)*t);});
  return ['rgb('+c.join(',')+')',x];
}
function g(v){if(v===null)return 'n/a';var s=(+v).toPrecision(4);
  if(s.indexOf('e')<0)return s.replace(/(\.\d*?)0+$/,'$1').replace(/\.$/,'');
  return s.replace(/(\.\d*?)0+e/,'$1e').replace('.e','e');}
D.prompts.forEach(function(p,i){var o=document.createElement('option');o.value=i;
  o.textContent='prompt '+p.label+' (target '+g(p.target)+', '+p.n_tokens+' tokens)';
  ps.appendChild(o);});
D.layers.forEach(function(l,i){var o=document.createElement('option');o.value=i;
  o.textContent='layer '+l;ls.appendChild(o);});
function render(){
  var p=D.prompts[+ps.value],li=+ls.value,pred=p.pred[li];
  while(box.firstChild)box.removeChild(box.firstChild);
  var span={};p.span.forEach(function(t){span[t]=1;});
  p.tokens.forEach(function(text,t){
    var s=document.createElement('span'),v=pred[t];
    var err=(v===null||p.target===null)?null:Math.abs(v-p.target),c=colour(err);
    s.className='tok'+(span[t]?' span':'')+(p.best[li]===t?' best':'');
    s.textContent=text;s.style.background=c[0];s.style.color=c[1]>0.55?'#fff':'#000';
    s.dataset.token=t;s.dataset.pred=g(v);s.dataset.target=g(p.target);s.dataset.error=g(err);
    s.title='token '+t+' '+JSON.stringify(text)+'\nprediction '+g(v)+'\ntarget '+g(p.target)+
      '\n|error| '+g(err)+(span[t]?'\nin span '+D.span:'')+
      (p.best[li]===t?'\nbest token of this layer':'');
    box.appendChild(s);});
  box.dataset.nTokens=p.tokens.length;box.dataset.prompt=p.label;box.dataset.layer=D.layers[li];
  var b=p.best[li];
  st.textContent='prompt '+p.label+' \u00b7 layer '+D.layers[li]+' \u00b7 '+p.tokens.length+
    ' tokens \u00b7 target '+g(p.target)+' \u00b7 best token '+b+' '+JSON.stringify(p.tokens[b])+
    ' predicts '+g(pred[b]);
}
function fromHash(){
  var h={};location.hash.replace(/^#/,'').split('&').forEach(function(kv){
    var a=kv.split('=');if(a.length==2)h[a[0]]=decodeURIComponent(a[1]);});
  D.prompts.forEach(function(p,i){if(String(p.label)===h.prompt)ps.value=i;});
  D.layers.forEach(function(l,i){if(String(l)===h.layer)ls.value=i;});
}
fromHash();ps.onchange=render;ls.onchange=render;
window.addEventListener('hashchange',function(){fromHash();render();});
render();
})();
"""


def token_view_html(data: dict[str, Any]) -> str:
    """The token view as one HTML fragment (CSS, controls, JSON data, inline script).

    ``data`` is :func:`token_view_data`'s output. The JSON is escaped so that no token text can
    close the script element.
    """
    blob = json.dumps(data, ensure_ascii=False, allow_nan=False)
    blob = blob.replace("</", "<\\/").replace("<!--", "<\\!--")
    shown, total = len(data["prompts"]), data["n_prompts"]
    note = (
        f" The first {shown} of {total} prompts are included (size rule: at most {shown})."
        if shown < total
        else ""
    )
    span = data.get("span")
    lo = data["scale"] * data["log_range"]
    legend = (
        f"<span>|error| ≤ {lo:.3g}</span> <span class='tv-legend'></span> "
        f"<span>≥ {data['scale']:.3g} (log scale)</span>"
    )
    return "".join(
        [
            f"<style>{_CSS % ','.join(_STOPS)}</style>",
            "<div class='tv' id='token-view'>",
            "<p>Each token of a prompt, coloured by how close this layer's probe prediction is to "
            "the prompt's target (bright = close). Hover a token for its prediction, the target "
            "and the error."
            + (
                f" Tokens of the span {html.escape(repr(span))} are outlined in red;"
                if span
                else ""
            )
            + f" the layer's best-matching token is bold and framed.{html.escape(note)}</p>",
            "<div class='tv-controls'><label>Prompt <select id='tv-prompt'></select></label> "
            "<label>Layer <select id='tv-layer'></select></label></div>",
            f"<div>{legend}</div>",
            "<div id='tv-status'></div><div id='tv-tokens'></div>",
            f"<script type='application/json' id='tv-data'>{blob}</script>",
            f"<script>{_JS % json.dumps(_STOPS)}</script>",
            "</div>",
        ]
    )
