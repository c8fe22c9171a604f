"""Run an experiment config stage by stage: extract, probes, detect, plots, report.

Each stage records a fingerprint of everything it depends on (its config section and the
fingerprints of the stages it reads) in ``OUT/state.json``, written atomically after the stage
succeeds. A stage whose fingerprint is unchanged and whose outputs exist is skipped, so a changed
config re-runs only what it affects, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actstore._jsonout import dumps
from actstore._locations import require_local
from actstore.errors import ConfigError, InvalidArgumentError
from actstore.experiment._detect_stage import (
    detect_fp,
    detected_pairs,
    detection,
    report_dir,
    results_name,
    run_detect,
    stage_key,
)
from actstore.experiment._index import write_index
from actstore.experiment._io import build_prompt_set
from actstore.experiment._spec import ExperimentConfig, config_hash
from actstore.experiment._stored import (
    check_probes,
    check_stored_set,
    complete_cache,
    model_description,
)

__all__ = ["STAGES", "ExperimentRun", "StageRecord", "build_prompt_set"]

STAGES = ("extract", "probes", "detect", "plots", "report")

#: ``[report] plots`` names -> figure keys of :data:`actstore.analysis._report.FIGURES`.
PLOT_FIGURES = {"heatmap": "heatmaps", "trace": "traces", "summary": "summary", "alpha": "alphas"}


@dataclass(frozen=True, kw_only=True)
class StageRecord:
    """What one stage did: ``status`` is ``"ran"`` or ``"skipped"``."""

    stage: str
    status: str
    seconds: float
    detail: str = ""


class ExperimentRun:
    """One experiment run into an output folder.

    Parameters
    ----------
    config : ExperimentConfig
        The validated config.
    out : path
        Output folder: ``cache.zarr`` (activations, probes, detection variables), ``state.json``,
        ``results/`` (JSON metrics), ``report/<probe>/`` (figures and per-probe reports; per
        named detection block in ``report/<probe>/<block>/``) and ``report.md`` /
        ``report.html`` (the index).
    model : path, optional
        Model directory; overrides ``config.model.path``.
    device : str, optional
        Overrides ``config.extract.device``.
    log : callable, optional
        Receives one line per stage event (default: print).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        out: str | os.PathLike[str],
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        log: Callable[[str], None] | None = None,
        label: str | None = None,
    ) -> None:
        self.config = config
        self.out = Path(require_local(out, "the run's --out"))
        self.model = str(model) if model is not None else config.model.path
        self.device = device or config.extract.device
        self.log = log or print
        self.label = label or config.name
        self.cache_url = str(self.out / "cache.zarr")
        self.results_dir = self.out / "results"
        self._state_path = self.out / "state.json"
        self._results: dict[str, Any] = {}
        self._stored_fps: dict[str, str] = {}

    # -- state -----------------------------------------------------------------------------
    def _load_state(self) -> dict[str, str]:
        try:
            data = json.loads(self._state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {str(k): str(v) for k, v in data.get("stages", {}).items()}

    def _save_state(self, state: dict[str, str]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"config": self.config.to_dict(), "stages": state}, indent=1))
        os.replace(tmp, self._state_path)

    def _write_json(self, name: str, payload: Any) -> Path:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.results_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(dumps(payload, indent=1))  # standard JSON: an undefined number is null
        os.replace(tmp, path)
        return path

    def _read_json(self, name: str) -> Any:
        return json.loads((self.results_dir / name).read_text())

    # -- fingerprints ----------------------------------------------------------------------
    def _extract_fp(self, set_name: str) -> str:
        return config_hash(
            str(Path(self.model).resolve()) if self.model else None,
            self.config.prompt_set(set_name),
            self.config.extract,
            self.device,
        )

    def _data_fp(self, set_name: str) -> str:
        """What downstream stages depend on: the stored set's fingerprint once it is complete.

        Using the cache's own fingerprint (model weights, tokenizer, prompts, layers) rather than
        the model path lets a cache extracted elsewhere (a cluster) be analysed here unchanged.
        """
        if set_name in self._stored_fps:
            return self._stored_fps[set_name]
        cache = self._complete_cache(set_name)
        if cache is not None:
            # Stored data is reused only when it is what the config asks for (refused otherwise).
            check_stored_set(self.config, set_name, cache, model=self.model)
            # A complete set's fingerprint never changes: open (and scan) the cache once.
            fp = config_hash(dict(cache.spec(set_name).fingerprint))
            self._stored_fps[set_name] = fp
            return fp
        return self._extract_fp(set_name)

    def _complete_cache(self, set_name: str) -> Any:
        return complete_cache(self.cache_url, set_name)

    def model_description(self) -> str:
        """The model named in reports: the one given, else the one the cache was extracted with."""
        return model_description(
            self.cache_url, self.model, [p.name for p in self.config.prompt_sets]
        )

    def _probe_fp(self, probe: str) -> str:
        pc = self.config.probe(probe)
        return config_hash(self._data_fp(pc.prompt_set), pc)

    def _plots_fp(self) -> str:
        return config_hash(
            [self._probe_fp(p.name) for p in self.config.probes],
            [detect_fp(self, det, p) for det, p in detected_pairs(self.config)],
            self.config.report,
        )

    def _report_fp(self) -> str:
        return config_hash(self._plots_fp(), self.config.name, self.config.description)

    # -- running ---------------------------------------------------------------------------
    def run(self, stages: Sequence[str] | None = None, *, force: bool = False) -> list[StageRecord]:
        """Run ``stages`` (default: all, in order); ``force`` re-runs them even when up to date.

        Raises
        ------
        FingerprintMismatchError
            When data stored in the output folder (a prompt set, saved probes) is not what the
            config asks for: the message names the field, both values and the fix.
        StorageError, ReadOnlyError
            When the output folder cannot be created or written.
        """
        from actstore._locations import location_errors

        with location_errors(str(self.out), "write"):
            self.out.mkdir(parents=True, exist_ok=True)  # fails before any model is loaded
            return self._run(stages, force=force)

    def _run(self, stages: Sequence[str] | None, *, force: bool) -> list[StageRecord]:
        chosen = list(STAGES if stages is None else stages)
        for s in chosen:
            if s not in STAGES:
                raise InvalidArgumentError(
                    f"expected stages among {', '.join(STAGES)}, got {s!r}; fix --stage"
                )
        state = self._load_state()
        records: list[StageRecord] = []
        steps: list[tuple[str, Callable[[], str], Callable[[], str], Callable[[], bool]]] = []
        for stage in STAGES:
            if stage not in chosen:
                continue
            steps.extend(self._steps(stage))
        for key, fp_of, fn, done in steps:
            # Fingerprints are taken when the step is reached: upstream stages may just have run.
            if key.startswith("extract:") and done():
                self._data_fp(key.split(":", 1)[1])  # checks the stored set against the config
            fp = fp_of()
            if key.startswith("extract:") and not self.model:
                if done():
                    # A cache filled elsewhere (e.g. a SLURM array): analysis needs no model.
                    records.append(StageRecord(stage=key, status="skipped", seconds=0.0))
                    self.log(f"[{self.label}] {key}: cache complete, no model needed, skipped")
                    continue
                raise ConfigError(
                    f"no model given and prompt set '{key.split(':', 1)[1]}' is not in "
                    f"{self.cache_url} yet: expected --model PATH or [model] path in the config; "
                    "pass a local checkpoint directory"
                )
            if not force and state.get(key) == fp and done():
                records.append(StageRecord(stage=key, status="skipped", seconds=0.0))
                self.log(f"[{self.label}] {key}: up to date, skipped")
                continue
            self.log(f"[{self.label}] {key}: running")
            t0 = time.perf_counter()
            detail = fn()
            dt = time.perf_counter() - t0
            state[key] = fp
            self._save_state(state)
            records.append(StageRecord(stage=key, status="ran", seconds=dt, detail=detail))
            self.log(f"[{self.label}] {key}: done in {dt:.1f} s{' - ' + detail if detail else ''}")
        return records

    def _steps(
        self, stage: str
    ) -> list[tuple[str, Callable[[], str], Callable[[], str], Callable[[], bool]]]:
        cfg = self.config
        if stage == "extract":
            return [
                (
                    f"extract:{ps.name}",
                    lambda n=ps.name: self._extract_fp(n),
                    lambda n=ps.name: self._run_extract(n),
                    lambda n=ps.name: self._extract_done(n),
                )
                for ps in cfg.prompt_sets
            ]
        if stage == "probes":
            return [
                (
                    f"probes:{pc.name}",
                    lambda n=pc.name: self._probe_fp(n),
                    lambda n=pc.name: self._run_probes(n),
                    lambda n=pc.name: (self.results_dir / f"probes_{n}.json").exists(),
                )
                for pc in cfg.probes
            ]
        if stage == "detect":
            return [
                (
                    stage_key(det, p),
                    lambda d=det, n=p: detect_fp(self, d, n),
                    lambda d=det, n=p: run_detect(self, d, n),
                    lambda d=det, n=p: (self.results_dir / results_name(d, n)).exists(),
                )
                for det, p in detected_pairs(cfg)
            ]
        if stage == "plots":
            return [("plots", self._plots_fp, self._run_plots, self._figures_exist)]
        return [("report", self._report_fp, self._run_report, self.report_path.exists)]

    def _figures_exist(self) -> bool:
        """Whether the figures the last plots stage listed (``results/figures.json``) exist."""
        try:
            drawn = self._read_json("figures.json")
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return all((self.out / p).is_file() for p in drawn)

    def _report_units(self) -> list[tuple[Any, Any, Path]]:
        """``(probe config, detection block or None, report folder)`` of every report."""
        units = []
        for pc in self.config.probes:
            blocks = [det for det, p in detected_pairs(self.config) if p == pc.name]
            for det in blocks or [None]:
                units.append((pc, det, report_dir(self.out, pc.name, det)))
        return units

    @property
    def report_path(self) -> Path:
        """Where the index report is written: ``report.md`` (``report.html`` without ``md``)."""
        return self.out / ("report.md" if "md" in self.config.report.formats else "report.html")

    # -- stages ----------------------------------------------------------------------------
    def _extract_done(self, set_name: str) -> bool:
        return self._complete_cache(set_name) is not None

    def _run_extract(self, set_name: str) -> str:
        from actstore.extractors import extract

        report = extract(
            self.config.extract,  # the [extract] table's ExtractConfig, with this set's inputs
            model=self.model,
            prompts=build_prompt_set(self.config, set_name),
            out=self.cache_url,
            set_name=set_name,
            device=self.device,
            progress="none",
            generate=self.config.prompt_set(set_name).generate,
        )
        return report.message or report.status

    def _run_probes(self, probe: str) -> str:
        from actstore.analysis import fit_probes, save_probes

        pc = self.config.probe(probe)
        probes = fit_probes(
            self.cache_url,
            prompt_set=pc.prompt_set,
            target=pc.target,
            position=pc.position,
            alphas=pc.alphas,
            cv=pc.cv,
            seed=pc.seed,
            standardize=pc.standardize,
        )
        save_probes(probes, self.cache_url, name=probe)
        self._write_json(f"probes_{probe}.json", probes.to_dict())
        best = max(probes.metrics(), key=lambda r: r.get("cv_r2", float("-inf")))
        return f"best layer {best.get('layer')} CV R2 {best.get('cv_r2', float('nan')):.3f}"

    def _run_plots(self) -> str:
        from actstore.analysis._report import FIGURES, write_figures

        wanted = [PLOT_FIGURES[p] for p in self.config.report.plots]
        drawn: list[str] = []
        for pc, det, folder in self._report_units():
            # Figures left by an earlier run with other [report] plots would reach the report.
            for key, fname in FIGURES.items():
                if key not in wanted:
                    (folder / fname).unlink(missing_ok=True)
            result = None
            if det is not None and {"heatmaps", "traces"} & set(wanted):
                result = detection(self, det, pc.name)
            paths = write_figures(
                self._load_probes(pc.name),
                result,
                folder,
                prompts=self._plot_prompts(),
                plots=wanted,
            )
            drawn += [os.path.relpath(p, self.out) for p in paths.values()]
        self._write_json("figures.json", drawn)
        return f"{len(drawn)} figures"

    def _plot_prompts(self) -> list[int]:
        return list(range(self.config.report.n_problems))

    def _run_report(self) -> str:
        from actstore.analysis._report import FIGURES, FORMATS, write_report

        formats = self.config.report.formats
        wanted = [PLOT_FIGURES[p] for p in self.config.report.plots]
        stale = [f"report.{f}" for f in FORMATS if f not in formats]
        sections = []
        for pc, det, folder in self._report_units():
            result = detection(self, det, pc.name) if det is not None else None
            figures = {
                k: folder / f for k, f in FIGURES.items() if k in wanted and (folder / f).exists()
            }
            for name in stale:  # left by an earlier run with other [report] formats
                (folder / name).unlink(missing_ok=True)
            title = f"{self.label}: probe '{pc.name}' ({pc.target} at {pc.position})"
            if det is not None and det.name is not None:
                title += f", detection '{det.name}' on '{det.prompt_set}'"
            paths = write_report(
                self._load_probes(pc.name),
                result,
                folder,
                title=title,
                prompts=self._plot_prompts(),
                figures=figures,
                formats=formats,
            )
            sections.append((pc, det, paths))
        write_index(self, sections)
        return f"{self.report_path}"

    def _load_probes(self, probe: str) -> Any:
        """The saved probes ``probe``, refused unless fitted as the config asks on this data."""
        from actstore.analysis import load_probes

        probes = load_probes(self.cache_url, name=probe)
        pc = self.config.probe(probe)
        check_probes(probes, pc, self._complete_cache(pc.prompt_set), name=probe)
        return probes
