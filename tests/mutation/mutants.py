# ruff: noqa: E501
"""The mutant catalogue run by ``tests/mutation/run.py``: one small change to one source file each.

``old`` must occur exactly once in ``file``; ``tests`` are the test files (or node ids) that should
kill the mutant; ``k`` an optional ``-k`` expression; ``equivalent`` the reason when the change
cannot be observed (it is then left out of the kill rate).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str
    k: str | None = None
    equivalent: str | None = None


RIDGE = "src/actstore/analysis/_ridge.py"
FIT = "src/actstore/analysis/_fit.py"
STATS = "src/actstore/analysis/_stats.py"
MOMENTS = "src/actstore/analysis/_moments.py"
PROBES = "src/actstore/analysis/_probes.py"
RIDGEPROBE = "src/actstore/analysis/_ridgeprobe.py"
ALPHASEARCH = "src/actstore/analysis/_alphasearch.py"
SIGNIF = "src/actstore/analysis/_significance.py"
DATA = "src/actstore/analysis/_data.py"
DETECT = "src/actstore/analysis/_detect.py"
DETECT_WRITE = "src/actstore/analysis/_detect_write.py"
DETECT_RESULT = "src/actstore/analysis/_detect_result.py"
PROBESET = "src/actstore/analysis/_probeset.py"
A_POSITIONS = "src/actstore/analysis/_positions.py"
S_POSITIONS = "src/actstore/store/core/_positions.py"
DETECT_CONFIG = "src/actstore/experiment/_detect_config.py"
DETECT_STAGE = "src/actstore/experiment/_detect_stage.py"
GENFLOW = "src/actstore/extractors/_genflow.py"
PERSIST = "src/actstore/analysis/_persist.py"
WRITER = "src/actstore/store/core/_writer.py"
MARKERS = "src/actstore/store/format/_markers.py"
COPY = "src/actstore/store/ops/_copy.py"
OPEN = "src/actstore/store/core/_open.py"
VERIFY = "src/actstore/store/ops/_verify.py"
DERIVED = "src/actstore/store/core/_derived.py"
LAYOUT = "src/actstore/store/format/_layout.py"
ENTRY = "src/actstore/store/core/_entry.py"
PARTIAL = "src/actstore/store/format/_partial.py"
HF = "src/actstore/extractors/_hf.py"
LAYERS = "src/actstore/extractors/_layers.py"
BATCHING = "src/actstore/extractors/_batching.py"
SINK = "src/actstore/extractors/_sink.py"
TOKENIZE = "src/actstore/extractors/_tokenize.py"
HOOKS = "src/actstore/extractors/_hooks.py"

A_FIT = (
    "tests/analysis/test_folds_and_subsets.py",
    "tests/analysis/test_mutant_kills.py",
    "tests/analysis/test_probes.py",
    "tests/analysis/test_ridge.py",
)
A_SCALE = (*A_FIT, "tests/analysis/test_scale.py")
A_DET = (
    "tests/analysis/test_folds_and_subsets.py",
    "tests/analysis/test_mutant_kills.py",
    "tests/analysis/test_detect.py",
)
A_PERSIST = (
    "tests/analysis/test_persist.py",
    "tests/analysis/test_detect.py",
    "tests/reliability/test_hostile_open.py",
    "tests/analysis/test_mutant_kills.py",
)
S_CACHE = (
    "tests/store/test_write_order.py",
    "tests/store/test_mutant_kills.py",
    "tests/store/test_cache.py",
)
S_COPY = (
    "tests/store/test_write_order.py",
    "tests/store/test_copy.py",
    "tests/reliability/test_hostile_copy.py",
    "tests/store/test_mutant_kills.py",
)
S_VERIFY = (
    "tests/store/test_verify.py",
    "tests/reliability/test_corrupt.py",
    "tests/store/test_mutant_kills.py",
)
S_LAYOUT = (
    "tests/store/test_layout.py",
    "tests/store/test_cache.py",
    "tests/store/test_mutant_kills.py",
)
E_PLAN = ("tests/extractors/test_plan.py", "tests/extractors/test_mutant_kills.py")
E_ACT = ("tests/extractors/test_activations.py", "tests/extractors/test_mutant_kills.py")
E_ERR = ("tests/extractors/test_errors.py", "tests/extractors/test_mutant_kills.py")

MUTANTS: list[Mutant] = [
    Mutant(
        "significance-null-folds-ungrouped",
        SIGNIF,
        'int(lin.get("seed", 0)), lin.get("group_by")',
        'int(lin.get("seed", 0)), None',
        ("tests/analysis/test_significance.py",),
        "issue 12: shuffled-label null probes ignore the probes' group_by folds",
        k="grouped",
    ),
    Mutant(
        "significance-holm-no-monotone",
        SIGNIF,
        "out[order] = np.maximum.accumulate(adj)",
        "out[order] = adj",
        ("tests/analysis/test_significance.py",),
        "issue 12: Holm adjusted p-values not made monotone",
        k="holm",
    ),
    # ---------------------------------------------------------------- analysis: folds and ridge
    Mutant(
        "probes-folds-per-token",
        PROBES,
        "fold = folds_of(groups)[inverse]",
        "fold = folds_of(prompt)",
        A_FIT,
        "issue 10: CV folds drawn per token instead of per prompt with position='all'",
    ),
    Mutant(
        "ridge-kfold-seed",
        RIDGE,
        "np.random.RandomState(seed).shuffle(order)",
        "np.random.RandomState(seed + 1).shuffle(order)",
        A_FIT,
        "folds shuffled with another seed than scikit-learn's KFold",
    ),
    Mutant(
        "ridge-kfold-sizes",
        RIDGE,
        "sizes[: n % k] += 1",
        "sizes[k - n % k :] += 1",
        A_FIT,
        "the larger folds at the end instead of the start",
    ),
    Mutant(
        "ridge-kfold-min-folds",
        RIDGE,
        "    if k < 2:",
        "    if k < 1:",
        A_FIT,
        "cv=1 accepted",
    ),
    Mutant(
        "ridge-kfold-n-equals-k",
        RIDGE,
        "    if n < k:",
        "    if n <= k:",
        A_FIT,
        "as many prompts as folds refused",
    ),
    Mutant(
        "ridge-r2-sst-ddof",
        RIDGE,
        "yc = y[test] - y[test].mean(axis=0)",
        "yc = y[test] - y[test].sum(axis=0) / (len(y[test]) - 1)",
        A_FIT,
        "dual CV: held-out total sum of squares about a wrong mean (n - 1 divisor)",
    ),
    Mutant(
        "ridge-eigh-threshold",
        RIDGE,
        "_EIGH_FROM = 3",
        "_EIGH_FROM = 1",
        A_FIT,
        "eigendecomposition for any number of alphas",
        equivalent="both paths solve the same system exactly; only the cost differs",
    ),
    Mutant(
        "ridge-alpha-order",
        RIDGE,
        "i for i, a in enumerate(alphas) if not _refined(",
        "i for i, a in enumerate(alphas[::-1]) if not _refined(",
        A_FIT,
        "alphas applied in reverse order on the eigen path",
    ),
    Mutant(
        "ridge-gram-grand-mean",
        RIDGE,
        "    grand = col_mean.mean()",
        "    grand = 0.0",
        A_FIT,
        "dual: centred cross-Gram without the grand mean",
        equivalent="adds one constant to every Gram entry; the dual coefficients sum to zero (the "
        "centred labels are orthogonal to ones, an eigenvector of the centred Gram), so neither "
        "the solution nor a prediction changes",
    ),
    Mutant(
        "ridge-dual-ymean-leak",
        RIDGE,
        "        y_mean = y[train].mean(axis=0)",
        "        y_mean = y.mean(axis=0)",
        A_FIT,
        "dual CV: the held-out fold's labels leak into the intercept",
    ),
    Mutant(
        "ridge-dual-mae-squared",
        RIDGE,
        "        mae[f] = np.abs(resid).mean(axis=0)",
        "        mae[f] = (resid**2).mean(axis=0)",
        A_FIT,
        "dual CV: MAE computed as MSE",
    ),
    Mutant(
        "ridge-dual-intercept-sign",
        RIDGE,
        "intercept = y_mean[:, None] - _matmul3(x_mean[None, :], coef)[0]",
        "intercept = y_mean[:, None] + _matmul3(x_mean[None, :], coef)[0]",
        A_FIT,
        "dual refit: intercept sign",
        equivalent="its only caller passes rows already centred on their mean, so the term it "
        "flips is zero",
    ),
    Mutant(
        "ridge-primal-uncentred-xy",
        RIDGE,
        "wx + (dx * n[:, None]).T @ dx, wy + (dx * n[:, None]).T @ dy",
        "wx + (dx * n[:, None]).T @ dx, wy",
        A_FIT,
        "primal: pooled X^T y co-moment without the between-fold means term (not centred on the pooled means)",
    ),
    Mutant(
        "ridge-primal-fold-count",
        RIDGE,
        "scale = std_scale(np.diagonal(cxx_p) / n_p, mx_p, n_p)",
        "scale = std_scale(np.diagonal(cxx_p) / n.sum(), mx_p, n.sum())",
        (*A_FIT, "tests/analysis/test_standardize.py"),
        "primal standardize: training variance divided by the count of all folds, fold f's not removed",
    ),
    Mutant(
        "ridge-primal-fold-xy",
        RIDGE,
        "wy_tot - cxy[f])",
        "wy_tot - cxy[0])",
        A_FIT,
        "primal: fold 0's X^T y removed for every fold",
    ),
    Mutant(
        "fit-solver-auto",
        FIT,
        'return "dual" if n < d else "primal"',
        'return "dual" if n > d else "primal"',
        A_FIT,
        "auto picks the solver the wrong way round",
    ),
    Mutant(
        "fit-choose-argmin",
        FIT,
        "return np.argmax(mean, axis=-1)",
        "return np.argmin(mean, axis=-1)",
        A_FIT,
        "the worst alpha is refitted",
    ),
    Mutant(
        "fit-choose-nan",
        FIT,
        "nan=-np.inf",
        "nan=np.inf",
        A_FIT,
        "a NaN mean held-out R² wins the alpha choice",
        equivalent="a mean held-out R² is NaN only where every fold's held-out targets are "
        "constant, which does not depend on alpha: a target's row is NaN for every alpha or for "
        "none, and argmax over a row of one value picks the first alpha either way",
    ),
    Mutant(
        "fit-dual-intercept-shift",
        FIT,
        'out["intercept"][j] = intercept[cols, choice] - shift @ chosen',
        'out["intercept"][j] = intercept[cols, choice] + shift @ chosen',
        A_FIT,
        "dual: shift added back with the wrong sign",
    ),
    Mutant(
        "fit-primal-heldout-uses-full-model",
        FIT,
        "res = (ys[sel] - mys[f])[:, :, None] - _apply(x[sel] - mxs[f], coefs[f])",
        "res = (ys[sel] - mys[k])[:, :, None] - _apply(x[sel] - mxs[k], coefs[k])",
        A_FIT,
        "primal CV scored with the model trained on all data",
    ),
    Mutant(
        "fit-primal-train-mae",
        FIT,
        'out["train_mae"][layer] = sae[j, k] / n',
        'out["train_mae"][layer] = sae[j, k] / (n - 1)',
        A_FIT,
        "training MAE divided by n - 1",
    ),
    Mutant(
        "fit-layer-groups-last",
        FIT,
        "for i in range(0, n_layers, size)]",
        "for i in range(0, max(1, n_layers - 1), size)]",
        A_SCALE,
        "the last layer group is never fitted when layers are grouped",
    ),
    Mutant(
        "fit-dual-shift-zero",
        FIT,
        "        shift = x.mean(axis=0)\n        x -= shift\n",
        "        shift = np.zeros(d)\n        x -= shift\n",
        (*A_SCALE, "tests/analysis/test_numerics.py"),
        "dual: rows not centred before the Gram matrix (cancellation with large means; data scale of uncentred rows)",
    ),
    Mutant(
        "stats-syy",
        MOMENTS,
        "self.cyy[f] += (yext * yext).sum(axis=0)",
        "self.cyy[f] += yext.sum(axis=0)",
        A_FIT,
        "sum of squared labels without the square",
    ),
    Mutant(
        "stats-shift-layer0",
        MOMENTS,
        "ext[m] = root * (mx_b - self.mx[f, j])",
        "ext[m] = root * (mx_b - self.mx[f, 0])",
        (*A_FIT, "tests/analysis/test_numerics.py"),
        "every layer's batches merged against layer 0's running mean",
    ),
    Mutant(
        "stats-last-token-dropped",
        STATS,
        "t0, t1 = int(tok.min()), int(tok.max()) + 1",
        "t0, t1 = int(tok.min()), int(tok.max())",
        A_FIT,
        "the token window of a task misses its last token",
    ),
    Mutant(
        "stats-searchsorted-right",
        STATS,
        "starts = np.searchsorted(prompt, bounds)",
        'starts = np.searchsorted(prompt, bounds, side="right")',
        A_SCALE,
        "batches split at the wrong sample when a prompt sits on a chunk boundary",
    ),
    Mutant(
        "stats-layer-order",
        STATS,
        "np.concatenate(rows[b * n_l : (b + 1) * n_l], axis=1)",
        "np.concatenate(rows[b * n_l : (b + 1) * n_l][::-1], axis=1)",
        A_FIT,
        "layers of a batch concatenated in reverse",
    ),
    Mutant(
        "probes-control-per-token",
        PROBES,
        "        ys.append(y_prompt[groups[perm]][inverse])",
        "        ys.append(np.random.default_rng(seed).permutation(y_prompt[prompt]))",
        A_FIT,
        "control labels shuffled per token, not per prompt",
    ),
    Mutant(
        "probes-layer-positions",
        PROBES,
        "layer_pos = np.array([stored.index(v) for v in wanted])",
        "layer_pos = np.arange(len(wanted))",
        A_FIT,
        "a layer subset reads the first stored layers",
    ),
    Mutant(
        "probes-nan-labels-kept",
        PROBES,
        "labelled = np.flatnonzero(np.isfinite(y_prompt))",
        "labelled = np.arange(len(y_prompt))",
        A_FIT,
        "prompts without a label become samples",
    ),
    Mutant(
        "probes-predict-intercept",
        RIDGEPROBE,
        "@ self.coef_ + self.intercept_",
        "@ self.coef_ - self.intercept_",
        (*A_FIT, "tests/analysis/test_estimators.py"),
        "RidgeProbe.predict subtracts the intercept",
    ),
    Mutant(
        "probes-metrics-train-r2-index",
        PROBESET,
        '"train_r2": float(ds["train_r2"].values[i, a]),',
        '"train_r2": float(ds["train_r2"].values[i, 0]),',
        A_FIT,
        "metrics report training R² of the first alpha, not the chosen one",
    ),
    Mutant(
        "probes-cv-r2-max",
        PROBES,
        'fold_mean(out["cv_r2_fold"][:, :, col], 1))',
        'np.nanmax(out["cv_r2_fold"][:, :, col], 1))',
        A_FIT,
        "cv_r2 is the best fold, not the mean",
    ),
    Mutant(
        "probes-alpha-zero",
        ALPHASEARCH,
        "np.any(arr <= 0)",
        "np.any(arr < 0)",
        A_FIT,
        "alpha 0 accepted",
    ),
    Mutant(
        "data-keep-ignored",
        DATA,
        "mask = pos.token_mask(n_tokens, masks) & keep[:, None]",
        "mask = pos.token_mask(n_tokens, masks)",
        A_FIT,
        "select_positions ignores the prompts it was given",
    ),
    # ---------------------------------------------------------------- analysis: detection
    Mutant(
        "detect-writeback-layer-subset",
        DETECT_WRITE,
        "full[:, [stored.index(v) for v in layers]] = values",
        "full[:, : len(layers)] = values",
        (*A_DET, "tests/analysis/test_detect_layers.py"),
        "issue 10: predictions of a layer subset written under the wrong layers",
    ),
    Mutant(
        "detect-writeback-control-column",
        DETECT_WRITE,
        'f"{name}_control", full[..., 1]',
        'f"{name}_control", full[..., 0]',
        A_DET,
        "the control variable holds the fitted probe's predictions",
    ),
    Mutant(
        "detect-padding-boundary",
        DETECT,
        "pad = np.arange(values.shape[2])[None, :] >= n_tokens[:, None]",
        "pad = np.arange(values.shape[2])[None, :] > n_tokens[:, None]",
        A_DET,
        "the first padding token keeps a prediction",
    ),
    Mutant(
        "detect-z-sign",
        DETECT_RESULT,
        "z = np.where(varies, (mean - best_err) /",
        "z = np.where(varies, (best_err - mean) /",
        A_DET,
        "z with the wrong sign",
    ),
    Mutant(
        "detect-span-rank-offset",
        DETECT_RESULT,
        "rank = 1 + (outside & (filled < span_err[..., None])).sum(axis=-1)",
        "rank = (outside & (filled < span_err[..., None])).sum(axis=-1)",
        A_DET,
        "span rank counted from 0",
    ),
    Mutant(
        "detect-random-target-range",
        DETECT,
        "y_random = np.random.default_rng(seed).uniform(lo, hi, size=len(y))",
        "y_random = np.random.default_rng(seed).uniform(0.0, hi, size=len(y))",
        A_DET,
        "random-target control drawn outside the target's range",
    ),
    Mutant(
        "detect-nan-label-rows",
        DETECT,
        '        data[key][1][:, nan_rows] = -1 if key == "best_token" else np.nan\n',
        "        pass\n",
        A_DET,
        "prompts without a label get statistics (against the random target)",
    ),
    Mutant(
        "detect-default-span",
        DETECT,
        "    if span is None and target in masks:",
        "    if span is None and target in masks and False:",
        A_DET,
        "the span named like the target is not used by default",
    ),
    Mutant(
        "detect-best-layer-max",
        DETECT_RESULT,
        'return min(rows, key=lambda r: np.nan_to_num(r["probe_mean_min_error"], nan=np.inf))[',
        'return max(rows, key=lambda r: np.nan_to_num(r["probe_mean_min_error"], nan=-np.inf))[',
        A_DET,
        "best layer = largest error",
    ),
    Mutant(
        "detect-summary-median",
        DETECT_RESULT,
        'row[f"{control}_mean_min_error"] = finite_mean(best)',
        'row[f"{control}_mean_min_error"] = finite_median(best)',
        A_DET,
        "the reference's mean minimum error reported as a median",
    ),
    Mutant(
        "detect-hit-rate-ignores-nan",
        DETECT_RESULT,
        'row[f"{control}_hit_rate"] = finite_mean(st["hit"].values[c, :, i])',
        'row[f"{control}_hit_rate"] = float(np.nansum(st["hit"].values[c, :, i]) / st.sizes["prompt"])',
        A_DET,
        "hit rate counts prompts without a span as misses",
    ),
    Mutant(
        "persist-d-model-check",
        PERSIST,
        "if probes.d_model != d:",
        "if probes.d_model > d:",
        A_PERSIST,
        "probes of a smaller d_model accepted",
    ),
    Mutant(
        "persist-model-check-inverted",
        PERSIST,
        "if not allow_model_mismatch and mine is not None",
        "if allow_model_mismatch and mine is not None",
        A_PERSIST,
        "model fingerprint check inverted",
    ),
    Mutant(
        "persist-npz-allow-pickle",
        PERSIST,
        "with np.load(path, allow_pickle=False) as npz:",
        "with np.load(path, allow_pickle=True) as npz:",
        A_PERSIST,
        "saved probes loaded with pickle allowed",
    ),
    # ---------------------------------------------------------------- store: writes and markers
    Mutant(
        "writer-marker-before-shard",
        WRITER,
        "            plans = {h: self._plan(h) for h in arrays}\n",
        "            plans = {h: self._plan(h) for h in arrays}\n            self._done[b] = 1\n",
        S_CACHE,
        "issue 10: completion recorded before the shard is written",
    ),
    Mutant(
        "writer-dtype-check",
        WRITER,
        "            if arr.dtype != want_dtype:",
        "            if arr.dtype != want_dtype and False:",
        S_CACHE,
        "activations of another dtype accepted",
    ),
    Mutant(
        "writer-no-clear-block",
        WRITER,
        "        clear_block(self.cache.store, self.name, list(arrays), b)\n",
        "",
        (*S_CACHE, "tests/reliability/test_corrupt.py"),
        "an unrecorded block's leftover shard is not cleared before the rewrite",
    ),
    Mutant(
        "writer-block-range-stop",
        WRITER,
        "return start, min(start + self.block_size, self.spec.n_prompts)",
        "return start, start + self.block_size",
        S_CACHE,
        "the last block extends past the last prompt",
    ),
    Mutant(
        "writer-block-range-bound",
        WRITER,
        "not 0 <= b < self.n_blocks:",
        "not 0 <= b <= self.n_blocks:",
        S_CACHE,
        "block index n_blocks accepted",
    ),
    Mutant(
        "writer-token-id-fill",
        WRITER,
        'fill_value="" if is_str else (-1 if name == "token_id" else None),',
        'fill_value="" if is_str else None,',
        S_CACHE,
        "token_id padding fill value not -1",
        equivalent="every token_id chunk is written at creation (padding included, as -1), so "
        "the fill value is never read",
    ),
    Mutant(
        "writer-permission-error",
        WRITER,
        "        except PermissionError as exc:\n            raise ReadOnlyError(",
        "        except FileNotFoundError as exc:\n            raise ReadOnlyError(",
        S_CACHE,
        "a permission error during a block write is not the one-line ReadOnlyError",
    ),
    Mutant(
        "markers-partial-names",
        MARKERS,
        "            if tail.isdigit():",
        "            if tail.split('.')[0].isdigit():",
        (*S_CACHE, "tests/reliability/test_corrupt.py"),
        "a marker's temporary .partial file counts as the marker",
    ),
    Mutant(
        "markers-last-block",
        MARKERS,
        "return [b for b in range(n_blocks) if b not in done]",
        "return [b for b in range(n_blocks - 1) if b not in done]",
        S_CACHE,
        "the last block is never reported missing",
    ),
    Mutant(
        "partial-marker-leftover-kept",
        PARTIAL,
        '    for path in (root / prompt_set / DONE_ARRAY / "c").glob(f"{block}.*{PARTIAL_SUFFIX}"):',
        '    for path in (root / prompt_set / DONE_ARRAY / "c").glob(f"{block}.*.none"):',
        (*S_CACHE, "tests/reliability/test_corrupt.py", "tests/reliability/test_hostile_open.py"),
        "a killed marker write's temporary file is left behind",
    ),
    # ---------------------------------------------------------------- store: copy
    Mutant(
        "copy-incomplete-subset-zeros",
        COPY,
        "if any(int(r) // src_block in src_missing for r in rows):",
        "if False and any(int(r) // src_block in src_missing for r in rows):",
        S_COPY,
        "issue 10: a subset copy copies unwritten blocks' zeros and records them complete",
    ),
    Mutant(
        "copy-incomplete-any-all",
        COPY,
        "if any(int(r) // src_block in src_missing for r in rows):",
        "if all(int(r) // src_block in src_missing for r in rows):",
        S_COPY,
        "a copy block mixing written and unwritten source prompts is recorded",
    ),
    Mutant(
        "copy-prompt-index-bound",
        COPY,
        "bad = idx[(idx < -n) | (idx >= n)]",
        "bad = idx[(idx < -n) | (idx > n)]",
        (*S_COPY, "tests/store/test_subsets.py"),
        "prompt index n accepted",
    ),
    Mutant(
        "copy-negative-prompt-index",
        COPY,
        "bad = idx[(idx < -n) | (idx >= n)]",
        "bad = idx[(idx < -n - 1) | (idx >= n)]",
        (*S_COPY, "tests/store/test_subsets.py"),
        "prompt index -n-1 accepted (wraps round to the last prompt)",
    ),
    Mutant(
        "copy-derived-layers",
        COPY,
        'sel if d == "prompt" else layer_idx if d == "layer" else slice(None) for d in dims',
        'sel if d == "prompt" else slice(None) for d in dims',
        S_COPY,
        "derived variables not subset along layer",
    ),
    Mutant(
        "copy-existing-destination",
        COPY,
        "if os.path.exists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):",
        "if os.path.exists(dst) and not os.path.isdir(dst):",
        S_COPY,
        "copy into an existing non-empty directory",
    ),
    Mutant(
        "copy-follows-links",
        COPY,
        "            if path.is_symlink():",
        "            if path.is_symlink() and False:",
        S_COPY,
        "symbolic links inside a source cache followed",
    ),
    Mutant(
        "copy-labels-skip-derived",
        COPY,
        "        and ATTR_KEY not in a.attrs\n    }",
        "    }",
        S_COPY,
        "a derived (prompt,) variable copied as a label too",
        equivalent="the derived copy that follows rewrites the same array (overwrite=True) with "
        "the same values and its derived attributes, so the copy ends up identical",
    ),
    # ---------------------------------------------------------------- store: open, verify, derived
    Mutant(
        "open-incomplete-warning",
        OPEN,
        "    if missing:\n        block = int(",
        "    if missing and False:\n        block = int(",
        S_CACHE,
        "an incomplete prompt set opens without a warning",
    ),
    Mutant(
        "open-dtype-cast",
        OPEN,
        "dtypes.update({hook: numpy_dtype(dtype) for hook in hooks})",
        "dtypes.update({})",
        S_CACHE,
        "open(dtype=...) does not cast",
    ),
    Mutant(
        "open-layer-chunks",
        OPEN,
        'chunks = {"prompt": int(info["layout"]["read_prompts"]), "layer": 1}',
        'chunks = {"prompt": int(info["layout"]["read_prompts"])}',
        S_CACHE,
        "dask chunks hold every layer (documented: one layer per chunk)",
        equivalent="the storage chunks are one layer wide and xarray keeps the storage chunking "
        "of a dimension the chunks argument does not name",
    ),
    Mutant(
        "open-done-array-visible",
        OPEN,
        'ds.drop_vars([DONE_ARRAY], errors="ignore")',
        "ds",
        S_CACHE,
        "the completion-marker array shows up as a variable",
    ),
    Mutant(
        "verify-missing-recorded-shard",
        VERIFY,
        "if is_hook and complete_blocks[set_name][coords[0]]:",
        "if is_hook and not complete_blocks[set_name][coords[0]]:",
        S_VERIFY,
        "verify inverts which absent shards are problems",
    ),
    Mutant(
        "verify-truncation-check",
        VERIFY,
        "sync(cache.store.getsize(full_key)) < floor",
        "sync(cache.store.getsize(full_key)) < 0",
        S_VERIFY,
        "a shard cut below its index is not named",
    ),
    Mutant(
        "verify-incomplete-blocks-all-done",
        VERIFY,
        "            done[missing_from_listing(cache.store, name, n_blocks)] = False\n",
        "",
        S_VERIFY,
        "verify treats unwritten blocks as recorded",
    ),
    Mutant(
        "derived-hook-name-allowed",
        DERIVED,
        "    if name in hooks:\n        what =",
        "    if False:\n        what =",
        (*S_CACHE, "tests/store/test_derived_names.py"),
        "a derived write may replace an activation variable",
    ),
    Mutant(
        "derived-dtype-kind",
        DERIVED,
        "if not is_number_dtype(dtype):",
        'if not (is_number_dtype(dtype) or dtype.kind in "UTO"):',
        S_CACHE,
        "a string derived variable accepted",
    ),
    Mutant(
        "derived-shape-check",
        DERIVED,
        'if getattr(data, "shape", None) != shape:',
        'if getattr(data, "shape", None) is None:',
        S_CACHE,
        "a derived variable of the wrong shape accepted",
    ),
    Mutant(
        "layout-chunk-divisor",
        LAYOUT,
        "range(1, min(target_cp, block_size) + 1)",
        "range(1, min(target_cp, block_size))",
        S_LAYOUT,
        "inner chunk never as large as the shard",
    ),
    Mutant(
        "layout-n-blocks-floor",
        LAYOUT,
        "n_blocks = -(-n_prompts // block_size)",
        "n_blocks = max(1, n_prompts // block_size)",
        S_LAYOUT,
        "the last partial block is dropped",
    ),
    Mutant(
        "layout-read-prompts",
        LAYOUT,
        "read_prompts = min(k, n_blocks) * block_size",
        "read_prompts = min(k, n_blocks)",
        S_LAYOUT,
        "read chunks not a multiple of the block",
    ),
    Mutant(
        "cache-readonly-create",
        ENTRY,
        "    except PermissionError as exc:\n        raise ReadOnlyError(",
        "    except FileNotFoundError as exc:\n        raise ReadOnlyError(",
        S_CACHE,
        "creating a cache in a read-only place is not the one-line ReadOnlyError",
    ),
    # ---------------------------------------------------------------- extractors
    Mutant(
        "layers-negative-index",
        LAYERS,
        "idx = raw + n_layers if raw < 0 else raw",
        "idx = raw + n_layers - 1 if raw < 0 else raw",
        E_PLAN,
        "-1 is the second-to-last block",
        k="resolve_layers or layer_bounds",
    ),
    Mutant(
        "layers-upper-bound",
        LAYERS,
        "if not 0 <= idx < n_layers:",
        "if not 0 <= idx <= n_layers:",
        E_PLAN,
        "layer n_layers accepted",
        k="resolve_layers or layer_bounds",
    ),
    Mutant(
        "hooks-dedupe",
        HOOKS,
        "        out = tuple(dict.fromkeys(names))\n        return out, out",
        "        out = tuple(names)\n        return out, out",
        E_PLAN,
        "a repeated hook is captured twice",
        k="resolve_hooks or repeated_hook",
    ),
    Mutant(
        "batching-budget-boundary",
        BATCHING,
        "if current and max(seq, n) * (len(current) + 1) > max_batch_tokens:",
        "if current and max(seq, n) * (len(current) + 1) >= max_batch_tokens:",
        E_PLAN,
        "a batch exactly at the token budget is split",
        k="plan_batches or batch",
    ),
    Mutant(
        "batching-shortest-first",
        BATCHING,
        "order = idx[np.lexsort((idx, -lens))]",
        "order = idx[np.lexsort((idx, lens))]",
        E_PLAN,
        "prompts batched shortest first (more padding)",
        k="plan_batches or batch",
    ),
    Mutant(
        "batching-crosses-blocks",
        BATCHING,
        "        if current:\n            out.append(batch(b, current, seq))\n    return out",
        "    if current:\n        out.append(batch(b, current, seq))\n    return out",
        E_PLAN,
        "the last batch of each block but the last is lost",
        k="plan_batches or batch",
    ),
    Mutant(
        "batching-window-of-missing-blocks-only",
        BATCHING,
        "    ranges = window_ranges(wanted, block_size=block_size, n_prompts=len(n_tokens), window=window)",
        "    ranges = [(b, b * block_size, min((b + 1) * block_size, len(n_tokens))) for b in sorted(wanted)]",
        ("tests/extractors/test_windows.py",),
        "a resume plans only its missing blocks, not their whole windows (other batches)",
    ),
    Mutant(
        "sink-rows-of-written-blocks-kept",
        SINK,
        "            if b in self._ranges:  # else written by an earlier run: its rows are dropped",
        "            if b in self._ranges or True:",
        ("tests/extractors/test_windows.py",),
        "a resumed window's rows of blocks already written are not dropped",
    ),
    Mutant(
        "sink-padding-not-zeroed",
        SINK,
        "region[r, :, int(n[r]) :] = 0",
        "region[r, :, int(n[r]) + 1 :] = 0",
        E_ACT,
        "the first padding position keeps the padded batch's values",
    ),
    Mutant(
        "sink-bf16-nonfinite",
        SINK,
        "mask = (bits & 0x7F80) == 0x7F80",
        "mask = (bits & 0x7FFF) == 0x7F80",
        (*E_ERR, "tests/extractors/test_mutant_kills.py"),
        "bfloat16 NaN not detected (only inf)",
    ),
    Mutant(
        "hf-hook-block-offset",
        HF,
        "        block = self.blocks[layer]\n",
        "        block = self.blocks[layer - 1]\n",
        E_ACT,
        "hooks on the previous block",
        k="float32_every_layer or resid_pre",
    ),
    Mutant(
        "hf-no-early-stop",
        HF,
        "        if len(self._captured) == self._needed:\n            raise _StopForward",
        "        if False:\n            raise _StopForward",
        E_ACT,
        "the forward pass runs every block after the deepest captured one",
    ),
    Mutant(
        "hf-pre-hook-uses-output",
        HF,
        'block.register_forward_pre_hook(self._in_hook("resid_pre", layer), with_kwargs=True)',
        'self.blocks[min(layer + 1, len(self.blocks) - 1)].register_forward_pre_hook(self._in_hook("resid_pre", layer), with_kwargs=True)',
        E_ACT,
        "resid_pre captured at the next block's input",
        k="resid_pre",
    ),
    Mutant(
        "tokenize-prepend-duplicates",
        TOKENIZE,
        "            if not ids[i] or ids[i][0] != bos_id:",
        "            if True:",
        E_PLAN,
        "bos='prepend' adds a second BOS where the tokenizer already put one",
    ),
    Mutant(
        "tokenize-token-id-pad",
        TOKENIZE,
        "token_id = np.full((len(ids), t_max), -1, dtype=np.int32)",
        "token_id = np.full((len(ids), t_max), 0, dtype=np.int32)",
        E_PLAN,
        "token_id padding 0 (a real token id) instead of -1",
    ),
    # ---------------------------------------------------------------- significance, [[detect]] blocks, positions, generation resume
    Mutant(
        "significance-p-tie-strict",
        SIGNIF,
        "count = (null <= observed[:, None]).sum(axis=-1)",
        "count = (null < observed[:, None]).sum(axis=-1)",
        ("tests/analysis/test_significance.py", "tests/analysis/test_mutant_kills.py"),
        "permutation p-value: null statistics equal to the observed one not counted (too small p)",
        k="permutation_p or holm or tie",
    ),
    Mutant(
        "significance-beats-either",
        SIGNIF,
        "beats = (p_c < LEVEL) & (p_rc < LEVEL)",
        "beats = (p_c < LEVEL) | (p_rc < LEVEL)",
        ("tests/analysis/test_significance.py", "tests/analysis/test_mutant_kills.py"),
        "a layer beats chance when only one of its two corrected p-values is small",
        k="planted or missing_training or beats",
    ),
    Mutant(
        "detect-config-duplicate-names",
        DETECT_CONFIG,
        "            names.add(det.name)\n",
        "",
        ("tests/experiment/test_detect_blocks.py",),
        "two [[detect]] blocks of one name accepted (their results share a file)",
        k="bad_blocks",
    ),
    Mutant(
        "detect-stage-writes-any-set",
        DETECT_STAGE,
        "if p == probe and other.prompt_set == det.prompt_set:",
        "if p == probe:",
        ("tests/experiment/test_detect_blocks.py",),
        "only the first block detecting a probe writes its predictions, whatever its prompt set",
        k="predictions_written",
    ),
    Mutant(
        "positions-complete-too-early",
        S_POSITIONS,
        'info = {"kind": "positions", "complete": False,',
        'info = {"kind": "positions", "complete": True,',
        ("tests/analysis/test_read_positions.py", "tests/extractors/test_positions.py"),
        "the positions group is recorded complete before its rows are written",
        k="killed",
    ),
    Mutant(
        "positions-first-token-lost",
        S_POSITIONS,
        "has = np.flatnonzero(idx[:, j] >= 0)",
        "has = np.flatnonzero(idx[:, j] > 0)",
        ("tests/analysis/test_read_positions.py",),
        "a position at token 0 is materialised as zeros",
        k="rows_are_the_activations or bit_identical",
    ),
    Mutant(
        "positions-read-other-hook",
        A_POSITIONS,
        ' or hook not in stored["hooks"]:',
        ":",
        ("tests/analysis/test_read_positions.py", "tests/analysis/test_mutant_kills.py"),
        "a hook that was not materialised is read from the positions group",
        k="other_positions_and_hooks or bit_identical or hook_left_out",
    ),
    Mutant(
        "genflow-stored-tokens-short",
        GENFLOW,
        "ids = [token_id[i, : int(n)].tolist()",
        "ids = [token_id[i, : int(n) - 1].tolist()",
        ("tests/extractors/test_generate.py", "tests/extractors/test_resume.py"),
        "a resumed or sharded worker captures the stored continuation without its last token",
        k="sharded_worker",
    ),
    Mutant(
        "genflow-unchecked-stored-fields",
        GENFLOW,
        '    keys += [k for k in sorted(stored) if k.startswith("generate.") and k not in fingerprint]\n',
        "",
        ("tests/extractors/test_generate.py",),
        "a stored generation setting this run lacks (e.g. no chat template now) is not compared",
        k="changed_generation_setting",
    ),
]
