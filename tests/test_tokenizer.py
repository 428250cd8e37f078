"""Tests for tokenizer.py: HF byte-level BPE parity, rustbpe training, save/load, chat template, errors.

Hermetic (no network, everything in tmp_path). Run: .venv/bin/python -m pytest tests/test_tokenizer.py
"""

import json
import os
import random
import sys
import unicodedata

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tokenizer import (DEFAULT_SPECIALS, DIFFUSION_TOKENS, Tokenizer, add_tokens_to_files,  # noqa: E402
                       apply_chat_template, diffucoder_prompt)

# Qwen2's pre-tokenizer regex, written out here so the test also checks tokenizer.py's copy
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
               r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>", "<|dlm_pad|>"]
# Qwen2.5's special tokens, ids 151643..151664 after its 151,643 regular tokens: no diffusion tokens
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
                 "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]

CASES = [
    "def add(a, b):\n    return a + b\n",
    "class Foo(Bar):\n\tdef __init__(self):\n\t\tself.x = [i ** 2 for i in range(10) if i % 2 == 0]\n",
    "    \tx = 1  \n\n\n  y=2   ",
    "trailing spaces   ",
    "   leading spaces",
    "a\r\nb\r\n\r\nc\r",
    "x = 12345678901234567890 + 3.14159e-10 - 0x1F + 1_000_000",
    "I'm sure it's fine; we'll see. They've said you'd KNOW it'S ok, I'D think",
    "# 日本語のコメント\nprint('héllo wörld 🚀🔥')\n",
    "中文代码注释：计算斐波那契数列 fib(n)",
    "emoji 👨‍👩‍👧‍👦 family and flag 🇯🇵 and 😀😀😀",
    "Ünïcödé ÀÉÎÕÜ ß ẞ ñ λx: x ** 2  # Ωμέγα",
    "tabs\t\tand\t spaces \t\n\t",
    "<|im_start|>user\nWrite a function.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|mask|><|mask|><|dlm_pad|>",
    "text<|im_end|>more<|endoftext|> tail",
    "\n\n\n\n",
    "",
    "s = \"\"\"docstring with 'quotes' and \\\\ backslashes\"\"\"\n",
    "if x!=y and not (a<=b>=c):\n        return {'k': [1, 2, (3,)]}",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" * 3,
    "   \n   \n  x  \n",
    "x=1;y=2;z=x+y;print(f'{z:>10}')",
    "\x00\x01\x7f control bytes \u2028 line sep \u00a0nbsp",
]


def corpus(n=400, seed=0):
    """Generated Python-like snippets with some unicode, numbers, comments and Windows line ends."""
    rng = random.Random(seed)
    syl = ["ca", "lu", "tor", "mi", "na", "rex", "pa", "sto", "ver", "qui", "bel", "do", "ño", "zé", "ку", "数"]
    word = lambda: "".join(rng.choices(syl, k=rng.randint(1, 3)))  # noqa: E731
    names = ["_".join(word() for _ in range(rng.randint(1, 2))) for _ in range(300)]
    words = ["compute", "the", "sum", "of", "list", "return", "résumé", "数据", "naïve", "check", "🚀"]
    out = []
    for i in range(n):
        a, b, c = rng.sample(names, 3)
        body = rng.choice([f"{c} = {a} + {b} * {rng.randint(0, 10**rng.randint(1, 8))}",
                           f"for {c} in range(len({a})):\n        {b}.append({a}[{c}] ** 2)",
                           f"if {a} > {b}:\n        return '{' '.join(rng.sample(words, 3))}'",
                           f"{c} = [{a} for {a} in {b} if {a} % {rng.randint(2, 9)} == 0]"])
        nl = "\r\n" if i % 7 == 0 else "\n"
        text = f"def f_{i}({a}, {b}):{nl}    # {' '.join(rng.sample(words, 4))}{nl}    {body}{nl}    return {c}{nl}"
        out.append(text + rng.choice(["", "\n", "  \n", "\t\n"]))
    return out


def hf_tokenizer(vocab_size, specials_first=False, gpt2=False, specials=SPECIALS):
    """An HF byte-level BPE built like Qwen2's: NFC, Split(regex, isolated), ByteLevel(use_regex=False);
    or like GPT-2's (no normalizer, ByteLevel splitting with its own regex)."""
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer(models.BPE())
    if gpt2:
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        hf.normalizer = normalizers.NFC()
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=specials if specials_first else [])
    hf.train_from_iterator(corpus(), trainer)
    if not specials_first:
        hf.add_special_tokens(specials)  # appended after the regular tokens, like Qwen2.5
    return hf


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """The same HF tokenizer as tokenizer.json and as vocab.json + merges.txt; one with specials at ids 0..4;
    a GPT-2-style one."""
    root = tmp_path_factory.mktemp("hf")
    hf = hf_tokenizer(256 + 400)
    (root / "json").mkdir()
    hf.save(str(root / "json" / "tokenizer.json"))
    (root / "txt").mkdir()
    hf.model.save(str(root / "txt"))  # vocab.json + merges.txt
    decoder = {str(hf.token_to_id(s)): {"content": s, "special": True} for s in SPECIALS[:3]}
    (root / "txt" / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}))
    (root / "txt" / "added_tokens.json").write_text(json.dumps({s: hf.token_to_id(s) for s in SPECIALS[2:]}))
    hf_first = hf_tokenizer(256 + 5 + 400, specials_first=True)
    (root / "first").mkdir()
    hf_first.save(str(root / "first" / "tokenizer.json"))
    hf_gpt2 = hf_tokenizer(256 + 400, gpt2=True)
    (root / "gpt2").mkdir()
    hf_gpt2.save(str(root / "gpt2" / "tokenizer.json"))
    return hf, hf_first, hf_gpt2, root


@pytest.mark.parametrize("fmt", ["json", "txt"])
def test_hf_parity(hf_dirs, fmt):
    hf, _, _, root = hf_dirs
    tok = Tokenizer.from_pretrained(root / fmt)
    assert tok._to_id is None  # ids == tiktoken ranks: no remapping
    assert tok.pattern == QWEN2_REGEX and tok.normalize == "NFC"
    assert tok.vocab_size == hf.get_vocab_size() == 256 + 400 + 5
    assert tok.special_tokens == {s: hf.token_to_id(s) for s in SPECIALS}
    assert sum(len(hf.encode(s).ids) for s in CASES) < sum(len(s.encode()) for s in CASES) * 0.85  # merges happen
    for s in CASES:
        assert tok.encode(s) == hf.encode(s).ids, s
        assert tok.decode(tok.encode(s)) == s
    assert tok.encode_batch(CASES) == [hf.encode(s).ids for s in CASES]
    decomposed = "cafe\u0301 = 1"  # NFC-normalised on encode, like Qwen2
    assert tok.encode(decomposed) == hf.encode(decomposed).ids
    assert tok.decode(tok.encode(decomposed)) == unicodedata.normalize("NFC", decomposed)


def test_hf_parity_remapped_ids(hf_dirs):
    _, hf, _, root = hf_dirs
    tok = Tokenizer.from_pretrained(root / "first")
    assert tok._to_id is not None  # specials at 0..4 and base bytes in codepoint order: ids != ranks
    assert [tok.special_tokens[s] for s in SPECIALS] == [0, 1, 2, 3, 4]
    for s in CASES:
        assert tok.encode(s) == hf.encode(s).ids, s
        assert tok.decode(tok.encode(s)) == s
    assert tok.encode_batch(CASES[:5]) == [hf.encode(s).ids for s in CASES[:5]]
    assert tok.token_bytes(tok.mask_token_id) == b"<|mask|>"
    tok.save(root / "first_ours")  # the id map survives our format
    again = Tokenizer.from_pretrained(root / "first_ours")
    assert again.identity == tok.identity and [again.encode(s) for s in CASES] == [tok.encode(s) for s in CASES]


def test_hf_parity_gpt2_style(hf_dirs):
    _, _, hf, root = hf_dirs
    tok = Tokenizer.from_pretrained(root / "gpt2")
    assert tok.normalize is None and tok.pattern != QWEN2_REGEX
    for s in CASES + ["cafe\u0301 = 1"]:
        assert tok.encode(s) == hf.encode(s).ids, s
        assert tok.decode(tok.encode(s)) == s


def test_rustbpe_train_save_load(tmp_path, monkeypatch):
    texts = corpus(600, seed=1)
    tok = Tokenizer.train(iter(texts), 700)
    n_regular = 700 - len(DEFAULT_SPECIALS)
    assert tok.vocab_size == 700 and tok.pattern == QWEN2_REGEX
    assert tok.special_tokens == {s: n_regular + j for j, s in enumerate(DEFAULT_SPECIALS)}
    assert (tok.eos_token_id, tok.pad_token_id, tok.im_start_id, tok.im_end_id, tok.mask_token_id,
            tok.dlm_pad_token_id) == (n_regular, n_regular, n_regular + 1, n_regular + 2, n_regular + 3, n_regular + 4)
    tok.save(tmp_path / "tok")
    assert sorted(os.listdir(tmp_path / "tok")) == ["tokenizer.tiktoken", "tokenizer_meta.json"]
    loaded = Tokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.identity == tok.identity and loaded.identity.startswith("sha256:")
    assert loaded.special_tokens == tok.special_tokens
    for s in CASES:
        assert loaded.encode(s) == tok.encode(s)
        assert loaded.decode(loaded.encode(s)) == s
    ids = loaded.encode("def f():<|mask|>")
    assert ids[-1] == loaded.mask_token_id and len(ids) < len("def f():")
    plain = loaded.encode("<|mask|>", allowed_special=())  # as ordinary text
    assert loaded.mask_token_id not in plain and loaded.decode(plain) == "<|mask|>"
    assert b"".join(loaded.token_bytes(i) for i in ids) == "def f():<|mask|>".encode()
    # the ranks file is tiktoken's own format (cache disabled so nothing is written outside tmp)
    from tiktoken.load import load_tiktoken_bpe
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert load_tiktoken_bpe(str(tmp_path / "tok" / "tokenizer.tiktoken")) == loaded.mergeable_ranks
    # a different vocabulary has a different identity, and re-saving to the same dir is picked up
    other = Tokenizer.train(iter(texts), 600)
    assert other.identity != tok.identity
    other.save(tmp_path / "tok")
    assert Tokenizer.from_pretrained(tmp_path / "tok").identity == other.identity


def test_diffusion_tokens_get_diffucoder_ids_in_qwen_vocab():
    """Qwen2.5's vocabulary (151,643 regular tokens, 22 specials) gets DiffuCoder's ids; DiffuCoder-7B-Base's
    (which has <|mask|>) gets only <|dlm_pad|> 151667; a tokenizer with both is left alone."""
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"t%d" % i: i for i in range(256, 151643)})  # stand-ins for Qwen's merges
    qwen = Tokenizer(ranks, {s: 151643 + j for j, s in enumerate(QWEN_SPECIALS)}, QWEN2_REGEX)
    assert qwen.vocab_size == 151665
    tok, added = qwen.with_diffusion_tokens()
    assert added == {"<|beginoftext|>": 151665, "<|mask|>": 151666, "<|dlm_pad|>": 151667}
    assert (tok.mask_token_id, tok.dlm_pad_token_id, tok.vocab_size) == (151666, 151667, 151668)
    assert {s: tok.special_tokens[s] for s in qwen.special_tokens} == qwen.special_tokens
    assert tok.encode("x<|mask|>") == qwen.encode("x") + [151666]
    base = Tokenizer(ranks, {**qwen.special_tokens, "<|beginoftext|>": 151665, "<|mask|>": 151666}, QWEN2_REGEX)
    tok, added = base.with_diffusion_tokens()
    assert added == {"<|dlm_pad|>": 151667} and tok.mask_token_id == 151666
    assert tok.with_diffusion_tokens() == (tok, {})


@pytest.mark.parametrize("fmt", ["json", "txt", "ours"])
def test_added_tokens_are_written_into_the_files(tmp_path, fmt):
    """A tokenizer lacking the diffusion tokens, as HF tokenizer.json (+ tokenizer_config.json), as vocab.json +
    merges.txt + added_tokens.json, or in our format: the files with the added tokens load to the same tokenizer,
    in transformers too, and every original id is unchanged."""
    from checkpoint import load_tokenizer, read_tokenizer_files, write_tokenizer_files
    hf = hf_tokenizer(256 + 300, specials=SPECIALS[:3])
    src = tmp_path / "src"
    src.mkdir()
    decoder = {str(hf.token_to_id(s)): {"content": s, "special": True} for s in SPECIALS[:3]}
    if fmt == "json":
        hf.save(str(src / "tokenizer.json"))
        config = {"added_tokens_decoder": decoder, "eos_token": SPECIALS[0], "tokenizer_class": "Qwen2Tokenizer"}
        (src / "tokenizer_config.json").write_text(json.dumps(config))
    elif fmt == "txt":
        hf.model.save(str(src))
        (src / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}))
        (src / "added_tokens.json").write_text(json.dumps({s: hf.token_to_id(s) for s in SPECIALS[:3]}))
    else:
        Tokenizer.train(iter(corpus()), 300, special_tokens=SPECIALS[:3]).save(src)
    before = Tokenizer.from_pretrained(src)
    tok, files, added = load_tokenizer(src)
    n = before.vocab_size
    assert added == {s: n + j for j, s in enumerate(DIFFUSION_TOKENS)} and tok.mask_token_id == n + 1
    assert files.keys() == read_tokenizer_files(src).keys()
    (tmp_path / "out").mkdir()
    write_tokenizer_files(files, tmp_path / "out")
    again = Tokenizer.from_pretrained(tmp_path / "out")
    assert again.identity == tok.identity and again.special_tokens == {**before.special_tokens, **added}
    assert all(again.encode(s, allowed_special=set(before.special_tokens)) == before.encode(s) for s in CASES)
    assert again.encode("<|im_start|>x<|mask|><|dlm_pad|>") == before.encode("<|im_start|>x") + [n + 1, n + 2]
    assert load_tokenizer(tmp_path / "out")[2] == {}  # nothing left to add
    if fmt == "json":
        import transformers
        ref = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
        assert ref.convert_tokens_to_ids(list(DIFFUSION_TOKENS)) == [n, n + 1, n + 2] and ref.mask_token == "<|mask|>"
        text = "def f(x):<|mask|><|mask|>\n    return x<|dlm_pad|>"
        assert ref(text)["input_ids"] == again.encode(text)
    assert add_tokens_to_files(files, tok, {}) == files


def test_decode_rejects_unknown_ids(tmp_path):
    tok = Tokenizer.train(iter(corpus(50)), 300)
    assert tok.decode([]) == ""
    for bad in ([tok.vocab_size], [-1], [5, 10**6]):
        with pytest.raises(ValueError, match="not in this tokenizer"):
            tok.decode(bad)
    assert tok.decode([tok.mask_token_id]) == "<|mask|>"  # special ids decode to their text


def test_chat_template():
    q = "Write a function that adds two numbers."
    expected = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
    assert apply_chat_template([{"role": "user", "content": q}]) == expected
    assert Tokenizer.apply_chat_template([{"role": "user", "content": q}]) == expected
    assert diffucoder_prompt(f"  {q}\n\n") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{q}\n<|im_end|>\n<|im_start|>assistant\n")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}]
    assert apply_chat_template(msgs, add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nhello<|im_end|>\n")
    with pytest.raises(ValueError, match="role"):
        apply_chat_template([{"role": "tool", "content": "x"}])


def test_chat_template_encodes_specials(tmp_path):
    tok = Tokenizer.train(iter(corpus(50)), 300)
    ids = tok.encode(diffucoder_prompt("hi"))
    assert ids[0] == tok.im_start_id and ids.count(tok.im_end_id) == 2 and ids.count(tok.im_start_id) == 3


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Tokenizer.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no tokenizer in .*expected tokenizer.json"):
        Tokenizer.from_pretrained(tmp_path / "empty")
    (tmp_path / "wordpiece").mkdir()
    (tmp_path / "wordpiece" / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    with pytest.raises(ValueError, match="only byte-level BPE"):
        Tokenizer.from_pretrained(tmp_path / "wordpiece")
    with pytest.raises(ValueError, match="too small"):
        Tokenizer.train(iter(["x"]), 260)
    tok = Tokenizer.train(iter(corpus(50)), 300, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    tok.save(tmp_path / "nomask")
    tok = Tokenizer.from_pretrained(tmp_path / "nomask")  # a Qwen2.5-Coder-like tokenizer loads fine
    assert tok.eos_token_id == 297
    with pytest.raises(ValueError, match=r"has no <\|mask\|> token"):
        tok.mask_token_id
    meta = json.loads((tmp_path / "nomask" / "tokenizer_meta.json").read_text())
    meta["special_tokens"]["<|mask|>"] = 300  # not what was saved
    (tmp_path / "nomask" / "tokenizer_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="re-save"):
        Tokenizer.from_pretrained(tmp_path / "nomask")
