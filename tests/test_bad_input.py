"""The bad-input corpus (issue 20): malformed files, columns, labels, encodings, flags, paths, model folders and
stores, across train, predict, study, report, export and audit.

Every case must end with exit code 2 (3: the environment failed), exactly one line on stderr that names the
problem, no traceback, nothing on stdout, and nothing written: the folder the case runs in is byte-identical before
and after. Then the boundary's own behaviour (--debug, a bug keeps its traceback, the exit codes in --help), the
output-folder rules, one writer per study folder (two processes), and a study on a disk that fills up.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import hears_ctrl_c, sentiment_rows, write_rows

from steadytune.cli import main

# --------------------------------------------------------------------------------------------------------------
# Running a case


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under `root`: its kind and (for files) a hash of its bytes."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", "")
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert len(lines[0]) < 1000, lines[0][:1000]  # one line a person reads (a 10 MB header is no column name)
    return lines[0]


# --------------------------------------------------------------------------------------------------------------
# What cases are made of


@dataclass
class Ctx:
    """What a case's set-up and arguments can use: its folder, the tiny model, a saved model, a finished store."""

    tmp: Path
    model: Path
    saved: Path
    store: bytes
    fit: Path
    """A finished fit folder (its verdict no: a tiny random encoder learns nothing) and the rows100.csv beside it."""
    checkpoint: Path
    """A folder holding train.csv and run.checkpoint.pt, a run's checkpoint after its first step (--lr 1e-4)."""

    @property
    def train(self) -> Path:
        return self.tmp / "train.csv"

    def read_only(self, fill: Callable[[Path], None]) -> Path:
        """A read-only filesystem at tmp/ro holding what `fill` puts there (a tmpfs; skips where mounting fails)."""
        ro = self.tmp / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(ro)], capture_output=True).returncode:
            pytest.skip("mounting a tmpfs is not permitted here")
        _MOUNTS.append(ro)
        fill(ro)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True, capture_output=True)
        return ro


_MOUNTS: list[Path] = []


@pytest.fixture(autouse=True)
def _unmount():
    yield
    while _MOUNTS:
        subprocess.run(["umount", "-l", str(_MOUNTS.pop())], capture_output=True)


def text_rows(n: int = 20) -> list[dict]:
    return sentiment_rows(n, seed=5)


def csv_text(rows: list[dict], sep: str = ",") -> str:
    cols = list(rows[0])
    return sep.join(cols) + "\n" + "".join(sep.join(str(r[c]) for c in cols) + "\n" for r in rows)


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def latin1(path_name: str, fmt: str = "csv") -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        rows = text_rows()
        rows[3]["text"] = "un film très réussi"
        text = jsonl_text(rows) if fmt == "jsonl" else csv_text(rows, "\t" if fmt == "tsv" else ",")
        (c.tmp / path_name).write_bytes(text.encode("latin-1"))

    return setup


def write(path_name: str, content: str | bytes) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        p = c.tmp / path_name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def jsonl_labels(*labels: Any) -> Callable[[Ctx], None]:
    """A JSONL train file whose labels cycle through `labels` (written raw, so NaN and Infinity stay)."""

    def setup(c: Ctx) -> None:
        rows = text_rows(24)
        label = [labels[i % len(labels)] for i in range(len(rows))]
        lines = [f'{{"text": {json.dumps(r["text"])}, "label": {y}}}' for r, y in zip(rows, label)]
        (c.tmp / "l.jsonl").write_text("\n".join(lines) + "\n")

    return setup


def model_copy(name: str, *, drop: tuple[str, ...] = (), saved: bool = False,
               change: Callable[[Path], None] | None = None) -> Callable[[Ctx], None]:  # fmt: skip
    """A copy of the tiny model (or of the saved one) as tmp/<name>, without `drop`, then `change`d."""

    def setup(c: Ctx) -> None:
        dst = c.tmp / name
        shutil.copytree(c.saved if saved else c.model, dst)
        for f in drop:
            (dst / f).unlink(missing_ok=True)
        if change is not None:
            change(dst)

    return setup


class _Evil:
    """Pickled into a checkpoint: torch.load(weights_only=True) refuses any class it does not know."""


def pickle_only(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def evil_pickle(folder: Path) -> None:
    import torch

    torch.save({"weight": _Evil()}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def small_vocab(folder: Path) -> None:
    """A tokenizer of 35 tokens for an embedding of 98 rows: it reads words, but not this model's."""
    from transformers import BertTokenizerFast

    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (folder / f).unlink(missing_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film",
                                                 "was", "not", *letters]) + "\n")  # fmt: skip
    BertTokenizerFast.from_pretrained(folder, do_lower_case=True).save_pretrained(folder)


def remote_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-own-bert", auto_map={"AutoConfig": "modeling.MyConfig",
                                                      "AutoModel": "modeling.MyModel"})  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))


def edit_json(name: str, value: Any) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        (folder / name).write_text(value if isinstance(value, str) else json.dumps(value))

    return change


def store(kind: str) -> Callable[[Ctx], None]:
    """tmp/s/study.sqlite of a kind that is not a usable steadytune store."""

    def setup(c: Ctx) -> None:
        folder = c.tmp / "s"
        folder.mkdir()
        path = folder / "study.sqlite"
        if kind == "random":
            path.write_bytes(random.Random(0).randbytes(16384))
        elif kind == "corrupt":  # a real store with garbage over its second and third pages
            data = bytearray(c.store)
            data[4096:12288] = random.Random(1).randbytes(8192)
            path.write_bytes(bytes(data))
        elif kind == "foreign-schema":  # another program's database, in the default (rollback) journal mode
            con = sqlite3.connect(path)
            con.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES "
                              "(1, 'ada');")  # fmt: skip
            con.close()
        elif kind == "foreign-record":  # steadytune's tables, in WAL mode, holding a record it did not write
            from steadytune.study.store import _SCHEMA

            con = sqlite3.connect(path)
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            con.execute("INSERT INTO trials VALUES ('train', 'adam', 0, 'done', '{\"x\": 1}', NULL, 0)")
            con.commit()
            con.close()
        elif kind == "truncated":  # a copy cut off a third of the way: its header promises pages that are gone
            path.write_bytes(c.store[: len(c.store) // 3])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "directory":
            path.mkdir()
        elif kind == "finished":  # a good store (for export's own checks)
            path.write_bytes(c.store)
        elif kind in ("study-locked", "fit-locked"):  # a store and its lock file, as a finished study or fit leaves
            path.write_bytes(c.store)
            if kind == "fit-locked":  # what a fit's identity adds to a study's: its search settings
                con = sqlite3.connect(path)
                identity = json.loads(con.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()[0])
                identity["settings"].update({"fit.candidates": 9, "fit.keep": 2, "fit.seed": 0})
                con.execute("UPDATE meta SET value = ? WHERE key = 'identity'", (json.dumps(identity),))
                con.commit()
                con.close()
            (folder / "study.lock").write_text("pid 1 on the machine that wrote it\n")
        else:
            raise AssertionError(kind)

    return setup


def read_only_store(c: Ctx) -> None:
    def fill(ro: Path) -> None:
        (ro / "s").mkdir()
        (ro / "s" / "study.sqlite").write_bytes(c.store)
        shutil.copy(c.train, ro / "train.csv")

    c.read_only(fill)


def read_only_out(c: Ctx) -> None:
    c.read_only(lambda ro: None)


def _parquet_twice(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), path)


def folder_with(*names: str) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        for name in names:
            p = c.tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("mine\n")

    return setup


def symlink(name: str, target: str) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        (c.tmp / name).symlink_to(c.tmp / target)

    return setup


def glue_latin1(c: Ctx) -> None:
    folder = c.tmp / "glue" / "RTE"
    folder.mkdir(parents=True)
    lines = "index\tsentence1\tsentence2\tlabel\n0\tLe café est chaud.\tIl fait chaud.\tentailment\n"
    (folder / "train.tsv").write_bytes(lines.encode("latin-1"))
    (folder / "dev.tsv").write_text(lines.replace("café", "the"))


def many_classes(n: int, per_class: int) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        rows = [f"good film {i},c{i}\n" for i in range(n) for _ in range(per_class)]
        (c.tmp / "classes.csv").write_text("text,label\n" + "".join(rows))

    return setup


def both(*setups: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        for s in setups:
            s(c)

    return setup


def saved_dataset(name: str, columns: dict[str, list] | None = None, *, splits: tuple[str, ...] | None = None,
                  class_label: bool = False) -> Callable[[Ctx], None]:  # fmt: skip
    """tmp/<name> written by `save_to_disk`: a Dataset of `columns` (the toy rows by default), or a DatasetDict
    with it as each of `splits`; `class_label` makes "label" a ClassLabel of neg/pos (ids as given)."""

    def setup(c: Ctx) -> None:
        import datasets

        rows = text_rows(40)
        data = columns if columns is not None else {"text": [r["text"] for r in rows],
                                                    "label": [r["label"] for r in rows]}  # fmt: skip
        features = None
        if class_label:
            features = datasets.Features({"text": datasets.Value("string"),
                                          "label": datasets.ClassLabel(names=["neg", "pos"])})  # fmt: skip
        ds = datasets.Dataset.from_dict(data, features=features)
        (datasets.DatasetDict({s: ds for s in splits}) if splits else ds).save_to_disk(c.tmp / name)

    return setup


def train_dataset(spec: str, *extra: str) -> list[str]:
    return [*TRAIN[:3], "--dataset", spec, *TRAIN[5:], *extra]


# --------------------------------------------------------------------------------------------------------------
# The corpus

TRAIN = ["train", "--model", "{model}", "--train-file", "{train}", "--max-steps", "1", "--quiet"]
PREDICT = ["predict", "--model", "{saved}", "--input", "{train}", "--output", "{tmp}/predictions.csv"]
STUDY = ["study", "--model", "{model}", "--train-file", "{train}", "--out", "{tmp}/s", "--recipes", "adam+max_steps=1",
         "--seeds", "1", "--num-evals", "1", "--workers", "1", "--quiet"]  # fmt: skip
BIG = "100000000000000000000"  # 10**20: beyond int64


def train(*extra: str) -> list[str]:
    return [*TRAIN, *extra]


def train_on(path: str, *extra: str) -> list[str]:
    return [*TRAIN[:4], path, *TRAIN[5:], *extra]


def predict(*extra: str, model: str = "{saved}", input: str = "{train}") -> list[str]:
    return [*PREDICT[:2], model, PREDICT[3], input, *PREDICT[5:], *extra]


def study(*extra: str) -> list[str]:
    return [*STUDY, *extra]


def train_with_model(name: str, *extra: str) -> list[str]:
    return train("--model", f"{{tmp}}/{name}", *extra)


@dataclass
class Case:
    id: str
    kind: str
    argv: list[str]
    message: str
    setup: Callable[[Ctx], None] | None = None
    code: int = 2
    without: str | None = None
    """"cuda" or "mps": the case is bad input only on a machine without that device."""
    env: dict[str, str] | None = None
    """Environment variables set for the case."""
    stdin: bytes | None = None
    """What standard input holds (`--input -`)."""


def fit_folder(name: str = "f", *, rows: Callable[[list[dict]], list[dict]] | None = None) -> Callable[[Ctx], None]:
    """tmp/<name>: a copy of the finished fit, and tmp/rows100.csv, its data (`rows` edits the rows first)."""

    def setup(c: Ctx) -> None:
        shutil.copytree(c.fit / "f", c.tmp / name, symlinks=True)
        data = text_rows(100)
        write_rows(c.tmp / "rows100.csv", rows(data) if rows else data)

    return setup


def _flip_first_label(rows: list[dict]) -> list[dict]:
    return [{**rows[0], "label": "pos" if rows[0]["label"] == "neg" else "neg"}, *rows[1:]]


def checkpoint_of(edit: Callable[[bytes], bytes] | None = None) -> Callable[[Ctx], None]:
    """tmp/train.csv and tmp/run.checkpoint.pt as the checkpointed run left them (`edit` changes the file's bytes)."""

    def setup(c: Ctx) -> None:
        shutil.copy(c.checkpoint / "train.csv", c.tmp / "train.csv")
        data = (c.checkpoint / "run.checkpoint.pt").read_bytes()
        (c.tmp / "run.checkpoint.pt").write_bytes(edit(data) if edit else data)

    return setup


def held_fit(c: Ctx) -> None:
    """The finished fit, its folder held by another live process (a second fit on it)."""
    fit_folder()(c)
    code = ("import fcntl, sys, time; fd = open(sys.argv[1], 'a'); fcntl.flock(fd, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(600)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(c.tmp / "f" / "study.lock")], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    _HOLDERS.append(holder)
    assert holder.stdout.readline().strip() == "held"


_HOLDERS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_holders():
    yield
    while _HOLDERS:
        holder = _HOLDERS.pop()
        holder.kill()
        holder.wait(timeout=30)


def parquet(name: str, columns: dict[str, Any], *, dictionary: tuple[str, ...] = ()) -> Callable[[Ctx], None]:
    """tmp/<name>, a Parquet file of `columns` (pyarrow infers the types; `dictionary` columns dictionary-encoded)."""

    def setup(c: Ctx) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {k: pa.array(v) for k, v in columns.items()}
        arrays = {k: a.dictionary_encode() if k in dictionary else a for k, a in arrays.items()}
        pq.write_table(pa.table(arrays), c.tmp / name)

    return setup


def truncated_parquet(c: Ctx) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = text_rows(40)
    pq.write_table(pa.table({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]}), c.tmp / "t.pq")
    data = (c.tmp / "t.pq").read_bytes()
    (c.tmp / "t.pq").write_bytes(data[: len(data) // 2])  # a copy cut off half-way: no footer


def dataset_dict(name: str, splits: dict[str, dict[str, list]]) -> Callable[[Ctx], None]:
    """tmp/<name>: a DatasetDict saved with `save_to_disk`, each split its own columns."""

    def setup(c: Ctx) -> None:
        import datasets

        datasets.DatasetDict({s: datasets.Dataset.from_dict(cols) for s, cols in splits.items()}).save_to_disk(
            c.tmp / name
        )

    return setup


def read_only_tracking(c: Ctx) -> None:
    c.read_only(lambda ro: None)


RESUME = ["train", "--model", "{model}", "--train-file", "train.csv", "--max-steps", "3", "--quiet", "--out", "run",
          "--checkpoint-every", "1", "--resume", "--lr", "1e-4"]  # fmt: skip
FIT = ["fit", "--model", "{model}", "--train-file", "{train}", "--out", "{tmp}/f", "--quiet"]
# fit on 100 rows: 10 test rows, enough for a verdict (40 rows leave 4, which fit refuses before its folder)
FIT_100 = [*FIT[:4], "{tmp}/rows100.csv", *FIT[5:]]
ROWS_100 = write("rows100.csv", csv_text(text_rows(100)))
# The finished fit folder of the cases below (`finished_fit`): 2 fine-tuning candidates, no probe, so that a tiny
# random encoder learns nothing and the verdict is no
FIT_FOLDER = ["--candidates", "2", "--families", "finetune"]


# fmt: off
CASES = [
    # encodings
    Case("latin1-csv", "encoding", train_on("{tmp}/l.csv"), "l.csv:5: not UTF-8", latin1("l.csv")),
    Case("latin1-tsv", "encoding", train_on("{tmp}/l.tsv"), "l.tsv:5: not UTF-8", latin1("l.tsv", "tsv")),
    Case("latin1-jsonl", "encoding", train_on("{tmp}/l.jsonl"), "l.jsonl:4: not UTF-8", latin1("l.jsonl", "jsonl")),
    Case("utf16-csv", "encoding", train_on("{tmp}/u.csv"), "is UTF-16/32 text",
         write("u.csv", csv_text(text_rows()).encode("utf-16"))),
    Case("utf16-no-bom-jsonl", "encoding", train_on("{tmp}/u.jsonl"), "a NUL character",
         write("u.jsonl", jsonl_text(text_rows()).encode("utf-16-le"))),
    Case("latin1-validation", "encoding", train("--validation-file", "{tmp}/l.csv"), "l.csv:5: not UTF-8",
         latin1("l.csv")),
    Case("latin1-predict-input", "encoding", predict(input="{tmp}/l.csv"), "l.csv:5: not UTF-8", latin1("l.csv")),
    Case("utf16-predict-input", "encoding", predict(input="{tmp}/u.tsv"), "is UTF-16/32 text",
         write("u.tsv", csv_text(text_rows(), "\t").encode("utf-16"))),
    Case("glue-train-not-utf8", "encoding", ["train", "--model", "{model}", "--task", "rte", "--glue-dir",
         "{tmp}/glue", "--quiet"], "RTE/train.tsv:2: not UTF-8", glue_latin1),  # fmt: skip
    Case("binary-file", "encoding", train_on("{tmp}/b.csv"), "not UTF-8",
         write("b.csv", bytes(range(256)) * 4)),
    # data shapes
    Case("duplicate-header-csv", "data shape", train_on("{tmp}/d.csv"), "column 'label' appears twice",
         write("d.csv", "text,label,label\na,pos,neg\nb,neg,pos\n")),
    Case("duplicate-header-tsv", "data shape", train_on("{tmp}/d.tsv"), "column 'text' appears twice",
         write("d.tsv", "text\ttext\tlabel\na\tb\tpos\n")),
    Case("duplicate-key-jsonl", "data shape", train_on("{tmp}/d.jsonl"), "key 'label' appears twice",
         write("d.jsonl", '{"text": "a", "label": "pos", "label": "neg"}\n')),
    Case("two-rows-per-class", "data shape", train_on("{tmp}/classes.csv"), "too few to split it stratified",
         many_classes(2, 2)),
    Case("100k-classes", "data shape", train_on("{tmp}/classes.csv"), "examples of 100000 classes",
         many_classes(100_000, 2)),
    Case("10mb-line-csv", "data shape", train_on("{tmp}/big.csv"), "field larger than field limit",
         write("big.csv", "a" * 10_000_000)),
    Case("10mb-line-tsv", "data shape", train_on("{tmp}/big.tsv"), "name the text column(s)",
         write("big.tsv", "a" * 10_000_000)),
    Case("10mb-line-jsonl", "data shape", train_on("{tmp}/big.jsonl"), "malformed JSON",
         write("big.jsonl", "a" * 10_000_000)),
    Case("huge-number-jsonl", "data shape", train_on("{tmp}/n.jsonl"), "malformed JSON",
         write("n.jsonl", '{"text": "a", "label": ' + "9" * 5000 + "}\n")),
    Case("deep-nesting-jsonl", "data shape", train_on("{tmp}/n.jsonl"), "malformed JSON",
         write("n.jsonl", '{"text": "a", "label": ' + "[" * 100_000 + "]" * 100_000 + "}\n")),
    Case("text-column-is-label", "data shape", train("--text-columns", "label", "--label-column", "label"),
         "both a text column and the label column"),
    Case("text-column-twice", "data shape", train("--text-columns", "text,text"), "is given twice"),
    Case("one-class", "data shape", train_on("{tmp}/one.csv"), "at least two labels",
         write("one.csv", "text,label\n" + "good film,pos\n" * 10)),
    Case("ragged-csv", "data shape", train_on("{tmp}/r.csv"), "r.csv:3: malformed row",
         write("r.csv", "text,label\na,pos\nb\n")),
    Case("missing-column", "data shape", train("--label-column", "stars"), "no column 'stars'"),
    # Hugging Face datasets and Parquet
    Case("dataset-folder-missing", "data shape", train_dataset("{tmp}/nope"), "dataset folder not found"),
    Case("dataset-folder-not-saved", "data shape", train_dataset("{tmp}/plain"),
         "not a dataset saved with save_to_disk", folder_with("plain/train.csv")),
    Case("dataset-is-a-file", "data shape", train_dataset("{train}"), "is a file; --dataset takes a folder"),
    Case("dataset-local-config", "data shape", train_dataset("{tmp}/ds:cfg"), "a local folder, which has no configs",
         saved_dataset("ds")),
    Case("dataset-empty-config", "data shape", train_dataset("org/name:"), "expected NAME:CONFIG with both parts"),
    Case("dataset-no-train-split", "data shape", train_dataset("{tmp}/ds"), "no 'train' split (splits: 'training')",
         saved_dataset("ds", splits=("training",))),
    Case("dataset-missing-column", "data shape", train_dataset("{tmp}/ds", "--text-columns", "sentence"),
         "no column 'label' (columns: 'sentence', 'y')",
         saved_dataset("ds", {"sentence": ["good film"] * 20, "y": [0, 1] * 10}, splits=("train",))),
    Case("dataset-empty", "data shape", train_dataset("{tmp}/ds"), "the dataset is empty",
         saved_dataset("ds", {"text": [], "label": []})),
    Case("dataset-and-train-file", "data shape", train("--dataset", "{tmp}/ds"),
         "not --train-file and --dataset together", saved_dataset("ds")),
    Case("dataset-hub-id-offline", "data shape", train_dataset("someone/no-such-dataset:cfg"),
         "cannot load dataset 'someone/no-such-dataset:cfg' from the Hugging Face hub"),
    Case("study-dataset-missing", "data shape", [*STUDY[:3], "--dataset", "{tmp}/nope", *STUDY[5:]],
         "dataset folder not found"),
    Case("parquet-garbage", "data shape", train_on("{tmp}/g.parquet"), "g.parquet is not a readable Parquet file",
         write("g.parquet", bytes(range(256)) * 4)),
    # labels
    Case("nan-label", "labels", train_on("{tmp}/l.jsonl"), "label nan is not a finite number",
         jsonl_labels('"pos"', '"neg"', "NaN")),
    Case("nan-labels-only", "labels", train_on("{tmp}/l.jsonl"), "label nan is not a finite number",
         jsonl_labels("NaN", "1")),
    Case("infinity-label", "labels", train_on("{tmp}/l.jsonl"), "label inf is not a finite number",
         jsonl_labels("1", "0", "Infinity")),
    Case("mixed-label-types", "labels", train_on("{tmp}/l.jsonl"), "must be all text, all numbers or all",
         jsonl_labels("1", '"pos"', "1.5", "true")),
    Case("bool-and-int-labels", "labels", train_on("{tmp}/l.jsonl"), "label 1 is number but",
         jsonl_labels("true", "1")),
    Case("list-label", "labels", train_on("{tmp}/l.jsonl"), "is a list", jsonl_labels("[1]", "[2]")),
    Case("regression-inf", "labels", train_on("{tmp}/l.jsonl", "--task-type", "regression"), "not a finite number",
         jsonl_labels("0.5", "1e999")),
    Case("unknown-validation-label", "labels", train("--validation-file", "{tmp}/v.csv"), "unknown label 'maybe'",
         write("v.csv", "text,label\na,maybe\nb,pos\n")),
    Case("dataset-list-labels", "labels", train_dataset("{tmp}/ds"), "ds row 0: label [1] is a list",
         saved_dataset("ds", {"text": ["good film"] * 20, "label": [[1], [2]] * 10})),
    Case("dataset-some-labels-hidden", "labels", train_dataset("{tmp}/ds"), "(train split) row 3: missing label",
         saved_dataset("ds", {"text": ["good film"] * 20, "label": [0, 1, 0, -1] * 5}, splits=("train",),
                       class_label=True)),
    Case("dataset-class-label-regression", "labels", train_dataset("{tmp}/ds", "--task-type", "regression"),
         "is a ClassLabel (neg, pos), not a regression target", saved_dataset("ds", {"text": ["good film"] * 20,
         "label": [0, 1] * 10}, class_label=True)),
    # numbers
    Case("batch-size-1e20", "numbers", train("--batch-size", "1e20"), "invalid int value: '1e20'"),
    Case("batch-size-huge", "numbers", train("--batch-size", BIG), "batch_size must be an integer of at most"),
    Case("batch-size-0", "numbers", train("--batch-size", "0"), "batch_size must be at least 1"),
    Case("seed-huge", "numbers", train("--seed", "99999999999999999999999"), "seed must be an integer of at most"),
    Case("seed-negative", "numbers", train("--seed", "-1"), "seed must be from 0 to"),
    Case("init-seed-huge", "numbers", train("--init-seed", BIG), "init_seed must be an integer of at most"),
    Case("split-seed-2**40", "numbers", train("--split-seed", str(2**40)), "split_seed must be from 0 to 4294967295"),
    Case("data-seed-negative", "numbers", train("--data-seed", "-5"), "data_seed must be from 0 to"),
    Case("epochs-inf", "numbers", train("--epochs", "inf"), "epochs must be a finite number, got inf"),
    Case("epochs-nan", "numbers", train("--epochs", "nan"), "epochs must be a finite number, got nan"),
    Case("epochs-1e300", "numbers", train("--epochs", "1e300"), "epochs must be at most 1e+06"),
    Case("epochs-0", "numbers", [*TRAIN[:5], "--quiet", "--epochs", "0"], "epochs must be positive"),
    Case("lr-inf", "numbers", train("--lr", "inf"), "lr must be a finite number, got inf"),
    Case("lr-nan", "numbers", train("--lr", "nan"), "lr must be a finite number, got nan"),
    Case("lr-0", "numbers", train("--lr", "0"), "lr must be positive"),
    Case("eps-negative", "numbers", train("--eps", "-1"), "eps must be ≥ 0"),
    Case("weight-decay-inf", "numbers", train("--weight-decay", "inf"), "weight_decay must be a finite number"),
    Case("warmup-nan", "numbers", train("--warmup-ratio", "nan"), "warmup_ratio must be a finite number"),
    Case("max-grad-norm-inf", "numbers", train("--max-grad-norm", "inf"), "max_grad_norm must be a finite number"),
    Case("betas-inf", "numbers", train("--betas", "inf,0.9"), "betas must be two numbers in [0, 1)"),
    Case("max-steps-huge", "numbers", [*TRAIN[:5], "--quiet", "--max-steps", BIG], "max_steps must be an integer"),
    Case("reinit-layers-huge", "numbers", train("--reinit-layers", BIG), "reinit_layers must be an integer"),
    Case("recipe-batch-size-huge", "numbers", train("--recipe", f"adam+batch_size={BIG}"), "batch_size must be"),
    Case("recipe-lr-inf", "numbers", train("--recipe", "adam+lr=inf"), "lr must be a finite number"),
    Case("max-length-beyond-positions", "numbers", train("--max-length", "512"),
         "max_length 512 is more than model"),
    Case("max-length-0", "numbers", train("--max-length", "0"), "max_length must be positive, got 0"),
    Case("max-length-huge", "numbers", train("--max-length", BIG), "max_length must be an integer of at most"),
    Case("train-size-0", "numbers", train("--train-size", "0"), "train_size must be positive"),
    Case("num-evals-0", "numbers", train("--num-evals", "0"), "num_evals must be positive"),
    Case("eval-batch-size-huge", "numbers", train("--eval-batch-size", BIG), "eval_batch_size must be an integer"),
    Case("predict-batch-size-0", "numbers", predict("--batch-size", "0"), "batch_size must be an integer from 1"),
    Case("predict-batch-size-negative", "numbers", predict("--batch-size", "-3"), "batch_size must be an integer"),
    Case("predict-batch-size-huge", "numbers", predict("--batch-size", BIG), "batch_size must be an integer"),
    Case("study-seeds-huge-count", "numbers", study("--seeds", "99999999999999999999999"), "more than 100000 runs"),
    Case("study-seed-huge", "numbers", study("--seeds", f"1,{BIG}"), "a seed must be at most"),
    Case("study-workers-huge", "numbers", study("--workers", BIG), "--workers must be at most 4096"),
    Case("study-threads-huge", "numbers", study("--threads", "1000000000"), "--threads must be at most 4096"),
    Case("study-max-length", "numbers", study("--max-length", "4096"), "max_length 4096 is more than model"),
    Case("audit-lr-inf", "numbers", ["audit", "torch.optim.AdamW", "--lr", "inf"], "positive, finite learning"),
    Case("audit-lr-nan", "numbers", ["audit", "torch.optim.AdamW", "--lr", "nan"], "Invalid learning rate: nan"),
    Case("audit-recipe-lr-inf", "numbers", ["audit", "--recipe", "adam+lr=inf"], "lr must be a finite number"),
    Case("recipes-lr-inf", "numbers", ["recipes", "adam+lr=inf"], "lr must be a finite number"),
    # devices
    Case("device-cuda", "devices", train("--device", "cuda"), "device 'cuda':", without="cuda"),
    Case("device-cuda-index", "devices", train("--device", "cuda:7"), "device 'cuda:7':"),
    Case("device-unknown", "devices", train("--device", "gpu"), "unknown device 'gpu'"),
    Case("device-mps", "devices", train("--device", "mps"), "device 'mps':", without="mps"),
    Case("predict-device-cuda", "devices", predict("--device", "cuda"), "device 'cuda':", without="cuda"),
    Case("predict-device-unknown", "devices", predict("--device", "tpu"), "unknown device 'tpu'"),
    Case("study-device-cuda", "devices", study("--device", "cuda"), "device 'cuda':", without="cuda"),
    # output locations
    Case("out-is-a-file", "output", train("--out", "{train}"), "is a file, not a folder"),
    Case("out-under-a-file", "output", train("--out", "{train}/run"), "train.csv is a file, not a folder"),
    Case("out-dangling-symlink", "output", train("--out", "{tmp}/dead"), "is a symbolic link to",
         symlink("dead", "missing")),
    Case("out-symlink-to-folder", "output", train("--out", "{tmp}/link"), "is a symbolic link to",
         both(folder_with("real/x"), symlink("link", "real"))),
    Case("out-under-dangling-symlink", "output", train("--out", "{tmp}/dead/run"), "is a broken symbolic link",
         symlink("dead", "missing")),
    Case("out-dot-overwrite", "output", train("--out", ".", "--overwrite"), "is the current folder"),
    Case("out-root-overwrite", "output", train("--out", "/", "--overwrite"), "is the current folder"),
    Case("out-parent-overwrite", "output", train("--out", "..", "--overwrite"), "a folder holding it"),
    Case("out-not-empty", "output", train("--out", "{tmp}/mine"), "exists and is not empty",
         folder_with("mine/notes.txt")),
    Case("out-not-a-run-overwrite", "output", train("--out", "{tmp}/mine", "--overwrite"),
         "is not a steadytune run folder", folder_with("mine/notes.txt", "mine/config.json")),
    Case("out-study-folder-overwrite", "output", train("--out", "{tmp}/s", "--overwrite"),
         "is not a steadytune run folder", store("empty")),
    Case("out-read-only-fs", "output", train("--out", "{tmp}/ro/run"), "Read-only file system", read_only_out),
    Case("out-read-only-fs-nested", "output", train("--out", "{tmp}/ro/a/b/run"), "Read-only file system",
         read_only_out),
    Case("predict-output-is-folder", "output", predict(), "is a folder; give a file name",
         folder_with("predictions.csv/x")),
    Case("predict-output-exists", "output", predict(), "exists; pass --overwrite", folder_with("predictions.csv")),
    Case("predict-output-under-file", "output", [*PREDICT[:5], "--output", "{train}/p.csv"], "is a file, not a"),
    Case("predict-output-read-only", "output", [*PREDICT[:5], "--output", "{tmp}/ro/p.csv"],
         "Read-only file system", read_only_out),
    Case("predict-output-type", "output", [*PREDICT[:5], "--output", "{tmp}/p.txt"], "unknown output type"),
    Case("report-to-unknown", "output", train("--report-to", "tensorboard,comet"), "unknown tracker 'comet'"),
    Case("tracking-dir-is-a-file", "output", train("--report-to", "tensorboard", "--tracking-dir", "{train}"),
         "is a file, not a folder"),
    Case("study-tracking-dir-is-a-file", "output", study("--report-to", "mlflow", "--tracking-dir", "{train}"),
         "is a file, not a folder"),
    Case("predict-input-type", "data shape", predict(input="{tmp}/rows.txt"), "unknown input type '.txt'",
         write("rows.txt", "text\ngood\n")),
    Case("predict-input-format-unknown", "data shape", predict("--input-format", "xml"), "invalid choice: 'xml'"),
    Case("predict-garbage-parquet", "data shape", predict(input="{tmp}/in.parquet"),
         "in.parquet is not a readable Parquet file", write("in.parquet", b"PAR1 this is no parquet file")),
    Case("predict-missing-parquet", "data shape", predict(input="{tmp}/none.parquet"), "file not found"),
    Case("predict-parquet-column-twice", "data shape", predict(input="{tmp}/d.parquet"),
         "d.parquet: column 'text' appears twice", lambda c: _parquet_twice(c.tmp / "d.parquet")),
    Case("predict-missing-text-column", "data shape", predict("--text-columns", "review"),
         "no column 'review' (columns: 'text', 'label')"),
    Case("predict-input-has-prediction", "data shape", predict(input="{tmp}/p.jsonl"),
         "already has a column 'prediction'", write("p.jsonl", '{"text": "good", "prediction": "pos"}\n')),
    Case("predict-mixed-column-to-parquet", "data shape",
         [*PREDICT[:3], "--input", "{tmp}/m.jsonl", "--output", "{tmp}/p.parquet"], "column 'id' cannot be written",
         write("m.jsonl", '{"text": "good", "id": 1}\n{"text": "bad", "id": "b"}\n')),
    Case("export-output-exists", "output", ["export", "{tmp}/s"], "trials.csv exists; pass --overwrite",
         both(store("finished"), folder_with("s/trials.csv"))),
    Case("export-format-mismatch", "output", ["export", "{tmp}/s", "--format", "parquet", "--output", "{tmp}/t.csv"],
         "names a .csv file but --format is parquet", store("finished")),
    Case("train-out-stdout", "output", train("--out", "-"), "standard output takes a file, not a folder"),
    Case("study-out-foreign-folder", "output", [*STUDY[:6], "{tmp}/mine", *STUDY[7:]],
         "is not a study or fit folder", folder_with("mine/notes.txt")),
    Case("study-out-is-a-file", "output", [*STUDY[:6], "{train}", *STUDY[7:]], "is a file, not a folder"),
    # --push-to-hub: what a push needs is checked before training (tests/test_card.py: offline, no token)
    Case("push-without-save-model", "output", train("--out", "{tmp}/run", "--push-to-hub", "me/m"),
         "--push-to-hub needs --save-model and --out DIR"),
    Case("push-bad-repo-id", "output", train("--out", "{tmp}/run", "--save-model", "--push-to-hub", "a/b/c"),
         "'a/b/c' is not a hub repository id"),
    Case("hub-private-without-push", "output", train("--out", "{tmp}/run", "--save-model", "--hub-private"),
         "--hub-private needs --push-to-hub REPO"),
    Case("fit-reinit-negative", "numbers", ["fit", "--model", "{model}", "--train-file", "{train}", "--out",
         "{tmp}/f", "--quiet", "--reinit", "-1"], "reinit must be 0 or more"),
    # fit's search flags (issue 30): bounded, empty and repeated items refused, each naming its own flag
    *[Case(f"fit-candidates-{n}", "numbers", [*FIT, "--candidates", n],
           f"candidates must be between 1 and 1000, got {n}") for n in ("10000000", "0", "-4")],
    Case("fit-lrs-empty-item", "numbers", [*FIT, "--lrs", "1e-4,,2e-4"], "got an empty item in '1e-4,,2e-4'"),
    Case("fit-lrs-huge", "numbers", [*FIT, "--lrs", "1e308"], "learning rates must lie in (0, 1), got 1e+308"),
    Case("fit-lrs-inf", "numbers", [*FIT, "--lrs", "1e-4,inf"], "expected finite numbers"),
    Case("fit-lrs-twice", "numbers", [*FIT, "--lrs", "1e-4,1e-4"], "learning rate 0.0001 is listed twice"),
    Case("fit-check-at-empty-item", "numbers", [*FIT, "--check-at", "0.25,"], "got an empty item"),
    Case("report-to-none-and-tracker", "output", train("--report-to", "none,tensorboard"),
         "names none beside a tracker"),
    Case("report-to-empty", "output", train("--report-to", ""), "has an empty name"),
    Case("fit-report-to-empty-item", "output", [*FIT, "--report-to", "tensorboard,"], "has an empty name"),
    # another kind of folder, or the same kind set up otherwise: refused before its lock file is touched
    Case("fit-out-study-folder", "stores", [*FIT_100[:6], "{tmp}/s", *FIT_100[7:]],
         "s is a study folder (steadytune study), not a fit folder", both(store("study-locked"), ROWS_100)),
    Case("study-out-fit-folder", "stores", [*STUDY[:6], "{tmp}/s", *STUDY[7:]],
         "s is a fit folder (steadytune fit), not a study folder", store("fit-locked")),
    Case("fit-rerun-other-settings", "stores", [*FIT_100[:6], "{tmp}/s", *FIT_100[7:], "--candidates", "3"],
         "holds a fit with other settings", both(store("fit-locked"), ROWS_100)),
    Case("fit-push-bad-repo-id", "output", ["fit", "--model", "{model}", "--train-file", "{train}", "--out",
         "{tmp}/f", "--quiet", "--push-to-hub", "bad name"], "'bad name' is not a hub repository id"),
    Case("study-out-under-a-file", "output", [*STUDY[:6], "{train}/s", *STUDY[7:]], "is a file, not a folder"),
    Case("study-out-read-only", "output", [*STUDY[:6], "{tmp}/ro/s", *STUDY[7:]], "Read-only file system",
         read_only_out),
    Case("export-output-under-file", "output", ["export", "{tmp}/ro/s", "--output", "{train}/t.csv"],
         "is a file, not a folder", read_only_store),
    Case("export-read-only-default-output", "output", ["export", "{tmp}/ro/s"], "Read-only file system",
         read_only_store),
    Case("report-read-only", "output", ["report", "{tmp}/ro/s"], "Read-only file system", read_only_store),
    # model folders
    Case("pickle-only", "model folder", train_with_model("m"), "has only pickle weights (pytorch_model.bin)",
         model_copy("m", change=pickle_only)),
    Case("pickle-refused-by-weights-only", "model folder", train_with_model("m"), "has only pickle weights",
         model_copy("m", change=evil_pickle)),
    Case("truncated-safetensors", "model folder", train_with_model("m"), "model.safetensors is truncated",
         model_copy("m", change=truncate_weights)),
    Case("empty-safetensors", "model folder", train_with_model("m"), "model.safetensors is truncated",
         model_copy("m", change=edit_json("model.safetensors", ""))),
    Case("no-weights", "model folder", train_with_model("m"), "no weights in",
         model_copy("m", drop=("model.safetensors",))),
    Case("no-config", "model folder", train_with_model("m"), "no config.json in",
         model_copy("m", drop=("config.json",))),
    Case("malformed-config", "model folder", train_with_model("m"), "config.json is not a readable JSON config",
         model_copy("m", change=edit_json("config.json", "{not json"))),
    Case("config-not-an-object", "model folder", train_with_model("m"), "is not a readable JSON config",
         model_copy("m", change=edit_json("config.json", [1, 2]))),
    Case("no-tokenizer-files", "model folder", train_with_model("m"), "are the tokenizer files",
         model_copy("m", drop=("tokenizer.json", "tokenizer_config.json", "vocab.txt"))),
    Case("tokenizer-of-another-model", "model folder", train_with_model("m"), "has 35 tokens but the model's",
         model_copy("m", change=small_vocab)),
    Case("needs-remote-code", "model folder", train_with_model("m"), "cannot load model",
         model_copy("m", change=remote_code)),
    Case("model-is-a-file", "model folder", train("--model", "{train}"), "cannot load model"),
    Case("study-no-tokenizer-files", "model folder", study("--model", "{tmp}/m"), "are the tokenizer files",
         model_copy("m", drop=("tokenizer.json", "tokenizer_config.json", "vocab.txt"))),
    Case("predict-malformed-steadytune-json", "model folder", predict(model="{tmp}/m"), "steadytune.json is not",
         model_copy("m", saved=True, change=edit_json("steadytune.json", "{oops"))),
    Case("predict-steadytune-json-types", "model folder", predict(model="{tmp}/m"), "text_columns must list",
         model_copy("m", saved=True, change=edit_json("steadytune.json", {"text_columns": 5}))),
    Case("predict-steadytune-json-max-length", "model folder", predict(model="{tmp}/m"),
         "max_length must be a positive integer",
         model_copy("m", saved=True, change=edit_json("steadytune.json", {"text_columns": ["text"],
                                                                          "max_length": "long"}))),  # fmt: skip
    Case("predict-max-length-beyond-positions", "model folder", predict(model="{tmp}/m"), "max_length 4096 is more",
         model_copy("m", saved=True, change=edit_json("steadytune.json", {"text_columns": ["text"],
                                                                          "max_length": 4096}))),  # fmt: skip
    Case("predict-needs-remote-code", "model folder", predict(model="{tmp}/m"), "needs its own Python code",
         model_copy("m", saved=True, change=remote_code)),
    Case("predict-truncated-safetensors", "model folder", predict(model="{tmp}/m"), "is truncated",
         model_copy("m", saved=True, change=truncate_weights)),
    Case("predict-pickle-only", "model folder", predict(model="{tmp}/m"), "has only pickle weights",
         model_copy("m", saved=True, change=pickle_only)),
    Case("predict-pickle-refused-by-weights-only", "model folder", predict("--allow-pickle", model="{tmp}/m"),
         "Weights only load failed", model_copy("m", saved=True, change=evil_pickle)),
    Case("predict-no-tokenizer-files", "model folder", predict(model="{tmp}/m"), "are the tokenizer files",
         model_copy("m", saved=True, drop=("tokenizer.json", "tokenizer_config.json", "vocab.txt"))),
    Case("predict-not-a-model-folder", "model folder", predict(model="{tmp}"), "not a saved model folder"),
    # stores
    *[Case(f"{cmd}-{kind}-store", "stores", argv, message, store(kind))
      for kind, message in (("random", "not an SQLite database"), ("corrupt", "not a usable steadytune study store"),
                            ("foreign-schema", "another program's database"),
                            ("foreign-record", "trial train adam seed 0 holds no 'config'"),
                            ("directory", "is not a file"))
      for cmd, argv in (("study", study()), ("report", ["report", "{tmp}/s"]),
                        ("export", ["export", "{tmp}/s"]))],  # fmt: skip
    Case("report-empty-store", "stores", ["report", "{tmp}/s"], "no finished trials yet", store("empty")),
    Case("export-empty-store", "stores", ["export", "{tmp}/s"], "no finished trials yet", store("empty")),
    Case("report-no-study", "stores", ["report", "{tmp}/nothing"], "no study in"),
    Case("study-read-only-store", "stores", [*STUDY[:4], "{tmp}/ro/train.csv", STUDY[5], "{tmp}/ro/s", *STUDY[7:]],
         "Read-only file system", read_only_store),

    # ----- issue 30: the surfaces added since the first corpus -----
    # fit's flags, each refused before its folder exists
    Case("fit-check-at-above-one", "numbers", [*FIT, "--check-at", "1.5"], "must increase strictly within (0, 1)"),
    Case("fit-check-at-decreasing", "numbers", [*FIT, "--check-at", "0.5,0.25"], "must increase strictly"),
    Case("fit-check-at-nan", "numbers", [*FIT, "--check-at", "nan"], "expected finite numbers"),
    Case("fit-keep-above-candidates", "numbers", [*FIT, "--candidates", "2", "--keep", "3"],
         "keep must be between 1 and the number of candidates (2), got 3"),
    Case("fit-keep-zero", "numbers", [*FIT, "--keep", "0"], "keep must be between 1 and the number of candidates"),
    Case("fit-candidates-1e20", "numbers", [*FIT, "--candidates", BIG], "candidates must be between 1 and 1000"),
    Case("fit-lrs-zero", "numbers", [*FIT, "--lrs=0"], "learning rates must lie in (0, 1), got 0"),
    Case("fit-lrs-negative", "numbers", [*FIT, "--lrs=-1e-4"], "learning rates must lie in (0, 1)"),
    Case("fit-lrs-not-a-number", "numbers", [*FIT, "--lrs", "1e-4,fast"], "expected numbers"),
    Case("fit-families-unknown", "numbers", [*FIT, "--families", "probe,svm"], "unknown family 'svm'"),
    Case("fit-cross-validate-below-negative", "numbers", [*FIT, "--cross-validate-below", "-1"],
         "cross_validate_below must be a whole number of rows ≥ 0, got -1"),
    Case("fit-cross-validate-below-fraction", "numbers", [*FIT, "--cross-validate-below", "1e3"], "invalid int value"),
    Case("fit-families-twice", "numbers", [*FIT, "--families", "probe,probe"], "at most once"),
    Case("fit-families-empty-item", "numbers", [*FIT, "--families", "probe,"], "got an empty item in 'probe,'"),
    Case("fit-contrastive-regression", "labels",
         [*FIT[:4], "{tmp}/l.jsonl", *FIT[5:], "--task-type", "regression", "--families", "contrastive"],
         "the contrastive family needs a classification task", jsonl_labels("0.5", "1.25", "3.0", "4.5")),
    Case("fit-reinit-deeper-than-model", "numbers", [*FIT_100, "--reinit", "5"],
         "re-initialising 5 blocks (--reinit) needs a deeper model", ROWS_100),
    Case("fit-out-is-a-file", "output", [*FIT[:6], "{train}", *FIT[7:]], "is a file, not a folder"),
    Case("fit-out-read-only", "output", [*FIT_100[:6], "{tmp}/ro/f", *FIT_100[7:]], "Read-only file system",
         both(read_only_out, ROWS_100)),
    Case("fit-out-stdout", "output", [*FIT[:6], "-", *FIT[7:]], "standard output takes a file, not a folder"),
    Case("fit-too-few-test-rows", "data shape", [*FIT, "--families", "finetune"],
         "the test split has 4 rows, too few for a verdict"),
    # fit folders: a rerun with other data or flags, a second fit at once, damaged stores
    Case("fit-rerun-changed-data", "stores", [*FIT[:4], "rows100.csv", *FIT[5:], *FIT_FOLDER],
         "holds a fit with other data for rows100 (the rows differ)", fit_folder(rows=_flip_first_label)),
    Case("fit-rerun-changed-lrs", "stores", [*FIT[:4], "rows100.csv", *FIT[5:], *FIT_FOLDER, "--lrs", "3e-4"],
         "holds a fit with other settings fit.lrs", fit_folder()),
    Case("fit-rerun-changed-epochs", "stores", [*FIT[:4], "rows100.csv", *FIT[5:], *FIT_FOLDER, "--epochs", "4"],
         "now means other settings than its stored trials (epochs 3.0 → 4.0)", fit_folder()),
    Case("fit-second-at-once", "stores", [*FIT[:4], "rows100.csv", *FIT[5:], *FIT_FOLDER],
         "in use by another steadytune process", held_fit),
    Case("fit-out-truncated-store", "stores", [*FIT_100[:6], "{tmp}/s", *FIT_100[7:]],
         "is not a usable steadytune study store", both(store("truncated"), ROWS_100)),
    Case("fit-out-random-store", "stores", [*FIT_100[:6], "{tmp}/s", *FIT_100[7:]],
         "is not a usable steadytune study store", both(store("random"), ROWS_100)),
    Case("report-fit-folder", "stores", ["report", "{tmp}/f"], "f is a fit folder (steadytune fit), not a study",
         fit_folder()),
    Case("report-truncated-store", "stores", ["report", "{tmp}/s"], "is not a usable steadytune study store",
         store("truncated")),
    Case("export-truncated-store", "stores", ["export", "{tmp}/s", "--output", "-"],
         "is not a usable steadytune study store", store("truncated")),
    Case("report-store-is-a-folder", "stores", ["report", "{tmp}/s"], "study.sqlite", store("directory")),
    # train --checkpoint-every / --resume (RESUME: the checkpointed run's own command)
    Case("checkpoint-every-negative", "numbers", train("--out", "{tmp}/run", "--checkpoint-every", "-2"),
         "checkpoint_every must be at least 1 step, got -2"),
    Case("checkpoint-without-out", "output", train("--checkpoint-every", "1"), "checkpoints need an output folder"),
    Case("resume-without-out", "output", train("--resume"), "checkpoints need an output folder"),
    Case("checkpoint-path-is-a-folder", "output", train("--out", "{tmp}/run", "--checkpoint-every", "1"),
         "run.checkpoint.pt, where this run keeps its checkpoint, is not a plain file",
         folder_with("run.checkpoint.pt/x")),
    Case("checkpoint-path-is-a-link", "output", train("--out", "{tmp}/run", "--checkpoint-every", "1", "--resume"),
         "is not a plain file", both(folder_with("elsewhere.pt"), symlink("run.checkpoint.pt", "elsewhere.pt"))),
    Case("checkpoint-exists-without-resume", "output", RESUME[:-3] + RESUME[-2:],
         "holds the checkpoint of an earlier run; pass --resume", checkpoint_of()),
    Case("checkpoint-read-only", "output", train("--out", "{tmp}/ro/run", "--checkpoint-every", "1"),
         "Read-only file system", read_only_out),
    Case("resume-garbage-checkpoint", "model folder", RESUME, "run.checkpoint.pt: not a readable steadytune "
         "checkpoint", checkpoint_of(lambda b: random.Random(2).randbytes(len(b)))),
    Case("resume-truncated-checkpoint", "model folder", RESUME, "not a readable steadytune checkpoint",
         checkpoint_of(lambda b: b[: len(b) // 2])),
    Case("resume-empty-checkpoint", "model folder", RESUME, "not a readable steadytune checkpoint",
         checkpoint_of(lambda b: b"")),
    Case("resume-changed-lr", "model folder", [*RESUME[:-1], "3e-4"],
         "was written by another run (it differs in config.lr, config.recipe)", checkpoint_of()),
    Case("resume-changed-seed", "model folder", [*RESUME, "--seed", "7"],
         "(it differs in config.seed, settings.init_seed)", checkpoint_of()),
    Case("resume-changed-data", "model folder", RESUME, "(it differs in data.test, data.train, data.validation)",
         both(checkpoint_of(), write("train.csv", csv_text(text_rows(41))))),
    # --dataset: save_to_disk folders missing what the task needs, hub ids that cannot be used
    Case("dataset-no-label-column", "data shape", train_dataset("{tmp}/ds"), "no column 'label'",
         saved_dataset("ds", {"text": ["good film", "bad film"] * 10})),
    Case("dataset-validation-missing-column", "data shape", train_dataset("{tmp}/ds"), "no column 'text'",
         dataset_dict("ds", {"train": {"text": ["good", "bad"] * 10, "label": [1, 0] * 10},
                             "validation": {"sentence": ["fine", "awful"] * 5, "label": [1, 0] * 5}})),
    Case("dataset-only-test-split", "data shape", train_dataset("{tmp}/ds"), "no 'train' split (splits: 'test')",
         saved_dataset("ds", splits=("test",))),
    Case("dataset-hub-id-malformed", "data shape", train_dataset("a/b/c"), "dataset"),
    Case("dataset-hub-id-offline-flag", "data shape", train_dataset("someone/no-such-dataset"),
         "cannot load dataset 'someone/no-such-dataset'", env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}),
    Case("fit-dataset-missing", "data shape", [*FIT[:3], "--dataset", "{tmp}/nope", *FIT[5:]],
         "dataset folder not found"),
    # Parquet: corrupt, empty, nested, dictionary-encoded
    Case("parquet-truncated", "data shape", train_on("{tmp}/t.pq"), "t.pq is not a readable Parquet file",
         truncated_parquet),
    Case("parquet-empty", "data shape", train_on("{tmp}/e.parquet"), "the train split is empty",
         parquet("e.parquet", {"text": [], "label": []})),
    Case("parquet-struct-text", "data shape", train_on("{tmp}/n.parquet"), "column 'text' must hold text, found dict",
         parquet("n.parquet", {"text": [{"a": "x"}] * 20, "label": [0, 1] * 10})),
    Case("parquet-list-text", "data shape", train_on("{tmp}/n.parquet"), "column 'text' must hold text, found list",
         parquet("n.parquet", {"text": [["x", "y"]] * 20, "label": [0, 1] * 10})),
    Case("parquet-list-label", "labels", train_on("{tmp}/n.parquet"), "label [0] is a list",
         parquet("n.parquet", {"text": ["good", "bad"] * 10, "label": [[0]] * 20})),
    Case("parquet-dictionary-null-label", "labels", train_on("{tmp}/d.parquet"), "d.parquet row 19: missing label",
         parquet("d.parquet", {"text": ["good", "bad"] * 10, "label": ["pos", "neg"] * 9 + ["pos", None]},
                 dictionary=("text", "label"))),
    Case("parquet-no-columns-named", "data shape", train_on("{tmp}/n.parquet"), "no column 'label'",
         parquet("n.parquet", {"sentence": ["good", "bad"] * 10, "y": [0, 1] * 10})),
    Case("predict-empty-parquet", "data shape", predict(input="{tmp}/e.parquet"), "e.parquet: no rows to predict",
         parquet("e.parquet", {"text": []})),
    # tracking: each backend's destination checked before any work
    Case("tensorboard-dir-read-only", "output", train("--report-to", "tensorboard", "--tracking-dir", "{tmp}/ro/tb"),
         "Read-only file system", read_only_tracking),
    Case("mlflow-dir-read-only", "output", train("--report-to", "mlflow", "--tracking-dir", "{tmp}/ro/ml"),
         "Read-only file system", read_only_tracking),
    Case("mlflow-uri-unknown-scheme", "output", train("--report-to", "mlflow"), "garbage://nowhere",
         env={"MLFLOW_TRACKING_URI": "garbage://nowhere"}),
    Case("fit-mlflow-uri-file-store", "output", [*FIT, "--report-to", "mlflow"], "MLFLOW_TRACKING_URI",
         env={"MLFLOW_TRACKING_URI": "file:///tmp/nowhere-mlruns"}),
    Case("study-mlflow-uri-unknown-scheme", "output", study("--report-to", "mlflow"), "garbage://nowhere",
         env={"MLFLOW_TRACKING_URI": "garbage://nowhere"}),
    Case("wandb-not-installed", "output", train("--report-to", "wandb"), "needs wandb, which is not installed"),
    Case("fit-tracking-dir-is-a-file", "output", [*FIT, "--report-to", "tensorboard", "--tracking-dir", "{train}"],
         "is a file"),
    # --push-to-hub: offline, malformed ids, checked before training
    Case("push-offline", "output", train("--out", "{tmp}/run", "--save-model", "--push-to-hub", "me/m"),
         "offline mode is on (HF_HUB_OFFLINE)", env={"HF_HUB_OFFLINE": "1"}),
    Case("fit-push-offline", "output", [*FIT, "--push-to-hub", "me/m"], "offline mode is on (HF_HUB_OFFLINE)",
         env={"HF_HUB_OFFLINE": "1"}),
    Case("push-repo-id-too-long", "output", train("--out", "{tmp}/run", "--save-model", "--push-to-hub",
         "me/" + "m" * 200), "is not a hub repository id"),
    Case("push-repo-id-empty", "output", train("--out", "{tmp}/run", "--save-model", "--push-to-hub", ""),
         "is not a hub repository id"),
    Case("fit-hub-private-without-push", "output", [*FIT, "--hub-private"], "--hub-private needs --push-to-hub"),
    # predict over standard input and output, and model folders that are no fine-tuned model
    Case("predict-stdin-binary", "encoding", predict(input="-"), "standard input:2: not UTF-8 (byte 0x80",
         stdin=bytes(range(256))),
    Case("predict-stdin-empty", "data shape", predict("--input-format", "csv", input="-"), "standard input is empty",
         stdin=b""),
    Case("predict-stdin-utf16", "encoding", predict("--input-format", "csv", input="-"), "UTF-16/32",
         stdin="text\ngood\n".encode("utf-16")),
    Case("predict-stdin-wrong-format", "data shape", predict(input="-"), "standard input is read as JSONL",
         stdin=b"text,label\ngood film,pos\n"),
    Case("predict-stdin-parquet-garbage", "data shape", predict("--input-format", "parquet", input="-"),
         "not a readable Parquet file", stdin=b"PAR1 nothing of the kind"),
    Case("predict-base-encoder", "model folder", predict("--text-columns", "text", model="{model}"),
         "holds no trained classification head (missing classifier.bias, classifier.weight)"),
    Case("predict-fit-said-no", "model folder", predict(model="{tmp}/f"),
         "f is a fit folder whose fit delivered no model", fit_folder()),
    Case("predict-fit-candidates-folder", "model folder", predict(model="{tmp}/f/candidates"),
         "not a saved model folder", fit_folder()),
]
# fmt: on


def _subs(ctx: Ctx) -> dict[str, str]:
    return {"{tmp}": str(ctx.tmp), "{model}": str(ctx.model), "{saved}": str(ctx.saved), "{train}": str(ctx.train)}


@pytest.fixture(scope="session")
def saved_model(tiny_model_dir, tmp_path_factory) -> Path:
    """A model folder written by `train --save-model` (exit 1 when the one-step run failed: it is saved anyway)."""
    folder = tmp_path_factory.mktemp("saved")
    data = write_rows(folder / "train.csv", sentiment_rows(40, seed=1))
    assert main(["train", "--model", str(tiny_model_dir), "--train-file", str(data), "--max-steps", "1", "--quiet",
                 "--out", str(folder / "run"), "--save-model"]) in (0, 1)  # fmt: skip
    return folder / "run" / "model"


@pytest.fixture(scope="session")
def finished_store(tiny_model_dir, tmp_path_factory) -> bytes:
    """The bytes of a real study's store (one finished trial), closed."""
    folder = tmp_path_factory.mktemp("store")
    data = write_rows(folder / "train.csv", text_rows(40))
    argv = [*STUDY]
    argv[2], argv[4], argv[6] = str(tiny_model_dir), str(data), str(folder / "s")
    assert main(argv) == 0
    return (folder / "s" / "study.sqlite").read_bytes()


@pytest.fixture(scope="session")
def finished_fit(tiny_model_dir, tmp_path_factory) -> Path:
    """A folder holding rows100.csv and f, a fit of 2 candidates on it (tiny random encoder: its verdict is no)."""
    folder = tmp_path_factory.mktemp("fit")
    write_rows(folder / "rows100.csv", text_rows(100))
    here = os.getcwd()
    os.chdir(folder)  # the fit names its data as the cases do: rows100.csv, relative
    try:
        assert main(["fit", "--model", str(tiny_model_dir), "--train-file", "rows100.csv", "--out", "f", "--quiet",
                     *FIT_FOLDER]) == 1  # fmt: skip
    finally:
        os.chdir(here)
    assert (folder / "f" / "fit.json").is_file() and not (folder / "f" / "model").exists()
    return folder


class _Stop(Exception):
    pass


@pytest.fixture(scope="session")
def run_checkpoint(tiny_model_dir, tmp_path_factory) -> Path:
    """A folder holding train.csv and run.checkpoint.pt: `train --out run --checkpoint-every 1 --lr 1e-4` stopped
    right after its first checkpoint."""
    import steadytune.trainer as trainer

    folder = tmp_path_factory.mktemp("checkpoint")
    write_rows(folder / "train.csv", text_rows(40))
    real = trainer.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        raise _Stop

    here = os.getcwd()
    os.chdir(folder)
    trainer.save_checkpoint = save_then_stop
    try:
        with pytest.raises(_Stop):
            main(["train", "--model", str(tiny_model_dir), "--train-file", "train.csv", "--max-steps", "3", "--quiet",
                  "--out", "run", "--checkpoint-every", "1", "--lr", "1e-4"])  # fmt: skip
    finally:
        trainer.save_checkpoint = real
        os.chdir(here)
    assert (folder / "run.checkpoint.pt").is_file() and not (folder / "run").exists()
    return folder


@pytest.fixture
def ctx(tmp_path, tiny_model_dir, saved_model, finished_store, finished_fit, run_checkpoint, monkeypatch) -> Ctx:
    c = Ctx(tmp=tmp_path / "case", model=tiny_model_dir, saved=saved_model, store=finished_store, fit=finished_fit,
            checkpoint=run_checkpoint)  # fmt: skip
    c.tmp.mkdir()
    write_rows(c.train, text_rows(40))
    monkeypatch.chdir(c.tmp)
    return c


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_nothing_written(case: Case, ctx: Ctx, capsys, monkeypatch):
    import io

    import torch

    present = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if case.without is not None and present[case.without]:
        pytest.skip(f"this machine has {case.without}")
    if case.setup is not None:
        case.setup(ctx)
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case.stdin)))
    subs = _subs(ctx)
    argv = []
    for a in case.argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    before = snapshot(ctx.tmp)
    capsys.readouterr()
    code, out, err = run_main(argv, capsys)
    assert code == case.code, err
    line = one_line(err)
    assert case.message in line, line
    assert line.startswith(f"steadytune {argv[0]}"), line
    assert out == ""
    assert snapshot(ctx.tmp) == before  # nothing written, nothing removed, nothing switched to WAL


def test_the_corpus_covers_every_kind():
    kinds = {c.kind for c in CASES}
    assert kinds == {"encoding", "data shape", "labels", "numbers", "devices", "output", "model folder", "stores"}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id", ["latin1-csv", "pickle-only", "study-random-store", "seed-huge"])
def test_the_entry_point_prints_no_traceback(case_id: str, ctx: Ctx):
    """The same through `python -m steadytune` in a process of its own."""
    case = next(c for c in CASES if c.id == case_id)
    if case.setup is not None:
        case.setup(ctx)
    subs = _subs(ctx)
    argv = [_sub(a, subs) for a in case.argv]
    before = snapshot(ctx.tmp)
    proc = _cli(*argv, cwd=ctx.tmp)
    assert proc.returncode == 2, proc.stderr
    assert case.message in one_line(proc.stderr)
    assert snapshot(ctx.tmp) == before


def _sub(text: str, subs: dict[str, str]) -> str:
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "steadytune", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# The boundary itself


def test_debug_shows_the_traceback_and_keeps_the_exit_code(ctx: Ctx, capsys):
    for argv in (["--debug", *train("--seed", "-1")], [*train("--seed", "-1"), "--debug"]):
        code, _, err = run_main([_sub(a, _subs(ctx)) for a in argv], capsys)
        assert code == 2
        assert "Traceback" in err and err.strip().splitlines()[-1].startswith("steadytune train: error: seed")


class _Raising(dict):
    """A GLUE_TASKS stand-in whose listing raises `error`: `steadytune tasks` then fails with it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def values(self):  # type: ignore[override]
        raise self.error


def test_a_bug_keeps_its_traceback(monkeypatch):
    import steadytune.data

    monkeypatch.setattr(steadytune.data, "GLUE_TASKS", _Raising(KeyError("a bug")))
    with pytest.raises(KeyError, match="a bug"):
        main(["tasks"])


def test_environment_failures_exit_3(ctx: Ctx, monkeypatch, capsys):
    import errno

    import steadytune.data

    full = OSError(errno.ENOSPC, "No space left on device", str(ctx.tmp / "x"))
    monkeypatch.setattr(steadytune.data, "GLUE_TASKS", _Raising(full))
    code, _, err = run_main(["tasks"], capsys)
    assert code == 3 and "the disk is full (writing" in one_line(err)
    monkeypatch.setattr(steadytune.data, "GLUE_TASKS", _Raising(MemoryError()))
    code, _, err = run_main(["tasks"], capsys)
    assert code == 3 and "out of memory" in one_line(err)
    denied = PermissionError(errno.EACCES, "Permission denied", str(ctx.tmp / "y"))
    monkeypatch.setattr(steadytune.data, "GLUE_TASKS", _Raising(denied))
    code, _, err = run_main(["tasks"], capsys)
    assert code == 2 and one_line(err).endswith("y: Permission denied")


def test_every_help_names_the_exit_codes(capsys):
    for cmd in ([], ["train"], ["predict"], ["study"], ["report"], ["export"], ["audit"], ["recipes"], ["tasks"]):
        with pytest.raises(SystemExit):
            main([*cmd, "--help"])
        out = capsys.readouterr().out
        out = " ".join(out.split())  # argparse wraps the epilog to the terminal's width
        assert "exit status" in out and "3 the environment failed" in out and "--debug" in out, cmd


# --------------------------------------------------------------------------------------------------------------
# What is accepted: the checks refuse only what they should


def test_overwrite_replaces_a_run_folder_and_leaves_nothing_behind(ctx: Ctx, capsys):
    out = ctx.tmp / "run"
    argv = [_sub(a, _subs(ctx)) for a in train("--out", "run")]
    assert run_main(argv, capsys)[0] in (0, 1)  # 1: the tiny run failed, a recorded outcome
    first = (out / "metrics.json").read_text()
    assert run_main([*argv, "--overwrite", "--seed", "1"], capsys)[0] in (0, 1)
    assert (out / "metrics.json").read_text() != first
    assert sorted(p.name for p in ctx.tmp.iterdir()) == ["run", "train.csv"]  # no .run.*.old or .tmp left


def test_predict_loads_pickle_weights_when_allowed(ctx: Ctx, capsys):
    model_copy("m", saved=True, change=pickle_only)(ctx)
    argv = [_sub(a, _subs(ctx)) for a in predict("--allow-pickle", model="{tmp}/m")]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert len((ctx.tmp / "predictions.csv").read_text().splitlines()) == 41


def test_a_zero_byte_store_is_an_empty_one(ctx: Ctx, capsys):
    store("empty")(ctx)
    code, _, err = run_main([_sub(a, _subs(ctx)) for a in study()], capsys)
    assert code == 0, err
    assert len(_rows(ctx.tmp / "s" / "study.sqlite")) == 1


def test_new_sets_a_foreign_file_aside(ctx: Ctx, capsys):
    store("random")(ctx)
    junk = (ctx.tmp / "s" / "study.sqlite").read_bytes()
    code, _, err = run_main([_sub(a, _subs(ctx)) for a in study("--new")], capsys)
    assert code == 0, err
    (backup,) = (ctx.tmp / "s").glob("study.*.sqlite.bak")
    assert backup.read_bytes() == junk


def test_a_read_only_study_can_still_be_exported_elsewhere(ctx: Ctx, capsys):
    read_only_store(ctx)
    code, _, err = run_main(["export", str(ctx.tmp / "ro" / "s"), "--output", str(ctx.tmp / "t.csv")], capsys)
    assert code == 0, err
    assert len((ctx.tmp / "t.csv").read_text().splitlines()) == 2


def test_a_hub_dataset_without_network_is_one_quick_line(ctx: Ctx, capsys, monkeypatch):
    """Not offline, but no network: one probe, then the one-line error (no ~30 s of logged retries)."""
    import datasets
    import huggingface_hub

    from steadytune import hub

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("load_dataset must not be tried when the hub is unreachable")

    hub._probe.cache_clear()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    argv = [_sub(a, _subs(ctx)) for a in train_dataset("someone/reviews")]
    before = snapshot(ctx.tmp)
    started = time.monotonic()
    code, out, err = run_main(argv, capsys)
    hub._probe.cache_clear()
    assert code == 2 and out == ""
    assert "no local folder someone/reviews, and the Hugging Face hub is unreachable ([Errno -2]" in one_line(err)
    assert time.monotonic() - started < 60  # the model check and one probe; no retries
    assert snapshot(ctx.tmp) == before


def test_numpy_and_json_labels_of_one_kind_are_fine():
    import numpy as np

    from steadytune.data import load_user_data

    texts = [r["text"] for r in text_rows(40)]
    data = load_user_data({"text": texts, "label": np.arange(40) % 2})
    assert data.label_names == ("0", "1")
    data = load_user_data({"text": texts, "label": [True, False] * 20})
    assert data.label_names == ("False", "True")


def _rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT task, recipe, seed, status FROM trials").fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------------------------------------------
# One writer per study folder


def _study_argv(ctx: Ctx, out: Path, seeds: int) -> list[str]:
    argv = [_sub(a, _subs(ctx)) for a in study()]
    argv[argv.index("--out") + 1] = str(out)
    argv[argv.index("--seeds") + 1] = str(seeds)
    return argv


# A study process whose trials take at least 6 s each: long enough to be caught running.
SLOW_STUDY = ("import sys, time; import steadytune.study.executors as e; real = e.run_trial; "
              "e.run_trial = lambda t: (time.sleep(6), real(t))[1]; from steadytune.cli import main; "
              "sys.exit(main(sys.argv[1:]))")  # fmt: skip


def _wait_for(predicate: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_two_writers_one_refuses_naming_the_other_and_readers_keep_reading(ctx: Ctx):
    from steadytune.study.store import in_use

    out = ctx.tmp / "s"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    first = subprocess.Popen([sys.executable, "-c", SLOW_STUDY, *_study_argv(ctx, out, 3)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(lambda: in_use(out) is not None or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        assert f"pid {first.pid}" in in_use(out)
        second = _cli(*_study_argv(ctx, out, 3), cwd=ctx.tmp)
        assert second.returncode == 2
        line = one_line(second.stderr)
        assert f"in use by another steadytune process (pid {first.pid}" in line
        # A reader reads while the writer writes: once a trial is stored, export sees it.
        _wait_for(lambda: (out / "study.sqlite").is_file() and _done(out) >= 1 or first.poll() is not None)
        exported = _cli("export", out, "--output", ctx.tmp / "t.csv", cwd=ctx.tmp)
        assert exported.returncode == 0, exported.stderr
        assert first.wait(timeout=600) == 0, first.communicate()
    finally:
        if first.poll() is None:
            first.kill()
    rows = _rows(out / "study.sqlite")
    assert sorted((r[2], r[3]) for r in rows) == [(s, "done") for s in range(3)]  # each once, by the one writer
    assert in_use(out) is None


def _done(out: Path) -> int:
    try:
        from steadytune.study import load_records

        return len(load_records(out))
    except Exception:
        return 0


IDENTITY = {"settings": {"fast_path": True, "compact_embedding": True}, "data": {}}


def test_a_killed_writer_leaves_the_folder_unlocked(ctx: Ctx):
    from steadytune.study.store import Store, in_use

    out = ctx.tmp / "s"
    code = ("import sys, time; from steadytune.study.store import Store; s = Store(sys.argv[1]); s.claim("
            f"{IDENTITY!r}, {{}}, []); print('claimed', flush=True); time.sleep(600)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        assert in_use(out) == f"pid {holder.pid} on {os.uname().nodename}"
        with pytest.raises(Exception, match=f"in use by another steadytune process \\(pid {holder.pid}"):
            Store(out).claim(IDENTITY, {}, [])
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert in_use(out) is None
    mine = Store(out)
    mine.claim(IDENTITY, {}, [])  # the lock went with the process
    mine.close()


# --------------------------------------------------------------------------------------------------------------
# A disk that fills up during a study


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte; returns the filler file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:  # unbuffered: closing has nothing left to write
        for size in (65536, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_a_full_disk_stops_the_study_cleanly_and_it_resumes_intact(ctx: Ctx, small_disk: Path, monkeypatch,
                                                                   capsys):  # fmt: skip
    import steadytune.study.executors as executors

    out = small_disk / "s"
    argv = _study_argv(ctx, out, 1)
    assert run_main(argv, capsys)[0] == 0  # one real trial stored
    real = executors.run_trial
    state = {"filler": None}

    def run_then_fill(trial):
        record = real(trial)
        if trial.seed == 2 and state["filler"] is None:
            record["curve"] = record["curve"] * 200  # a big record, so the full disk cannot hold it
            state["filler"] = _fill(small_disk)
        return record

    monkeypatch.setattr(executors, "run_trial", run_then_fill)
    argv[argv.index("--seeds") + 1] = "4"
    code, out_text, err = run_main(argv, capsys)
    assert code == 3, err
    line = one_line(err)
    assert "the disk is full" in line and "study.sqlite" in line and "intact" in line
    assert out_text == ""

    state["filler"].unlink()  # space again: the store is as the last commit left it
    assert sorted(r[2] for r in _rows(out / "study.sqlite")) == [0, 1]  # seed 1 stored before the disk filled
    con = sqlite3.connect(out / "study.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    code, _, err = run_main(argv, capsys)  # the same command resumes and runs what is missing
    assert code == 0, err
    assert sorted(r[2] for r in _rows(out / "study.sqlite")) == [0, 1, 2, 3]
    con = sqlite3.connect(out / "study.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


# --------------------------------------------------------------------------------------------------------------
# Standard output closed early: every command that writes there ends as SIGPIPE ends a Unix tool (issue 30)

PIPED = {
    "recipes": ["recipes"],
    "recipes-json": ["recipes", "--json", "adam", "bertadam"],
    "tasks": ["tasks", "--json"],
    "audit": ["audit", "--recipe", "bertadam", "--json"],
    "train-json": [*TRAIN, "--json"],
    "fit-json": [*FIT_100, "--candidates", "1", "--json"],
    "predict-stdout": [*PREDICT[:5], "--output", "-"],
    "predict-stdout-parquet": [*PREDICT[:5], "--output", "-", "--output-format", "parquet"],
    "study": [*STUDY[:6], "{tmp}/s2", *STUDY[7:]],
    "report": ["report", "{tmp}/s"],
    "export": ["export", "{tmp}/s", "--output", "-"],
}


@pytest.mark.parametrize("name", PIPED)
def test_a_reader_that_leaves_first_ends_every_command_quietly(name: str, ctx: Ctx):
    """`steadytune ... | true`: the reader is gone before the first byte (Python takes a second to start), so the
    first write meets a closed pipe. The command exits 141 (128 + SIGPIPE), as `yes | true` does, with no traceback
    and no "Exception ignored" at exit; where it had work to do, that work is done and kept (a study's store)."""
    import shlex

    ROWS_100(ctx)
    store("finished")(ctx)
    argv = [_sub(a, _subs(ctx)) for a in PIPED[name]]
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "steadytune", *argv])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    script = f'{command} | true; echo "exit ${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(script, shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=ctx.tmp,
                          env=env, timeout=300)  # fmt: skip
    assert done.stderr.strip().splitlines()[-1] == "exit 141", done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    if name == "study":
        from steadytune.study import load_records

        assert len(load_records(ctx.tmp / "s2")) == 1  # the trial ran and was stored before the summary was printed


# --------------------------------------------------------------------------------------------------------------
# A fit interrupted (Ctrl-C) or killed, then the same command: nothing stored is redone, nothing stored twice


def _stages(out: Path) -> dict[str, str]:
    """Stage name → its stored record (JSON text), read as report does."""
    from steadytune.study.store import _connect_read_only

    con = _connect_read_only(out / "study.sqlite")
    try:
        return dict(con.execute("SELECT recipe, record FROM trials WHERE status = 'done'").fetchall())
    except sqlite3.OperationalError:  # the store exists, its tables not yet
        return {}
    finally:
        con.close()


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_an_interrupted_or_killed_fit_resumes_with_the_same_command(how: str, ctx: Ctx, capsys):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or SIGKILL, once the first stages are
    stored; then the same command. The stages stored before the signal are not run again (their records are the
    same bytes), each stage is stored once, and the fit ends as one run through would."""
    ROWS_100(ctx)
    argv = [_sub(a, _subs(ctx)) for a in [*FIT_100, "--candidates", "4", "--families", "finetune", "--json"]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "steadytune", *argv], cwd=ctx.tmp, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=hears_ctrl_c)  # fmt: skip
    out = ctx.tmp / "f"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "study.sqlite").is_file() and len(_stages(out)) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the fit ended before the signal"
        os.killpg(proc.pid, getattr(signal, how))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if how == "SIGINT":
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert one_line(err) == "steadytune: interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL
    before = _stages(out)
    assert before and not (out / "fit.json").exists()
    code, stdout, err = run_main(argv, capsys)
    assert code == 1 and "Traceback" not in err  # a tiny random encoder learns nothing: the verdict is no
    after = _stages(out)
    assert {k: after[k] for k in before} == before  # stored stages untouched: not run again
    assert json.loads(stdout)["chosen"] and len(after) > len(before)
    print(f"{how}: {len(before)} stages stored before the signal, {len(after) - len(before)} run by the same command")
    con = sqlite3.connect(f"file:{out / 'study.sqlite'}?mode=ro", uri=True)
    keys = con.execute("SELECT task, recipe, seed FROM trials").fetchall()
    con.close()
    assert len(keys) == len(set(keys))  # each stage once


# --------------------------------------------------------------------------------------------------------------
# Not bad input: odd but valid input the corpus's neighbours must not refuse


def test_dictionary_encoded_parquet_trains(ctx: Ctx, capsys):
    """Dictionary-encoded columns (what pandas' categoricals and many writers give) read as their values."""
    rows = text_rows(40)
    parquet("d.parquet", {"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]},
            dictionary=("text", "label"))(ctx)  # fmt: skip
    code, out, err = run_main([_sub(a, _subs(ctx)) for a in train_on("{tmp}/d.parquet", "--json")], capsys)
    assert code == (1 if json.loads(out)["failed"] else 0), err
    assert json.loads(out)["config"]["train_file"].endswith("d.parquet")


def test_predict_takes_huge_texts_and_control_characters_from_standard_input(ctx: Ctx, capsys, monkeypatch):
    """A 100,000-character text is truncated to the model's max_length, control characters (bell, escape, form feed,
    a lone carriage return inside a JSON string) are text like any other: one prediction per row, exit 0."""
    import io

    texts = ["good " * 20_000, "bad\x07\x1b[31m\x0c film\rreally", "fine"]
    data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run_main(["predict", "--model", str(ctx.saved), "--input", "-", "--output", "-"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == texts and all(r["prediction"] in ("neg", "pos") for r in rows)
