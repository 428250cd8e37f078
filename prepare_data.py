"""
Data for every stage: corpora -> flat token files for masked-diffusion pre-training, and task
files (jsonl) for SFT, GRPO and evaluation.

    python prepare_data.py                                   # embedded default: the stdlib sources
    python prepare_data.py --kind=tasks                      # the tiny code tasks -> data/tasks/{train,test}.jsonl
    python prepare_data.py --kind=acecode                    # AceCode-87K's GRPO hard split -> data/acecode/train.jsonl
    python prepare_data.py --source=path/to/folder_or.jsonl --out_dir=data/mine
    python prepare_data.py --source=bigcode/the-stack-smol --text_column=content --tokenizer=/path/to/DiffuCoder-7B-Base

Sources: 'stdlib' (the Python standard-library sources of the running interpreter, test folders
excluded, ~12 MB of real code on every machine), a local file / folder / .jsonl, or a Hugging Face
dataset name (streamed through `datasets`). Documents are split into train/val by a hash of their
text, tokenized, joined with <|endoftext|> and written as flat uint16 (uint32 for vocabularies of
65,536 ids or more) files `train.bin` / `val.bin`, with `meta.json` (tokenizer identity, counts).
The tokenizer is trained here with rustbpe (`--tokenizer=train`) or taken from a directory, and a
copy lives in `out_dir/tokenizer/`, which is what the training scripts load. A tokenizer without the
diffusion tokens (Qwen2.5-Coder's) gets DiffuCoder's `<|mask|>` and `<|dlm_pad|>` (and ids) in that copy.

Re-running with the same settings does nothing (idempotent).
"""

import glob
import hashlib
import json
import os
import socket
import sys
import sysconfig
import time

import numpy as np

from configurator import config_keys, configure, load_json, load_jsonl, print_config, run_cli
from tasks import generate_tasks, write_jsonl
from tokenizer import Tokenizer

# -----------------------------------------------------------------------------
# 'corpus' (token files for pre-training), 'tasks' (the tiny code tasks as jsonl) or 'acecode' (GRPO prompts)
kind = "corpus"
# corpus
source = "stdlib"  # 'stdlib', a local file/folder/.jsonl, or a Hugging Face dataset name
text_column = "text"  # the text field of .jsonl records and hub datasets
hf_config = None  # hub dataset config name, if any
hf_split = "train"  # hub dataset split
file_patterns = "*.py,*.txt,*.md,*.jsonl"  # which files of a local folder to read
max_documents = None  # stop after this many documents (None: all)
val_fraction = 0.05  # fraction of documents (by hash) that go to val
out_dir = "data/stdlib"  # where train.bin, val.bin, meta.json and tokenizer/ go
# tokenizer
tokenizer = "train"  # 'train' (a new BPE with rustbpe) or a tokenizer/model directory
vocab_size = 4096  # for tokenizer='train': regular tokens + special tokens
# tiny tasks (kind='tasks'; out_dir defaults to data/tasks)
tasks_train = 20000  # train split: SFT answers and GRPO prompts
tasks_test = 500  # held-out split: evaluation
tasks_seed = 0
# AceCode (kind='acecode')
acecode_source = "TIGER-Lab/AceCode-87K"  # hub name, or a local .parquet / .jsonl file or a folder of them
acecode_out = "data/acecode"  # train.jsonl goes here
acecode_bottom = 0.2  # keep questions whose mean pass rate <= this quantile of all questions' means
acecode_std_quantile = 0.4  # ... and whose pass-rate std >= this quantile of all questions' stds (official recipe)
acecode_variants = True  # also add the official recipe's "complete this signature" variant of each kept question
CONFIG_KEYS = config_keys(globals())
# -----------------------------------------------------------------------------

_TEST_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}


def stdlib_documents():
    """(name, text) for every .py file of the running interpreter's standard library, tests excluded."""
    root = sysconfig.get_paths()["stdlib"]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _TEST_DIRS and not d.startswith("test_"))
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test_"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    yield os.path.relpath(path, root), f.read()


def local_documents(path, column, patterns):
    """(name, text) from a file, a .jsonl (one document per record) or a folder of files."""
    if os.path.isdir(path):
        files = sorted({f for p in patterns.split(",")
                        for f in glob.glob(os.path.join(path, "**", p.strip()), recursive=True)})
        if not files:
            raise FileNotFoundError(f"no files matching {patterns} under '{path}'; set --file_patterns.")
    else:
        files = [path]
    for file in files:
        if file.endswith(".jsonl"):
            for i, record in load_jsonl(file):
                if column not in record:
                    raise ValueError(f"{file} line {i} has no field '{column}'; set --text_column to one of "
                                     f"{sorted(record)}.")
                yield f"{file}:{i - 1}", record[column]
        else:
            with open(file, encoding="utf-8", errors="replace") as f:
                yield file, f.read()


def hub_reachable(host="huggingface.co", port=443, timeout=3.0):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_documents(name, column, config_name, split):
    """(name, text) streamed from a Hugging Face dataset. Offline, only a locally cached copy works."""
    if not hub_reachable():
        os.environ["HF_DATASETS_OFFLINE"] = "1"  # fail fast instead of retrying for ~20 s
    import datasets  # optional at run time (local files need no hub), and slow to import
    try:
        ds = datasets.load_dataset(name, config_name, split=split, streaming=True)
        for i, record in enumerate(ds):
            if column not in record:
                raise ValueError(f"dataset '{name}' has no column '{column}'; "
                                 f"set --text_column to one of {sorted(record)}.")
            yield f"{name}:{i}", record[column]
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as e:
        raise FileNotFoundError(f"cannot reach dataset '{name}' ({type(e).__name__}); offline, download it elsewhere "
                                f"and pass local files instead: --source=path/to/folder_or_file.jsonl "
                                f"--text_column={column}") from None


def documents(cfg):
    if cfg.source == "stdlib":
        docs = stdlib_documents()
    elif os.path.exists(cfg.source):
        docs = local_documents(cfg.source, cfg.text_column, cfg.file_patterns)
    elif cfg.source.startswith((".", "/", "~")) or cfg.source.count("/") > 1:
        raise FileNotFoundError(f"source '{cfg.source}' does not exist; pass an existing file or folder, 'stdlib', "
                                f"or a hub dataset name.")
    else:
        docs = hub_documents(cfg.source, cfg.text_column, cfg.hf_config, cfg.hf_split)
    for i, (name, text) in enumerate(docs):
        if cfg.max_documents is not None and i >= cfg.max_documents:
            break
        if text.strip():
            yield name, text


def is_val(text, val_fraction):
    """Deterministic train/val split by a hash of the document's text."""
    h = int.from_bytes(hashlib.sha1(text.encode("utf-8", errors="replace")).digest()[:8], "big")
    return h / 2**64 < val_fraction


def token_dtype(vocab_size):
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def write_tokens(path, docs, tok, dtype, batch=256):
    """Tokenize docs in batches (tiktoken uses threads), each followed by EOS, into a flat file."""
    n_tokens = 0
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for i in range(0, len(docs), batch):
            for ids in tok.encode_batch(docs[i:i + batch]):
                arr = np.array(ids + [tok.eos_token_id], dtype=dtype)
                f.write(arr.tobytes())
                n_tokens += len(arr)
    os.replace(tmp, path)
    return n_tokens


def load_data_meta(data_dir):
    """meta.json of a prepared data directory, with a clear error if it was never prepared."""
    return load_json(os.path.join(data_dir, "meta.json"),
                     missing=f"no prepared data in '{data_dir}' (missing meta.json); "
                             f"run `python prepare_data.py --out_dir={data_dir}` first.")


def prepare_tasks(cfg):
    """The tiny code tasks (tasks.py) as train.jsonl / test.jsonl: each record has the question, the
    reference answer (for SFT) and the hidden tests (for GRPO rewards and evaluation)."""
    out_dir = "data/tasks" if cfg.out_dir == "data/stdlib" else cfg.out_dir
    for split, n in (("train", cfg.tasks_train), ("test", cfg.tasks_test)):
        path = os.path.join(out_dir, f"{split}.jsonl")
        tasks_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks.py")
        generator = hashlib.sha1(open(tasks_py, "rb").read()).hexdigest()
        # a changed tasks.py regenerates
        stamp = json.dumps(dict(split=split, n=n, seed=cfg.tasks_seed, generator=generator[:16]))
        if os.path.isfile(path) and os.path.isfile(path + ".settings") and open(path + ".settings").read() == stamp:
            print(f"{path} is already prepared with these settings; nothing to do.")
            continue
        tasks = generate_tasks(split, n, cfg.tasks_seed)
        os.makedirs(out_dir, exist_ok=True)
        write_jsonl(tasks, path)
        with open(path + ".settings", "w") as f:
            f.write(stamp)
        families = {}
        for t in tasks:
            families[t.family] = families.get(t.family, 0) + 1
        print(f"wrote {len(tasks):,} {split} tasks to {path}: " + ", ".join(f"{k} {v}" for k, v in families.items()))


def prepare_acecode(cfg):
    """The GRPO hard split of AceCode-87K, as DiffuCoder's recipes/process_data.py and
    src/open_r1/grpo.py build it:
    1. per question, the pass rates of its qwen_coder_2.5 and llama3_instruct inferences: their mean and std;
    2. keep mean <= the acecode_bottom quantile and std >= the acecode_std_quantile quantile, both quantiles taken
       over all questions (the official code; the paper words it "bottom 20%, then std in the top 40%");
    3. acecode_variants: for each kept question without "you", also the official variant that asks to complete
       the signature of its best inference (over all models), with the question as docstring;
    4. prompt = question + "\nTest cases: " + its first test, unless it holds a fenced block ("\n```\n").
    Tests stay assert strings. Questions without those inferences or without tests are skipped (the official
    code would turn the whole filter into NaN). Writes acecode_out/train.jsonl: {task_id, question, tests,
    source, mean_pass_rate, std_pass_rate}."""
    src, models = cfg.acecode_source, ("qwen_coder_2.5", "llama3_instruct")
    path = os.path.join(cfg.acecode_out, "train.jsonl")
    stamp = json.dumps(dict(source=src, bottom=cfg.acecode_bottom, std_quantile=cfg.acecode_std_quantile,
                            variants=cfg.acecode_variants))
    if os.path.isfile(path) and os.path.isfile(path + ".settings") and open(path + ".settings").read() == stamp:
        print(f"{path} is already prepared with these settings; nothing to do.")
        return

    def read_rows():
        if os.path.exists(src):
            files = [src]
            if os.path.isdir(src):
                files = sorted(glob.glob(os.path.join(src, "**", "*.parquet"), recursive=True) +
                               glob.glob(os.path.join(src, "**", "*.jsonl"), recursive=True))
            if not files:
                raise FileNotFoundError(f"no .parquet or .jsonl files under '{src}'; pass AceCode-87K's data files.")
            for file in files:
                if file.endswith(".parquet"):
                    import pyarrow.parquet as pq  # comes with datasets: optional, like it
                    pf = pq.ParquetFile(file)
                    cols = [c for c in pf.schema_arrow.names if c != "context_messages"]
                    for batch in pf.iter_batches(batch_size=256, columns=cols):
                        yield from batch.to_pylist()
                else:
                    yield from (r for _, r in load_jsonl(file))
            return
        if src.startswith((".", "/", "~")) or src.count("/") != 1:
            raise FileNotFoundError(f"acecode_source '{src}' does not exist; pass an existing file or folder, "
                                    f"or a hub dataset name.")
        if not hub_reachable():
            os.environ["HF_DATASETS_OFFLINE"] = "1"  # fail fast instead of retrying for ~20 s
        import datasets  # optional, see hub_documents
        try:
            ds = datasets.load_dataset(src, split="train", streaming=True)
        except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as e:
            raise FileNotFoundError(f"cannot reach dataset '{src}' ({type(e).__name__}); offline, download its "
                                    "parquet files elsewhere and pass --acecode_source=path/to/folder_or_file.parquet"
                                    ) from None
        yield from ds

    rows, skipped = [], 0
    for r in read_rows():
        accs = [inf["pass_rate"] for inf in r["inferences"] or [] if inf["model_name"] in models]
        if not accs or not r["test_cases"]:
            skipped += 1
            continue
        variant = None
        if cfg.acecode_variants and "you" not in r["question"].lower():
            head = max(r["inferences"], key=lambda inf: inf["pass_rate"])["completion"].split(":\n")[0].strip()
            if head.startswith("def "):
                variant = (f'Please complete the following problem:\n```\ndef {head[4:]}:\n'
                           f'    """\n    {r["question"]}\n    """\n```\n')
        rows.append((str(r["id"]), r.get("source"), r["question"], list(r["test_cases"]), float(np.mean(accs)),
                     float(np.std(accs)), variant))
    if not rows:
        raise ValueError(f"'{src}' has no question with {' or '.join(models)} inferences and tests; is it AceCode-87K?")
    mean_cut = np.quantile([r[4] for r in rows], cfg.acecode_bottom)
    std_cut = np.quantile([r[5] for r in rows], cfg.acecode_std_quantile)
    records, n_low, n_hard = [], 0, 0
    for task_id, source, question, tests, mean, std, variant in rows:
        n_low += mean <= mean_cut
        if mean <= mean_cut and std >= std_cut:
            n_hard += 1
            for tid, q in ((task_id, question), (task_id + "/variant", variant)):
                if q is not None:
                    prompt = q if "\n```\n" in q else q + "\nTest cases: " + tests[0]
                    records.append(dict(task_id=tid, question=prompt, tests=tests, source=source,
                                        mean_pass_rate=mean, std_pass_rate=std))
    os.makedirs(cfg.acecode_out, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(path + ".tmp", path)
    with open(path + ".settings", "w") as f:
        f.write(stamp)
    print(f"read {len(rows) + skipped:,} questions ({skipped:,} skipped: no {'/'.join(models)} inference or no tests); "
          f"mean pass rate <= {mean_cut:.3f} (quantile {cfg.acecode_bottom}): {n_low:,}; and std >= {std_cut:.3f} "
          f"(quantile {cfg.acecode_std_quantile}): {n_hard:,} hard questions + {len(records) - n_hard:,} variants "
          f"= {len(records):,} prompts -> {path}")


def main(argv=None):
    cfg = configure(globals(), CONFIG_KEYS, sys.argv[1:] if argv is None else argv)
    print("prepare_data.py config:")
    print_config(cfg)
    if cfg.kind == "tasks":
        return prepare_tasks(cfg)
    if cfg.kind == "acecode":
        return prepare_acecode(cfg)
    if cfg.kind != "corpus":
        raise ValueError(f"kind must be 'corpus', 'tasks' or 'acecode', got '{cfg.kind}'.")
    settings = {k: getattr(cfg, k) for k in ("source", "text_column", "hf_config", "hf_split", "file_patterns",
                                               "max_documents", "val_fraction", "tokenizer", "vocab_size")}
    meta_path = os.path.join(cfg.out_dir, "meta.json")
    if os.path.isfile(meta_path) and load_json(meta_path).get("settings") == settings:
        print(f"{cfg.out_dir} is already prepared with these settings; nothing to do.")
        return
    t0 = time.time()
    train_docs, val_docs = [], []
    for name, text in documents(cfg):
        (val_docs if is_val(text, cfg.val_fraction) else train_docs).append(text)
        if (len(train_docs) + len(val_docs)) % 1000 == 0:
            print(f"  read {len(train_docs) + len(val_docs):,} documents", flush=True)
    if not train_docs or not val_docs:
        raise ValueError(f"the corpus gave {len(train_docs)} train and {len(val_docs)} val documents; "
                         f"add documents or change --val_fraction.")
    n_chars = sum(map(len, train_docs)) + sum(map(len, val_docs))
    print(f"read {len(train_docs):,} train + {len(val_docs):,} val documents ({n_chars / 1e6:.1f}M characters) "
          f"in {time.time() - t0:.1f}s")

    tok_dir = os.path.join(cfg.out_dir, "tokenizer")
    os.makedirs(cfg.out_dir, exist_ok=True)
    if cfg.tokenizer == "train":
        t1 = time.time()
        tok = Tokenizer.train(iter(train_docs), cfg.vocab_size)
        tok.save(tok_dir)
        print(f"trained a {tok.vocab_size:,}-token BPE with rustbpe in {time.time() - t1:.1f}s")
    else:
        from checkpoint import load_tokenizer, write_tokenizer_files  # imports torch: only --tokenizer needs it
        tok, files, added = load_tokenizer(cfg.tokenizer)
        os.makedirs(tok_dir, exist_ok=True)
        write_tokenizer_files(files, tok_dir)
        if added:
            print(f"added DiffuCoder's diffusion tokens the tokenizer lacked: {added}")
    dtype = token_dtype(tok.vocab_size)
    t2 = time.time()
    n_train = write_tokens(os.path.join(cfg.out_dir, "train.bin"), train_docs, tok, dtype)
    n_val = write_tokens(os.path.join(cfg.out_dir, "val.bin"), val_docs, tok, dtype)
    dt = time.time() - t2
    print(f"tokenized {n_train:,} train + {n_val:,} val tokens in {dt:.1f}s "
          f"({(n_train + n_val) / dt:,.0f} tok/s, {n_chars / (n_train + n_val):.2f} chars/token)")
    meta = dict(settings=settings, tokenizer_identity=tok.identity, vocab_size=tok.vocab_size,
                dtype=np.dtype(dtype).name, train_tokens=n_train, val_tokens=n_val,
                train_documents=len(train_docs), val_documents=len(val_docs))
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + ".tmp", meta_path)
    print(f"wrote {cfg.out_dir}/{{train.bin,val.bin,meta.json,tokenizer/}} in {time.time() - t0:.1f}s total")


if __name__ == "__main__":
    run_cli(main)
