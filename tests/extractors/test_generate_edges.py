"""Edge cases of generated runs found by trying them as a user (breaker14).

Span finders on constructed continuations (characters split over byte tokens, a number inside a
longer decimal, a prompt lacking the label, a regex whose first match is empty), finders checked
before anything is generated, the chat template's user turn, and a plain run over a generated set.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from actstore.errors import FingerprintMismatchError, InvalidArgumentError


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: written here, independent of the code under test."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _char_ranges_from_bytes(tokenizer, ids):
    """Reference: each token's characters, from its bytes and the UTF-8 layout of the text."""
    dec = _byte_decoder()
    token_bytes = [bytes(dec[c] for c in t) for t in tokenizer.convert_ids_to_tokens(ids)]
    text = b"".join(token_bytes).decode("utf-8")
    char_of_byte = []
    for k, ch in enumerate(text):
        char_of_byte += [k] * len(ch.encode("utf-8"))
    out, pos = [], 0
    for b in token_bytes:
        out.append((char_of_byte[pos], char_of_byte[pos + len(b) - 1] + 1))
        pos += len(b)
    return text, out


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen2_dir)


@pytest.mark.parametrize("text", [" v² = 625", " é€ 625.5 then 625", " 日本 = 9 ✓"])
def test_offsets_give_a_split_character_to_every_byte_token(tokenizer, text):
    from actstore.extractors._genflow import continuation_offsets

    ids = tokenizer(text, add_special_tokens=False).input_ids
    decoded, want = _char_ranges_from_bytes(tokenizer, ids)
    assert decoded == text
    assert len(ids) > len(text.split())  # the text really is split into byte tokens
    assert continuation_offsets(tokenizer, ids) == want


def _build(tokenizer, prompts, completions, find_spans):
    from actstore.extractors import GenerateConfig
    from actstore.extractors._genflow import build_generated
    from actstore.extractors._tokenize import tokenize_prompts

    tok = tokenize_prompts(tokenizer, prompts)
    gens = [tokenizer(c, add_special_tokens=False).input_ids for c in completions]
    cfg = GenerateConfig(max_new_tokens=max(len(g) for g in gens), find_spans=find_spans)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, meta = build_generated(
            tokenizer, tok, prompts, gens, cfg, tok.n_tokens_max + cfg.max_new_tokens
        )
    return tok, gens, meta, [str(w.message) for w in caught]


def _want_tokens(tokenizer, gen, a, b):
    """Tokens covering any character of [a, b), from the byte-level reference."""
    _, ranges = _char_ranges_from_bytes(tokenizer, gen)
    return [k for k, (s, e) in enumerate(ranges) if s < b and e > a]


def test_finders_on_constructed_continuations(tokenizer):
    from actstore.prompts import Prompt, PromptSet

    prompts = PromptSet(
        name="c",
        prompts=(
            Prompt(text="A 2 kg cart at 25 m/s.", labels={"v_squared": 625}),
            Prompt(text="A 3 kg cart at 8 m/s.", labels={"v_squared": 64}),
            Prompt(text="A cart.", labels={"other": 1}),  # lacks the label: an empty span
            Prompt(text="A 1 kg cart at 7 m/s.", labels={"v_squared": 49}),
        ),
    )
    completions = [
        " 625.5 is not it; v² = 625 and again 625",  # 625 inside 625.5 does not count
        " x² = 64 then 64.05, 64",
        " v² = 625",
        " 0.49 or 149? v² = 49",  # neither 0.49 nor 149 is 49
    ]
    tok, gens, meta, warned = _build(
        tokenizer,
        prompts,
        completions,
        {"v2": "label:v_squared", "sq": "regex:v² =", "n": r"regex:\d*"},
    )
    assert any("'v2' (label:v_squared) was not found in 1 of 4" in w for w in warned), warned
    wanted = {
        "v2": [
            (" 625.5 is not it; v² = ", "625"),
            (" x² = ", "64"),
            None,
            (" 0.49 or 149? v² = ", "49"),
        ],
        "sq": [(" 625.5 is not it; ", "v² ="), None, (" ", "v² ="), (" 0.49 or 149? ", "v² =")],
        # the regex's first match is empty (at character 0): the first non-empty one counts
        "n": [(" ", "625"), (" x² = ", "64"), (" v² = ", "625"), (" ", "0")],
    }
    for name, rows in wanted.items():
        for i, want in enumerate(rows):
            got = np.flatnonzero(meta.span_masks[name][i]) - len(tok.ids[i])
            if want is None:
                assert got.size == 0, (name, i)
                continue
            a = len(want[0])
            b = a + len(want[1])
            assert completions[i][a:b] == want[1]
            assert got.tolist() == _want_tokens(tokenizer, gens[i], a, b), (name, i)
            assert np.all(np.diff(got) == 1), (name, i)  # no hole inside a split '²'


def test_finders_are_checked_before_anything_is_generated(tiny_qwen2_dir, tmp_path):
    from actstore.extractors import extract
    from actstore.extractors._genconfig import parse_generate
    from tests.extractors._helpers import mixed_prompt_set

    ps = mixed_prompt_set(3)
    common = {"layers": [0], "device": "cpu", "dtype": "float32", "progress": False}
    # dry runs load no weights: the refusals come before generation
    for finders, text in (
        ({"v": "label:no_such_label"}, "expected a label column 'no_such_label'"),
        ({ps.span_names[0]: "regex:a"}, "other than the prompt set's spans"),
    ):
        with pytest.raises(InvalidArgumentError, match=text):
            extract(
                model=tiny_qwen2_dir,
                prompts=ps,
                out=tmp_path / "c.zarr",
                dry_run=True,
                generate={"max_new_tokens": 2, "find_spans": finders},
                **common,
            )
    with pytest.raises(InvalidArgumentError, match="each span name once, got 'x'"):
        parse_generate({"max_new_tokens": 2, "find_spans": ["x=regex:a", "x=regex:b"]})


def _with_template(tiny_qwen2_dir, tmp_path, template):
    import json

    from transformers import AutoTokenizer

    d = tmp_path / "chat"
    shutil.copytree(tiny_qwen2_dir, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["chat_template"] = template
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return AutoTokenizer.from_pretrained(d)


def test_chat_template_spans_land_in_the_user_turn(tiny_qwen2_dir, tmp_path):
    from actstore.extractors._generate import apply_chat_template
    from actstore.prompts import Prompt, PromptSet

    text = "7 times 8 equals"
    template = (
        "system: answer like this: 7 times 8 equals 56.\n{% for m in messages %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    tokenizer = _with_template(tiny_qwen2_dir, tmp_path, template)
    ps = PromptSet(name="t", prompts=(Prompt(text=text, spans={"x": (0, 1), "y": (8, 9)}),))
    out = apply_chat_template(tokenizer, ps).prompts[0]
    user = out.text.index("user: ") + len("user: ")
    assert out.text[user : user + len(text)] == text
    assert out.spans == {"x": (user, user + 1), "y": (user + 8, user + 9)}


def test_a_chat_template_that_raises_is_one_line(tiny_qwen2_dir, tmp_path):
    from actstore.extractors._generate import apply_chat_template
    from actstore.prompts import Prompt, PromptSet

    tokenizer = _with_template(
        tiny_qwen2_dir, tmp_path, "{{ raise_exception('System role not supported') }}"
    )
    ps = PromptSet(name="t", prompts=(Prompt(text="hello"),))
    with pytest.raises(InvalidArgumentError, match="TemplateError: System role not supported"):
        apply_chat_template(tokenizer, ps)


def test_plain_run_over_a_generated_set_says_so(tiny_qwen2_dir, tmp_path):
    from actstore.extractors import extract
    from tests.extractors._helpers import mixed_prompt_set

    ps = mixed_prompt_set(2)
    out = tmp_path / "c.zarr"
    common = {"layers": [0], "device": "cpu", "dtype": "float32", "progress": False}
    extract(model=tiny_qwen2_dir, prompts=ps, out=out, generate=2, **common)
    with pytest.raises(
        FingerprintMismatchError,
        match=r"generate\.max_new_tokens differs .* expected 2 \(stored: a generated set\), "
        "got no generation",
    ):
        extract(model=tiny_qwen2_dir, prompts=ps, out=out, **common)
