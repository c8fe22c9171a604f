"""Generated continuations: ``extract(generate=...)`` against plain transformers references.

References: ``model.generate(do_sample=False, max_new_tokens=N)`` of each prompt alone, a plain
(unbatched, unpadded) forward pass over prompt + continuation, and a hand-written per-prompt
sampling loop without a KV cache.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
import zarr

from actstore.errors import FingerprintMismatchError, InvalidArgumentError
from tests.extractors._helpers import mixed_prompt_set

N_NEW = 7


def _extract(model, prompts, out, **kw):
    from actstore.extractors import extract

    args = {
        "layers": "all",
        "dtype": "float32",
        "device": "cpu",
        "max_batch_tokens": 110,
        "progress": False,
    }
    return extract(model=model, prompts=prompts, out=out, **{**args, **kw})


def _ref(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def _group(out, name="mixed"):
    import actstore.store  # registers bfloat16

    assert actstore.store
    return zarr.open_group(str(out), mode="r")[name]


@pytest.mark.parametrize("arch", ["qwen2", "gpt2", "llama"])
def test_continuation_and_activations_equal_unbatched_references(
    arch, tiny_model_factory, tmp_path
):
    from actstore.extractors._generate import _generation_batches

    path = tiny_model_factory(arch)
    ps = mixed_prompt_set(10)
    out = tmp_path / "c.zarr"
    _extract(path, ps, out, generate=N_NEW)
    model, tok = _ref(path)
    g = _group(out)
    token_id, n_tok = g["token_id"][:], g["n_tokens"][:]
    is_gen, act = g["is_generated"][:], g["resid_post"][:]
    completion = g["completion"][:]
    lens = [len(tok(p.text).input_ids) for p in ps.prompts]
    # the extractor's generation batches really mix lengths (left padding is exercised)
    assert any(len({lens[i] for i in b}) > 1 for b in _generation_batches(lens, N_NEW, 110))
    assert g["token_id"].shape[1] == max(lens) + N_NEW
    for i, p in enumerate(ps.prompts):
        ids = tok(p.text, return_tensors="pt").input_ids
        with torch.no_grad():
            ref = model.generate(ids, do_sample=False, max_new_tokens=N_NEW)[0]
        cont = ref[ids.shape[1] :].tolist()
        row = token_id[i, : n_tok[i]].tolist()
        assert row == ref.tolist(), f"prompt {i}"
        assert is_gen[i].tolist() == [False] * lens[i] + [True] * len(cont) + [False] * (
            is_gen.shape[1] - lens[i] - len(cont)
        )
        assert completion[i] == tok.decode(cont, skip_special_tokens=False)
        with torch.no_grad():
            hs = model(ref[None], output_hidden_states=True).hidden_states
        n = len(row)
        for li in range(act.shape[1] - 1):  # the last block's output is normed in hidden_states
            np.testing.assert_allclose(act[i, li, :n], hs[li + 1][0].numpy(), atol=1e-5, rtol=0)
        assert not act[i, :, n:].any()


def _sample_alone(model, ids, n_new, temperature, top_p, gen):
    """Plain sampling loop: full forward each step, the same per-prompt generator."""
    seq = ids[0].tolist()
    for _ in range(n_new):
        with torch.no_grad():
            logits = model(torch.tensor([seq])).logits[0, -1].float() / temperature
        s, order = torch.sort(logits, descending=True)
        probs = torch.softmax(s, -1)
        s = s.masked_fill((torch.cumsum(probs, -1) - probs) >= top_p, -torch.inf)
        probs = torch.softmax(torch.full_like(logits, -torch.inf).scatter(0, order, s), -1)
        seq.append(int(torch.multinomial(probs, 1, generator=gen).item()))
    return seq[ids.shape[1] :]


def test_seeded_sampling_is_reproducible_and_batch_independent(tiny_qwen2_dir, tmp_path):
    from actstore.extractors._generate import _seed_for

    ps = mixed_prompt_set(6)
    settings = {"max_new_tokens": 5, "do_sample": True, "temperature": 1.5, "top_p": 0.9}
    conts = []
    for k, budget in enumerate((30, 400)):  # one prompt per batch, then all in one batch
        out = tmp_path / f"s{k}.zarr"
        _extract(tiny_qwen2_dir, ps, out, generate={**settings, "seed": 7}, max_batch_tokens=budget)
        g = _group(out)
        conts.append([g["token_id"][i, g["is_generated"][i]].tolist() for i in range(len(ps))])
    assert conts[0] == conts[1]
    model, tok = _ref(tiny_qwen2_dir)
    for i, p in enumerate(ps.prompts):
        ids = tok(p.text, return_tensors="pt").input_ids
        gen = torch.Generator().manual_seed(_seed_for(7, i))
        assert conts[0][i] == _sample_alone(model, ids, 5, 1.5, 0.9, gen), f"prompt {i}"
    out = tmp_path / "other_seed.zarr"
    _extract(tiny_qwen2_dir, ps, out, generate={**settings, "seed": 8})
    g = _group(out)
    other = [g["token_id"][i, g["is_generated"][i]].tolist() for i in range(len(ps))]
    assert other != conts[0]


def test_stop_string_ends_the_continuation(tiny_qwen2_dir, tmp_path):
    ps = mixed_prompt_set(4)
    _extract(tiny_qwen2_dir, ps, tmp_path / "free.zarr", generate=12)
    g = _group(tmp_path / "free.zarr")
    _model, tok = _ref(tiny_qwen2_dir)
    free = [g["token_id"][i, g["is_generated"][i]].tolist() for i in range(len(ps))]
    # a stop string taken from the middle of prompt 0's continuation
    piece = next(
        t for t in (tok.decode([x]) for x in free[0][3:]) if t.strip() and "\ufffd" not in t
    )
    _extract(tiny_qwen2_dir, ps, tmp_path / "stop.zarr", generate={"max_new_tokens": 12,
             "stop": [piece]})  # fmt: skip
    g = _group(tmp_path / "stop.zarr")
    for i in range(len(ps)):
        want = free[i]
        for k in range(len(free[i])):
            if piece in tok.decode(free[i][: k + 1]):
                want = free[i][: k + 1]
                break
        got = g["token_id"][i, g["is_generated"][i]].tolist()
        assert got == want, f"prompt {i}"
        assert g["n_tokens"][i] == len(tok(ps.prompts[i].text).input_ids) + len(want)
    assert len(_group(tmp_path / "stop.zarr")["token_id"][0]) == len(g["token_id"][0])


def test_chat_template_is_applied_first(tiny_qwen2_dir, tmp_path):
    path = tmp_path / "chat_model"
    shutil.copytree(tiny_qwen2_dir, path)
    cfg_path = path / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = (
        "{% for m in messages %}<|user|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    cfg_path.write_text(json.dumps(cfg))
    ps = mixed_prompt_set(3)
    out = tmp_path / "c.zarr"
    _extract(path, ps, out, generate={"max_new_tokens": 4, "chat_template": True})
    model, tok = _ref(path)
    g = _group(out)
    for i, p in enumerate(ps.prompts):
        text = f"<|user|>{p.text}\n<|assistant|>"
        assert g["text"][i] == text
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            ref = model.generate(ids, do_sample=False, max_new_tokens=4)[0].tolist()
        assert g["token_id"][i, : g["n_tokens"][i]].tolist() == ref
        spans = [str(s) for s in g["span"][:]]
        mask = g["span_mask"][i, spans.index("answer")]
        answer = "".join(g["token_str"][i, mask])
        assert answer.strip() == str(p.labels["value"])
    with pytest.raises(InvalidArgumentError, match="chat template"):
        _extract(tiny_qwen2_dir, ps, tmp_path / "x.zarr", generate={"max_new_tokens": 2,
                 "chat_template": True})  # fmt: skip


def test_changed_generation_setting_is_refused_naming_the_field(tiny_qwen2_dir, tmp_path):
    ps = mixed_prompt_set(4)
    out = tmp_path / "c.zarr"
    _extract(tiny_qwen2_dir, ps, out, generate=3)
    before = _group(out)["token_id"][:]
    changes = [
        ({"max_new_tokens": 4}, "generate.max_new_tokens"),
        ({"max_new_tokens": 3, "do_sample": True}, "generate.do_sample"),
        ({"max_new_tokens": 3, "stop": ["."]}, "generate.stop"),
        ({"max_new_tokens": 3, "find_spans": {"a": "regex:x"}}, "generate.find_spans"),
        # a plain run over the generated set: named as such, not as some other field
        (None, "max_new_tokens differs from the stored one: expected 3 (stored: a generated set)"),
    ]
    for gen, field in changes:
        with pytest.raises(FingerprintMismatchError, match=re.escape(field)):
            _extract(tiny_qwen2_dir, ps, out, generate=gen)
    assert (_group(out)["token_id"][:] == before).all()
    # the same settings again: nothing to do
    report = _extract(tiny_qwen2_dir, ps, out, generate={"max_new_tokens": 3})
    assert report.status == "already-complete"


def test_sharded_worker_captures_the_stored_continuation(tiny_qwen2_dir, tmp_path):
    """Worker 1 finds the set worker 0 created and captures what is stored, never its own."""
    ps = mixed_prompt_set(8)
    out = tmp_path / "c.zarr"
    # windows of one block: worker 0 writes block 0, worker 1 block 1
    _extract(tiny_qwen2_dir, ps, out, generate=5, block_size=4, shard="0/2", batch_window=1)
    # alter the stored continuation of prompt 5 (block 1, not captured yet): worker 1 must use it
    g = zarr.open_group(str(out), mode="r+")["mixed"]
    row = g["token_id"][5]
    n = int(g["n_tokens"][5])
    row[n - 2 : n] = [11, 12]
    g["token_id"][5] = row
    _extract(tiny_qwen2_dir, ps, out, generate=5, block_size=4, shard="1/2", batch_window=1)
    model, _ = _ref(tiny_qwen2_dir)
    ids = torch.tensor([row[:n].tolist()])
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    act = _group(out)["resid_post"][5]
    np.testing.assert_allclose(act[0, :n], hs[1][0].numpy(), atol=1e-5, rtol=0)


def test_generation_settings_are_checked():
    from actstore.extractors import GenerateConfig
    from actstore.extractors._genconfig import parse_generate

    assert parse_generate(None) is None
    assert parse_generate(4) == GenerateConfig(max_new_tokens=4)
    bad = [
        ({"max_new_tokens": 0}, "generate.max_new_tokens"),
        ({"max_new_tokens": 2, "temperature": 0.5}, "generate.temperature 1.0 with greedy"),
        ({"max_new_tokens": 2, "do_sample": True, "top_p": 1.5}, "generate.top_p"),
        ({"max_new_tokens": 2, "stop": [""]}, "generate.stop"),
        ({"max_new_tokens": 2, "find_spans": ["v2"]}, "generate.find_spans"),
        ({"max_new_tokens": 2, "find_spans": {"v2": "regex:("}}, "valid regular expression"),
        ({"max_new_tokens": 2, "find_spans": {"v2": "v_squared"}}, "'label:COLUMN'"),
        ({"max_new_tokens": 2, "beams": 2}, "'beams'"),
        ({"do_sample": True}, "generate.max_new_tokens"),
    ]
    for value, text in bad:
        with pytest.raises(InvalidArgumentError, match=text.replace(".", r"\.")):
            parse_generate(value)


def _constructed(tokenizer, prompts, completions, find_spans):
    """build_generated over continuations written by hand (token ids of the given texts)."""
    from actstore.extractors import GenerateConfig
    from actstore.extractors._genflow import build_generated
    from actstore.extractors._tokenize import tokenize_prompts

    tok = tokenize_prompts(tokenizer, prompts)
    gens = [tokenizer(c, add_special_tokens=False).input_ids for c in completions]
    cfg = GenerateConfig(max_new_tokens=max(len(g) for g in gens), find_spans=find_spans)
    t_max = tok.n_tokens_max + cfg.max_new_tokens
    return tok, gens, build_generated(tokenizer, tok, prompts, gens, cfg, t_max)


def test_span_finders_mark_the_first_appearance_in_constructed_continuations(tiny_qwen2_dir):
    from transformers import AutoTokenizer

    from actstore.prompts import Prompt, PromptSet

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    prompts = PromptSet(
        name="ke",
        prompts=tuple(
            Prompt(
                text=f"A {m} kg cart at {v} m/s. Its kinetic energy is", labels={"v_squared": sq}
            )
            for m, v, sq in ((2, 25, 625), (3, 8, 64), (4, 5, 25), (5, 1.5, 2.25))
        ),
    )
    completions = [
        " v squared is 6250? No: v^2 = 625 m2/s2, so 625 again",  # 6250 is not 625
        " first 164, then 64.0 and 64",  # 164 is not 64; 64.0 is
        " nothing here but 250 and 2.5",  # 25 does not appear alone: an empty span
        " so 12.25 and 2.25 J",
    ]
    with pytest.warns(UserWarning, match="was not found in") as caught:
        tok, gens, (_, meta) = _constructed(
            tokenizer, prompts, completions, {"v2": "label:v_squared", "eq": r"regex:=\s*\d+"}
        )
    assert sorted(str(w.message).split(" (")[0] for w in caught) == ["span 'eq'", "span 'v2'"]
    assert any("not found in 1 of 4 continuations" in str(w.message) for w in caught)
    want_v2 = [" v squared is 6250? No: v^2 = ", " first 164, then ", None, " so 12.25 and "]
    want_value = ["625", "64.0", None, "2.25"]
    for i, text in enumerate(completions):
        start = len(tok.ids[i])
        assert meta.labels["completion"][i] == text
        assert meta.is_generated[i].sum() == len(gens[i])
        mask = meta.span_masks["v2"][i]
        if want_v2[i] is None:
            assert not mask.any()
            continue
        idx = np.flatnonzero(mask)
        assert idx.min() >= start
        # independent: character offsets of each generated token by decoding prefixes
        ends = [len(tokenizer.decode(gens[i][: k + 1])) for k in range(len(gens[i]))]
        a = len(want_v2[i])
        b = a + len(want_value[i])
        want = [k for k in range(len(gens[i])) if (ends[k - 1] if k else 0) < b and ends[k] > a]
        assert (idx - start).tolist() == want, f"prompt {i}"
    # the regex finder: the first '= <digits>' (prompt 0 only)
    eq = np.flatnonzero(meta.span_masks["eq"][0]) - len(tok.ids[0])
    assert "".join(tokenizer.decode([gens[0][k]]) for k in eq).strip().startswith("=")
    assert not meta.span_masks["eq"][1:].any()


def test_before_span_positions_work_on_generated_spans(tiny_qwen2_dir, tmp_path):
    """A span found in the continuation is stored like prompt spans: `before:SPAN` reads it."""
    from actstore.prompts import parse_position

    ps = mixed_prompt_set(5)
    out = tmp_path / "c.zarr"
    _extract(
        tiny_qwen2_dir, ps, out, generate={"max_new_tokens": 6, "find_spans": {"any": "regex:."}}
    )
    g = _group(out)
    spans = [str(s) for s in g["span"][:]]
    mask = g["span_mask"][:, spans.index("any"), :]
    is_gen = g["is_generated"][:]
    n_prompt = is_gen.argmax(axis=1)
    # '.' matches the first character: the first generated token that decodes to any text
    for i in range(len(ps)):
        first = int(np.flatnonzero(mask[i])[0])
        assert first >= n_prompt[i] and is_gen[i, first]
        pos = parse_position("before:any")
        sel = pos.select(int(g["n_tokens"][i]), {"any": mask[i]})
        assert sel.tolist() == [first - 1]


def test_cli_generate_and_dry_run(tiny_qwen2_dir, tmp_path):
    import subprocess
    import sys

    from tests.reliability._harness import REPO, env

    prompts = tmp_path / "p.jsonl"
    mixed_prompt_set(3).to_jsonl(prompts)
    out = tmp_path / "c.zarr"
    base = [sys.executable, "-m", "actstore", "extract", "--model", str(tiny_qwen2_dir),
            "--prompts", str(prompts), "--out", str(out), "--layers", "0", "--dtype", "float32",
            "--device", "cpu", "--generate", "4", "--find-span", "any=regex:.", "--json",
            "--set-name", "mixed"]  # fmt: skip
    dry = subprocess.run([*base, "--dry-run"], cwd=REPO, env=env(), capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    _, tok = _ref(tiny_qwen2_dir)
    longest = max(len(tok(p.text).input_ids) for p in mixed_prompt_set(3).prompts)
    assert plan["n_tokens_max"] == longest + 4
    r = subprocess.run(base, cwd=REPO, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    g = _group(out, "mixed")
    assert g["is_generated"][:].sum(axis=1).tolist() == [4, 4, 4]
    fp = zarr.open_group(str(out), mode="r")["mixed"].attrs["actstore"]["spec"]["fingerprint"]
    assert fp["generate.max_new_tokens"] == 4
    assert fp["generate.find_spans"] == {"any": "regex:."}


def test_subset_copy_keeps_the_continuation(tiny_qwen2_dir, tmp_path):
    from actstore.store import copy_cache

    ps = mixed_prompt_set(4)
    out = tmp_path / "c.zarr"
    gen = {"max_new_tokens": 3, "find_spans": {"a": "regex:."}}
    _extract(tiny_qwen2_dir, ps, out, generate=gen)
    copy_cache(str(out), str(tmp_path / "sub.zarr"), prompts=[3, 1])
    src, sub = _group(out), _group(tmp_path / "sub.zarr")
    for name in ("is_generated", "completion", "token_id", "span_mask"):
        np.testing.assert_array_equal(sub[name][:], src[name][:][[3, 1]])
