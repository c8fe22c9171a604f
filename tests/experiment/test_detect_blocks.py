"""Detection over several prompt sets: ``[[detect]]`` blocks in an experiment config.

Parsing and refusal of bad blocks; a run with two blocks (given worked solutions and the tiny
model's own continuations) whose per-block results equal :func:`actstore.analysis.detect` called
directly on each prompt set; and the single ``[detect]`` table as it always was.
"""

from __future__ import annotations

import json
import math
import shutil
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from actstore._jsonout import dumps
from actstore.analysis import detect, load_probes
from actstore.errors import ConfigError
from actstore.experiment import DetectConfig, config_hash, parse_config
from actstore.experiment._run import ExperimentRun

HEAD = """
name = "blocks"
[[prompt_sets]]
name = "arithmetic"
[[prompt_sets.sources]]
generator = "multiplication"
n = 40
seed = 0
[[prompt_sets]]
name = "physics"
[[prompt_sets.sources]]
generator = "kinetic_energy"
n = 4
seed = 2
options = { cot = "worked" }
[[prompt_sets]]
name = "physics_generated"
generate = { max_new_tokens = 8, find_spans = { v_squared = "label:v_squared", \
square = "regex:v² =" } }
[[prompt_sets.sources]]
generator = "kinetic_energy"
n = 4
seed = 2
options = { cot = "none" }
[extract]
layers = [1, -1]
dtype = "float32"
device = "cpu"
max_batch_tokens = 2048
[[probes]]
name = "last"
prompt_set = "arithmetic"
target = "value"
position = "last"
alphas = [1.0]
cv = 3
[[probes]]
name = "before"
prompt_set = "arithmetic"
target = "value"
position = "before:answer"
alphas = [1.0]
cv = 3
[report]
n_problems = 2
plots = ["summary"]
formats = ["md"]
"""

BLOCKS = """
[[detect]]
name = "given"
prompt_set = "physics"
target = "v_squared"
span = "v_squared"
[[detect]]
name = "generated"
probes = ["last"]
prompt_set = "physics_generated"
target = "v_squared"
span = "square"
seed = 3
"""


def _cfg(detect: str):
    return parse_config(tomllib.loads(HEAD + detect))


# -- parsing -------------------------------------------------------------------------------------
def test_blocks_parse_in_order_with_their_fields() -> None:
    cfg = _cfg(BLOCKS)
    assert isinstance(cfg.detect, tuple) and len(cfg.detect) == 2
    given, gen = cfg.detect_blocks
    assert (given.name, given.prompt_set, given.probes, given.seed) == ("given", "physics", (), 0)
    assert (gen.name, gen.prompt_set, gen.probes, gen.span, gen.seed) == (
        "generated",
        "physics_generated",
        ("last",),
        "square",
        3,
    )


def test_single_table_is_one_unnamed_block() -> None:
    cfg = _cfg('[detect]\nprompt_set = "physics"\ntarget = "v_squared"\n')
    assert isinstance(cfg.detect, DetectConfig) and cfg.detect.name is None
    assert cfg.detect_blocks == (cfg.detect,)
    assert _cfg("").detect_blocks == ()


_GOOD = '[[detect]]\nname = "a"\nprompt_set = "physics"\ntarget = "v_squared"\n'


@pytest.mark.parametrize(
    ("detect", "message"),
    [
        (
            '[[detect]]\nprompt_set = "physics"\ntarget = "v"\n',
            r"^config key 'detect\[0\]\.name' is missing; expected a name for each \[\[detect\]\] "
            r"block .*; add name = ",
        ),
        (
            _GOOD + _GOOD,
            r"^config key 'detect\[1\]\.name': expected a name used by one \[\[detect\]\] block, "
            r"got 'a' twice; rename one block$",
        ),
        (
            _GOOD.replace('"physics"', '"geometry"'),
            r"^config key 'detect\[0\]\.prompt_set': expected one of arithmetic, physics, "
            r"physics_generated, got 'geometry'; name a \[\[prompt_sets\]\] entry$",
        ),
        (
            _GOOD + 'probes = ["last", "nope"]\n',
            r"^config key 'detect\[0\]\.probes': expected names among before, last, got 'nope'; "
            r"name a \[\[probes\]\] entry$",
        ),
        (
            _GOOD + 'probes = ["last", "last"]\n',
            r"^config key 'detect\[0\]\.probes': expected each probe once, got \['last', 'last'\]; "
            r"remove the repeated name$",
        ),
        (
            _GOOD.replace('name = "a"', 'name = "a.b"'),
            r"^config key 'detect\[0\]\.name': expected a name of letters",
        ),
        (
            _GOOD + "permutationz = 3\n",
            r"^unknown config key 'detect\[0\]\.permutationz'; expected one of: ",
        ),
        (
            _GOOD + "seed = 1.5\n",
            r"^config key 'detect\[0\]\.seed': expected an integer, got 1\.5",
        ),
    ],
)
def test_bad_blocks_are_refused_naming_the_key(detect: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(detect)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], r"^config key 'detect': expected at least one \[\[detect\]\] block, got none; "),
        ([1], r"^config key 'detect\[0\]': expected a table, got int; write each block as "),
        ("physics", r"^config key 'detect': expected a \[detect\] table or \[\[detect\]\] "),
    ],
)
def test_detect_of_the_wrong_shape_is_refused(raw: object, message: str) -> None:
    data = tomllib.loads(HEAD)
    data["detect"] = raw
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_blocks_without_probes_are_refused() -> None:
    text = HEAD.split("[[probes]]")[0] + _GOOD
    with pytest.raises(ConfigError, match=r"has \[detect\] but no \[\[probes\]\]; add a probe"):
        parse_config(tomllib.loads(text))


# -- a run with two blocks -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def block_run(tiny_qwen2_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("blocks")
    run = ExperimentRun(_cfg(BLOCKS), out=out, model=tiny_qwen2_dir, log=lambda s: None)
    return run, run.run()


def test_each_block_runs_its_own_stages(block_run) -> None:
    run, records = block_run
    detects = [r.stage for r in records if r.stage.startswith("detect")]
    assert detects == ["detect:given:last", "detect:given:before", "detect:generated:last"]
    names = sorted(p.name for p in run.results_dir.glob("detect*.json"))
    assert names == [
        "detect_generated.last.json",
        "detect_given.before.json",
        "detect_given.last.json",
    ]


@pytest.mark.parametrize(
    ("file", "probe", "prompt_set", "span", "seed"),
    [
        ("detect_given.last.json", "last", "physics", "v_squared", 0),
        ("detect_given.before.json", "before", "physics", "v_squared", 0),
        ("detect_generated.last.json", "last", "physics_generated", "square", 3),
    ],
)
def test_block_results_equal_detect_called_directly(
    block_run, file: str, probe: str, prompt_set: str, span: str, seed: int
) -> None:
    run, _ = block_run
    saved = json.loads((run.results_dir / file).read_text())
    with warnings.catch_warnings():  # an empty span warns; the run saw the same warning
        warnings.simplefilter("ignore")
        direct = detect(
            run.cache_url,
            load_probes(run.cache_url, name=probe),
            prompt_set=prompt_set,
            target="v_squared",
            span=span,
            seed=seed,
            write=False,
        )
    assert saved["span"] == span
    assert saved["lineage"]["prompt_set"] == prompt_set
    want = direct.summary()
    assert [r["layer"] for r in saved["layers"]] == [r["layer"] for r in want]
    for got, ref in zip(saved["layers"], want, strict=True):
        assert got.keys() == ref.keys()
        for key, value in ref.items():
            if isinstance(value, float) and math.isnan(value):
                assert got[key] is None, key  # standard JSON: an undefined number is null
            else:
                assert got[key] == pytest.approx(value), key
    assert saved["prompts"]["probe"] == json.loads(dumps(direct.per_prompt("probe")))


def test_span_coverage_counts_prompts_without_the_span(block_run) -> None:
    """Recorded per block: prompts whose span has no real token, from the cache itself."""
    run, _ = block_run
    for file, prompt_set, span in (
        ("detect_given.last.json", "physics", "v_squared"),
        ("detect_generated.last.json", "physics_generated", "square"),
    ):
        ds = xr.open_zarr(run.cache_url, group=prompt_set, zarr_format=3, consolidated=False)
        mask = ds["span_mask"].sel(span=span).values
        real = np.arange(mask.shape[1])[None, :] < ds["n_tokens"].values[:, None]
        empty = [int(p) for p in np.flatnonzero(~(mask & real).any(axis=1))]
        saved = json.loads((run.results_dir / file).read_text())
        cov = saved["span_coverage"]
        names = [str(s) for s in ds["span"].values]
        with_span = {
            n: int((ds["span_mask"].sel(span=n).values & real).any(axis=1).sum()) for n in names
        }
        assert saved["span_counts"] == {"n_prompts": 4, "with_span": with_span}
        assert cov == {
            "span": span,
            "n_prompts": 4,
            "n_scored": 4,
            "n_empty": len(empty),
            "empty_prompts": empty,
        }
    # The given worked solutions write v² in every prompt.
    assert (
        json.loads((run.results_dir / "detect_given.last.json").read_text())["span_coverage"][
            "n_empty"
        ]
        == 0
    )


def test_predictions_written_once_per_set_and_reports_per_block(block_run) -> None:
    run, _ = block_run
    written = {"physics": {"pred_last", "pred_before"}, "physics_generated": {"pred_last"}}
    for prompt_set, names in written.items():
        ds = xr.open_zarr(run.cache_url, group=prompt_set, zarr_format=3, consolidated=False)
        assert {v for v in ds.data_vars if v.startswith("pred_") and "control" not in v} == names
    for folder in ("last/given", "before/given", "last/generated"):
        assert (run.out / "report" / folder / "report.md").is_file()
        assert any((run.out / "report" / folder).glob("*.png"))
    index = run.report_path.read_text()
    assert "Detection with 'last' on 'physics' (block 'given')" in index
    assert "Detection with 'last' on 'physics_generated' (block 'generated')" in index


def test_changed_block_reruns_only_its_detection(block_run, tmp_path: Path) -> None:
    run, _ = block_run
    again = ExperimentRun(run.config, out=run.out, model=run.model, log=lambda s: None).run()
    assert {r.status for r in again} == {"skipped"}
    out = tmp_path / "copy"
    shutil.copytree(run.out, out)
    cfg = _cfg(BLOCKS.replace("seed = 3", "seed = 4"))
    records = ExperimentRun(cfg, out=out, model=run.model, log=lambda s: None).run()
    assert {r.stage for r in records if r.status == "ran"} == {
        "detect:generated:last",
        "plots",
        "report",
    }


def test_single_table_keeps_its_stage_names_files_and_fingerprints(
    block_run, tmp_path: Path
) -> None:
    """A ``[detect]`` table: ``detect:<probe>``, ``detect_<probe>.json``, ``report/<probe>/``, and
    the fingerprint of the fields it always had (a run folder from before blocks stays current)."""
    run, _ = block_run
    out = tmp_path / "single"
    out.mkdir()
    shutil.copytree(run.cache_url, out / "cache.zarr")
    table = '[detect]\nprobes = ["last"]\nprompt_set = "physics"\ntarget = "v_squared"\n'
    single = ExperimentRun(_cfg(table), out=out, model=None, log=lambda s: None)
    records = single.run(["extract", "probes", "detect"])
    assert [r.stage for r in records if r.stage.startswith("detect")] == ["detect:last"]
    saved = json.loads((out / "results" / "detect_last.json").read_text())
    given = json.loads((run.results_dir / "detect_given.last.json").read_text())
    assert saved["layers"] == given["layers"]
    state = json.loads((out / "state.json").read_text())["stages"]
    legacy = {
        "prompt_set": "physics",
        "target": "v_squared",
        "probes": ["last"],
        "span": None,
        "seed": 0,
        # added with the p-values: a run folder from before them re-runs detection, by design
        "permutations": 100,
    }
    assert state["detect:last"] == config_hash(
        single._probe_fp("last"), single._data_fp("physics"), legacy
    )


# -- [report] plots and formats are honoured (reportcfg) ----------------------------------------
def _report_files(out: Path) -> set[str]:
    top = {p.name for p in out.glob("report.*")}
    return top | {str(p.relative_to(out)) for p in (out / "report").rglob("*") if p.is_file()}


def test_report_plots_and_formats_are_honoured(block_run, tmp_path: Path) -> None:
    """Only the listed figures are drawn and only the listed formats written; changing them
    re-runs just the plots and report stages, and leaves no file of the old choice behind."""
    run, _ = block_run
    assert run.config.report.plots == ("summary",) and run.config.report.formats == ("md",)
    folders = ("last/given", "before/given", "last/generated")
    expected = {"report.md"}
    for f in folders:
        expected |= {f"report/{f}/report.md", f"report/{f}/layer_summary.png"}
    assert _report_files(run.out) == expected
    out = tmp_path / "copy"
    shutil.copytree(run.out, out)
    text = (HEAD + BLOCKS).replace('plots = ["summary"]', 'plots = ["heatmap", "trace"]')
    cfg = parse_config(tomllib.loads(text.replace('formats = ["md"]', 'formats = ["html"]')))
    records = ExperimentRun(cfg, out=out, model=None, log=lambda s: None).run()
    assert {r.stage for r in records if r.status == "ran"} == {"plots", "report"}
    expected = {"report.html"}
    for f in folders:
        expected |= {
            f"report/{f}/report.html",
            f"report/{f}/computation_heatmaps.png",
            f"report/{f}/computation_traces.png",
        }
    assert _report_files(out) == expected
    index = (out / "report.html").read_text()
    assert "report/last/given/report.html" in index and "report.md" not in index


# -- targets and spans checked when the config is read (reportcfg) ------------------------------
@pytest.mark.parametrize(
    ("detect", "message"),
    [
        (
            _GOOD.replace('"v_squared"', '"value"'),
            r"^config key 'detect\[0\]\.target': expected a numeric label column of prompt set "
            r"'physics' \(m, v, v_squared, ke\), got 'value'; name one of those$",
        ),
        (
            _GOOD + 'span = "answer"\n',
            r"^config key 'detect\[0\]\.span': expected a span of prompt set 'physics' \(m, .*"
            r"\), got 'answer'; name one of those or leave span out$",
        ),
        (
            # a generated set: its spans are the prompts' and the find_spans names (v_squared,
            # square); 'completion' is a text label
            _GOOD.replace('"physics"', '"physics_generated"') + 'span = "sq"\n',
            r"^config key 'detect\[0\]\.span': expected a span of prompt set 'physics_generated' "
            r"\(.*, v_squared, square\), got 'sq'; name one of those or leave span out$",
        ),
        (
            _GOOD.replace('"v_squared"', '"completion"').replace(
                '"physics"', '"physics_generated"'
            ),
            r"^config key 'detect\[0\]\.target': .* got 'completion', a text label; ",
        ),
    ],
)
def test_targets_and_spans_are_refused_when_the_config_is_read(detect: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(detect)


def test_a_file_prompt_set_is_left_to_the_detect_stage(tmp_path: Path) -> None:
    """A ``file`` source is not read when the config is (it may be absent where a cache made
    elsewhere is analysed): a bad target there is refused by the detection stage, as before."""
    text = HEAD.replace(
        'generator = "kinetic_energy"\nn = 4\nseed = 2\noptions = { cot = "worked" }',
        f'file = "{tmp_path / "absent.jsonl"}"',
        1,
    )
    cfg = parse_config(tomllib.loads(text + _GOOD.replace('"v_squared"', '"nope"')))
    assert cfg.detect_blocks[0].target == "nope"
