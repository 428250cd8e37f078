"""Byte-level BPE tokenizer with tiktoken underneath, plus the Qwen2.5 / DiffuCoder chat template.

`Tokenizer.from_pretrained(dir)` reads either
  - an HF byte-level BPE (Qwen2.5, DiffuCoder): `tokenizer.json`, or `vocab.json` + `merges.txt` with the
    added tokens of `tokenizer_config.json` (`added_tokens_decoder`) and `added_tokens.json`; or
  - our own format, written by `save`: `tokenizer.tiktoken` (tiktoken's ranks file, `base64(bytes) rank`
    per line) + `tokenizer_meta.json` (pattern, special tokens, normalization, rank->id map, identity).
`Tokenizer.train(texts, vocab_size)` trains a small BPE with rustbpe, using Qwen2's split regex, and
appends the special tokens (DEFAULT_SPECIALS) after the regular tokens.

Notes and limitations:
1. tiktoken merges the adjacent pair whose *concatenated bytes* rank lowest; HF merges the pair whose *merge*
   ranks lowest. Ranking tokens by merge order (the 256 bytes first) makes them agree on BPE-trained
   vocabularies in practice (tested against HF `tokenizers`; checked once with a 60k vocab on the whole
   stdlib), and Qwen's vocabulary comes from a tiktoken file; a hand-edited vocabulary might not agree.
2. When HF ids are not in rank order (e.g. specials at ids 0..4) ids are remapped through two arrays;
   Qwen2.5 and our trained tokenizers take the no-remap path.
3. Only byte-level BPE, with no normalizer or NFC (Qwen2's). The split regex is tokenizer.json's Split
   pre-tokenizer (GPT-2's when ByteLevel splits); vocab.json + merges.txt are read as Qwen2Tokenizer reads
   them (Qwen2's regex, NFC). All added tokens become tiktoken special tokens, matched in text as HF
   matches them (their lstrip/rstrip/normalized flags are ignored).
4. `encode` turns special-token strings in text into special ids by default (the chat template needs
   it); pass `allowed_special=()` to encode untrusted text as plain text.
5. Qwen2.5's tokenizer has no diffusion tokens. `with_diffusion_tokens` appends the ones DiffuCoder appended to
   it, with DiffuCoder's names and in its order (DIFFUSION_TOKENS: `<|beginoftext|>` 151665, `<|mask|>` 151666,
   `<|dlm_pad|>` 151667 in Qwen2.5's vocabulary), after the highest id, so no existing id changes;
   `add_tokens_to_files` writes them into the tokenizer's files (HF's or ours), so transformers sees them too.
6. `tokenizer.tiktoken` is parsed here, not by `tiktoken.load.load_tiktoken_bpe`, which caches local files
   by path in /tmp/data-gym-cache and returns a stale copy after a re-save to the same path.
"""

import base64
import functools
import hashlib
import json
import os
import unicodedata

import numpy as np
import rustbpe
import tiktoken

from configurator import load_json

QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                 r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
DEFAULT_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>", "<|dlm_pad|>")
# the tokens DiffuCoder appended to Qwen2.5's 151,665 ids, in this order (Dream's <|beginoftext|> is never used)
DIFFUSION_TOKENS = ("<|beginoftext|>", "<|mask|>", "<|dlm_pad|>")
DEFAULT_SYSTEM = "You are a helpful assistant."
ROLES = ("system", "user", "assistant")


def apply_chat_template(messages, add_generation_prompt=True):
    """Qwen2.5's chat template: each message is `<|im_start|>{role}\\n{content}<|im_end|>\\n`, a default
    system message is inserted when the first message is not one, and `<|im_start|>assistant\\n` is
    appended when add_generation_prompt. Content goes in verbatim; note that DiffuCoder's own scripts pass
    the user query as `query.strip() + "\\n"` (see diffucoder_prompt)."""
    for m in messages:
        if m.get("role") not in ROLES:
            raise ValueError(f"chat message role must be one of {ROLES}, got {m.get('role')!r}")
    if not messages or messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + list(messages)
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def diffucoder_prompt(query):
    """The prompt exactly as DiffuCoder's README builds it (query stripped, then a newline before <|im_end|>)."""
    return apply_chat_template([{"role": "user", "content": query.strip() + "\n"}])


@functools.lru_cache(maxsize=1)
def _unicode_to_byte():
    """Inverse of GPT-2's bytes_to_unicode: the printable byte-level character -> the byte it stands for."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]  # these map to chr(256), chr(257), ...
    return {**{chr(b): b for b in printable}, **{chr(256 + n): b for n, b in enumerate(others)}}


def _hf_pattern(pre, where):
    """The split regex of an HF pre_tokenizer: Qwen2-style Split(regex) + ByteLevel, or GPT-2's ByteLevel."""
    for p in (pre or {}).get("pretokenizers", [pre] if pre else []):
        if p["type"] == "Split" and "Regex" in p["pattern"] and p.get("behavior") == "Isolated" and not p.get("invert"):
            return p["pattern"]["Regex"]
        if p["type"] == "ByteLevel" and p.get("use_regex", True) and not p.get("add_prefix_space"):
            return GPT2_PATTERN
    raise ValueError(f"{where}: unsupported pre_tokenizer; expected Split(regex, Isolated) + ByteLevel like Qwen2's")


class Tokenizer:
    apply_chat_template = staticmethod(apply_chat_template)
    diffucoder_prompt = staticmethod(diffucoder_prompt)

    def __init__(self, mergeable_ranks, special_tokens, pattern, rank_to_id=None, normalize=None):
        """mergeable_ranks: token bytes -> rank 0..n-1 in merge order; special_tokens: name -> id;
        rank_to_id: the id of each rank when ids are not ranks (None: id == rank); normalize: None or "NFC"."""
        n = len(mergeable_ranks)
        if set(mergeable_ranks.values()) != set(range(n)):
            raise ValueError("mergeable ranks must be exactly 0..n-1")
        if rank_to_id is not None and list(rank_to_id) == list(range(n)):
            rank_to_id = None  # ids are ranks: the fast path, no remapping
        remap = rank_to_id is not None
        self.special_tokens = dict(sorted(special_tokens.items(), key=lambda kv: kv[1]))
        inner_specials = {s: n + j if remap else i for j, (s, i) in enumerate(self.special_tokens.items())}
        ids = np.array([*(rank_to_id if remap else range(n)), *self.special_tokens.values()], np.int64)
        if ids.min() < 0 or len(np.unique(ids)) != len(ids):
            raise ValueError("token ids must be non-negative and distinct (a special token reuses a regular id)")
        self.vocab_size = int(ids.max()) + 1
        self._to_rank = np.full(self.vocab_size, -1, np.int64)  # id -> tiktoken rank, -1 for unused ids
        self._to_rank[ids] = [*range(n), *inner_specials.values()]
        self._to_id = ids if remap else None  # tiktoken rank -> id, only when remapped
        rank_to_id = [int(i) for i in rank_to_id] if remap else None
        self.mergeable_ranks, self.pattern, self.normalize = mergeable_ranks, pattern, normalize
        self._rank_to_id = rank_to_id
        self.enc = tiktoken.Encoding("tokenizer", pat_str=pattern, mergeable_ranks=mergeable_ranks,
                                     special_tokens=inner_specials)

    # ---- loading, training, saving ----
    @classmethod
    def from_pretrained(cls, path):
        path = os.fspath(path)
        expected = "tokenizer.json, vocab.json + merges.txt, or tokenizer.tiktoken + tokenizer_meta.json"
        if not os.path.isdir(path):
            raise FileNotFoundError(f"tokenizer directory {path!r} does not exist (expected one with {expected})")

        def has(name):
            return os.path.isfile(os.path.join(path, name))

        if has("tokenizer.tiktoken") and has("tokenizer_meta.json"):
            return cls._load_ours(path)
        if has("tokenizer.json") or (has("vocab.json") and has("merges.txt")):
            return cls._load_hf(path, has)
        raise FileNotFoundError(f"no tokenizer in {path!r}: expected {expected}")

    @classmethod
    def _load_ours(cls, path):
        meta = load_json(os.path.join(path, "tokenizer_meta.json"))
        ranks = {}
        with open(os.path.join(path, "tokenizer.tiktoken"), "rb") as f:
            for line in f.read().splitlines():
                if line:
                    token, rank = line.split()
                    ranks[base64.b64decode(token)] = int(rank)
        tok = cls(ranks, meta["special_tokens"], meta["pattern"], meta["rank_to_id"], meta["normalize"])
        if tok.identity != meta["identity"]:
            raise ValueError(f"tokenizer files in {path!r} disagree with their recorded identity; re-save them")
        return tok

    @classmethod
    def _load_hf(cls, path, has):
        if has("tokenizer.json"):
            cfg = load_json(os.path.join(path, "tokenizer.json"))
            model, where = cfg["model"], os.path.join(path, "tokenizer.json")
            if model.get("type") != "BPE" or (cfg.get("normalizer") or {"type": "NFC"})["type"] != "NFC":
                raise ValueError(f"{where}: only byte-level BPE with no or NFC normalizer is supported")
            vocab, merges = model["vocab"], [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
            added = {t["content"]: t["id"] for t in cfg.get("added_tokens", [])}
            pattern, normalize = _hf_pattern(cfg.get("pre_tokenizer"), where), "NFC" if cfg.get("normalizer") else None
        else:
            where = os.path.join(path, "vocab.json")
            vocab = load_json(where)
            with open(os.path.join(path, "merges.txt"), encoding="utf-8") as f:
                merges = [m.split(" ") for m in f.read().split("\n") if m and not m.startswith("#version")]
            tc = load_json(os.path.join(path, "tokenizer_config.json")) if has("tokenizer_config.json") else {}
            added = {t["content"]: int(i) for i, t in tc.get("added_tokens_decoder", {}).items()}
            added.update(load_json(os.path.join(path, "added_tokens.json")) if has("added_tokens.json") else {})
            pattern, normalize = QWEN2_PATTERN, "NFC"  # as Qwen2Tokenizer (and Dream's copy of it) does
        u2b = _unicode_to_byte()
        try:
            regular = {bytes(u2b[c] for c in s): i for s, i in vocab.items() if added.get(s) != i}
            base = sorted((i, b) for b, i in regular.items() if len(b) == 1)
            ranks = {b: r for r, (_, b) in enumerate(base)}  # the 256 bytes first, in id order
            for a, b in merges:
                ranks.setdefault(bytes(u2b[c] for c in a) + bytes(u2b[c] for c in b), len(ranks))
        except KeyError as e:
            raise ValueError(f"{where}: token character {e} is not in GPT-2's byte-level alphabet; "
                             "only byte-level BPE is supported") from None
        if len(base) != 256 or ranks.keys() != regular.keys():
            raise ValueError(f"{where}: vocab and merges disagree (expected the 256 bytes plus one token per merge)")
        rank_to_id = [regular[b] for b in sorted(ranks, key=ranks.get)]
        return cls(ranks, added, pattern, rank_to_id, normalize)

    @classmethod
    def train(cls, text_iterator, vocab_size, special_tokens=DEFAULT_SPECIALS):
        """Train a byte-level BPE with rustbpe: vocab_size ids in all, special tokens after the regular ones."""
        if vocab_size - len(special_tokens) < 256:
            raise ValueError(f"vocab_size {vocab_size} is too small for 256 bytes + {len(special_tokens)} specials")
        bpe = rustbpe.Tokenizer()
        bpe.train_from_iterator(text_iterator, vocab_size - len(special_tokens), pattern=QWEN2_PATTERN)
        ranks = {bytes(b): r for b, r in bpe.get_mergeable_ranks()}
        return cls(ranks, {s: len(ranks) + j for j, s in enumerate(special_tokens)}, bpe.get_pattern())

    def _ranks_file(self):
        ranks = sorted(self.mergeable_ranks.items(), key=lambda kv: kv[1])
        return b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks)

    def _meta(self):
        return {"pattern": self.pattern, "special_tokens": self.special_tokens, "normalize": self.normalize,
                "rank_to_id": self._rank_to_id}

    @functools.cached_property
    def identity(self):
        """A short stable hash of ranks, ids, pattern, normalization and specials (checks data/checkpoint match)."""
        h = hashlib.sha256(self._ranks_file() + json.dumps(self._meta(), sort_keys=True).encode())
        return "sha256:" + h.hexdigest()[:16]

    def files(self):
        """Our format as {file name: bytes}: tokenizer.tiktoken and tokenizer_meta.json."""
        meta = json.dumps({**self._meta(), "identity": self.identity}, indent=1, ensure_ascii=False).encode()
        return {"tokenizer.tiktoken": self._ranks_file(), "tokenizer_meta.json": meta}

    def save(self, path):
        os.makedirs(path, exist_ok=True)
        for name, data in self.files().items():
            tmp = os.path.join(path, name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(path, name))

    def with_diffusion_tokens(self):
        """(tokenizer, added): when this tokenizer lacks <|mask|> or <|dlm_pad|> (Qwen2.5, DiffuCoder-7B-Base),
        a copy with every DIFFUSION_TOKENS entry it lacks appended after its highest id, in that order, so
        Qwen2.5's vocabulary gets DiffuCoder's ids; added = {name: id} of the new tokens ({} and self otherwise)."""
        if "<|mask|>" in self.special_tokens and "<|dlm_pad|>" in self.special_tokens:
            return self, {}
        missing = [s for s in DIFFUSION_TOKENS if s not in self.special_tokens]
        added = {s: self.vocab_size + j for j, s in enumerate(missing)}
        tok = Tokenizer(self.mergeable_ranks, {**self.special_tokens, **added}, self.pattern, self._rank_to_id,
                        self.normalize)
        return tok, added

    # ---- encoding and decoding ----
    def _prep(self, text):
        return unicodedata.normalize("NFC", text) if self.normalize == "NFC" else text

    def _ids(self, ranks):
        return ranks if self._to_id is None else self._to_id[ranks].tolist()

    @staticmethod
    def _specials_kw(allowed_special):  # special tokens not allowed are encoded as plain text, never an error
        return {"allowed_special": "all"} if allowed_special == "all" else \
            {"allowed_special": set(allowed_special), "disallowed_special": ()}

    def encode(self, text, allowed_special="all"):
        """text -> list of ids; special-token strings in text become special ids if in allowed_special."""
        return self._ids(self.enc.encode(self._prep(text), **self._specials_kw(allowed_special)))

    def encode_batch(self, texts, allowed_special="all", num_threads=8):
        """encode() over a list of texts, in parallel threads (for data preparation)."""
        texts = [self._prep(t) for t in texts]
        out = self.enc.encode_batch(texts, num_threads=num_threads, **self._specials_kw(allowed_special))
        return [self._ids(ids) for ids in out]

    def _to_ranks(self, ids):
        ids = np.asarray(ids.tolist() if hasattr(ids, "tolist") else list(ids), dtype=np.int64).reshape(-1)
        ranks = self._to_rank[np.clip(ids, 0, self.vocab_size - 1)]
        bad = (ids < 0) | (ids >= self.vocab_size) | (ranks < 0)
        if bad.any():
            raise ValueError(f"token id {int(ids[bad][0])} is not in this tokenizer (vocab_size {self.vocab_size}); "
                             "ids of padded embedding rows past the vocabulary cannot be decoded")
        return ranks.tolist()

    def decode(self, ids):
        """ids (list, array or 1-D tensor) -> str; invalid UTF-8 becomes U+FFFD, unknown ids raise ValueError."""
        return self.enc.decode(self._to_ranks(ids))

    def token_bytes(self, token_id):
        """The raw bytes of one token (special tokens: their text), e.g. to colour tokens in a terminal."""
        return self.enc.decode_single_token_bytes(self._to_ranks([token_id])[0])

    def _special(self, name):
        if name not in self.special_tokens:
            raise ValueError(f"this tokenizer has no {name} token; use DiffuCoder's, one from Tokenizer.train, or "
                             "add DiffuCoder's diffusion tokens with Tokenizer.with_diffusion_tokens")
        return self.special_tokens[name]

    eos_token_id = property(lambda self: self._special("<|endoftext|>"))
    pad_token_id = property(lambda self: self._special("<|endoftext|>"))  # left-padding of prompts
    mask_token_id = property(lambda self: self._special("<|mask|>"))
    dlm_pad_token_id = property(lambda self: self._special("<|dlm_pad|>"))
    im_start_id = property(lambda self: self._special("<|im_start|>"))
    im_end_id = property(lambda self: self._special("<|im_end|>"))


def add_tokens_to_files(files, tok, added):
    """The tokenizer files {name: bytes} of a directory with the special tokens `added` ({name: id}, from
    `Tokenizer.with_diffusion_tokens`, which returned `tok`) written in: HF's tokenizer.json (added_tokens),
    tokenizer_config.json (added_tokens_decoder if it has one; mask_token as Dream sets it) and added_tokens.json,
    or our tokenizer.tiktoken + tokenizer_meta.json, rewritten from `tok`."""
    files = dict(files)
    if "tokenizer_meta.json" in files:
        files.update(tok.files())
        return files
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    if "tokenizer.json" in files:
        cfg = json.loads(files["tokenizer.json"])
        cfg["added_tokens"] = cfg.get("added_tokens", []) + [{"id": i, "content": s, **flags} for s, i in added.items()]
        files["tokenizer.json"] = json.dumps(cfg, indent=2, ensure_ascii=False).encode()
    if "tokenizer_config.json" in files:
        cfg = json.loads(files["tokenizer_config.json"])
        if "added_tokens_decoder" in cfg:  # Qwen2.5's lists every added token; transformers trusts it if present
            cfg["added_tokens_decoder"].update({str(i): {"content": s, **flags} for s, i in added.items()})
        if "<|mask|>" in added:
            cfg["mask_token"] = "<|mask|>"
        files["tokenizer_config.json"] = json.dumps(cfg, indent=2, ensure_ascii=False).encode()
    if "added_tokens.json" in files:
        files["added_tokens.json"] = json.dumps({**json.loads(files["added_tokens.json"]), **added}, indent=2).encode()
    return files
