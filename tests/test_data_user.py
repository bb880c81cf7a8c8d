"""User data: CSV/TSV/JSONL files and `datasets` objects, label handling, the split protocol, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import sentiment_rows, write_rows

from steadytune.data import Split, balanced_subset, load_user_data, split_in_two
from steadytune.errors import UserInputError


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_each_format_reads_the_same(tmp_path, suffix):
    rows = sentiment_rows(40)
    data = load_user_data(write_rows(tmp_path / f"train{suffix}", rows),
                          validation=write_rows(tmp_path / f"val{suffix}", rows[:20]),
                          test=write_rows(tmp_path / f"test{suffix}", rows[20:]))  # fmt: skip
    assert data.label_names == ("neg", "pos") and data.metric == "accuracy"
    assert data.train.texts[0] == [r["text"] for r in rows]
    assert data.train.labels.tolist() == [int(r["label"] == "pos") for r in rows]
    assert (len(data.validation), len(data.test)) == (20, 20)


def test_csv_quoting_is_honoured(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('text,label\n"a, quoted ""cell""",x\nplain,y\nmore,x\nrows,y\n')
    data = load_user_data(f, validation=f, test=f)
    assert data.train.texts[0][0] == 'a, quoted "cell"'


def test_integer_labels_classification_and_float_labels_regression(tmp_path):
    ints = [{"text": f"t {i}", "label": i % 3} for i in range(30)]
    data = load_user_data(write_rows(tmp_path / "a.jsonl", ints))
    assert data.label_names == ("0", "1", "2") and data.num_labels == 3
    floats = [{"text": f"t {i}", "label": i / 7} for i in range(60)]
    data = load_user_data(write_rows(tmp_path / "b.csv", floats))
    assert data.is_regression and data.num_labels == 1 and data.metric == "spearmanr"
    assert data.train.labels.dtype == np.float32
    forced = load_user_data(write_rows(tmp_path / "c.csv", ints), task_type="regression")
    assert forced.is_regression


def test_label_whitespace_is_ignored(tmp_path):
    rows = [{"text": f"t {i}", "label": ["pos", "pos ", " neg"][i % 3]} for i in range(30)]
    assert load_user_data(write_rows(tmp_path / "a.csv", rows)).label_names == ("neg", "pos")


def test_numeric_labels_sort_numerically(tmp_path):
    rows = [{"text": f"t {i}", "label": [2, 10, 1][i % 3]} for i in range(30)]
    assert load_user_data(write_rows(tmp_path / "a.csv", rows)).label_names == ("1", "2", "10")


def test_pair_columns_and_datasets_objects():
    datasets = pytest.importorskip("datasets")
    rows = {"q": [f"q{i}" for i in range(40)], "a": [f"a{i}" for i in range(40)], "y": [i % 2 for i in range(40)]}
    ds = datasets.Dataset.from_dict(rows)
    data = load_user_data(datasets.DatasetDict({"train": ds, "validation": ds}), text_columns="q,a", label_column="y")
    assert data.train.texts == (rows["q"], rows["a"])
    assert len(data.validation) + len(data.test) == 40  # validation split into halves


def test_protocol_without_validation_or_test(tmp_path):
    rows = sentiment_rows(100)
    data = load_user_data(write_rows(tmp_path / "t.csv", rows))
    assert (len(data.train), len(data.validation), len(data.test)) == (80, 10, 10)
    data = load_user_data(write_rows(tmp_path / "t.csv", rows), test=write_rows(tmp_path / "x.csv", rows[:30]))
    assert (len(data.train), len(data.validation), len(data.test)) == (90, 10, 30)
    data = load_user_data(write_rows(tmp_path / "t.csv", rows), train_size=40)
    assert len(data.train) == 40 and np.bincount(data.train.labels).tolist() == [20, 20]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("text,label\n", {}, "the train split is empty"),
        ("text,label\na,x\n", {"label_column": "y"}, "no column 'y'"),
        ("txt,label\na,x\nb,y\n", {}, "name the text column"),
        ("text,label\na,x\nb,y\nc\n", {}, r"t.csv:4: malformed row"),
        ("text,label\na,x\na,x\n", {}, "at least two labels"),
        ("text,label\na,x\nb,x\nc,y\n", {}, "class 'y' has only 1 example"),
        ("text,label\na,x\nb,\nc,y\n", {}, r"t.csv:3: missing label"),
        ("text,label\na,x\n", {"task_type": "ranking"}, "unknown task type 'ranking'"),
    ],
)
def test_bad_user_input(tmp_path, content, kwargs, message):
    f = tmp_path / "t.csv"
    f.write_text(content)
    with pytest.raises(UserInputError, match=message):
        load_user_data(f, **kwargs)


def test_label_outside_train_and_wrong_types(tmp_path):
    train = write_rows(tmp_path / "train.jsonl", sentiment_rows(20))
    bad = tmp_path / "val.jsonl"
    bad.write_text(json.dumps({"text": "x", "label": "neutral"}) + "\n")
    with pytest.raises(UserInputError, match=r"val.jsonl:1: unknown label 'neutral'"):
        load_user_data(train, validation=bad)
    bad.write_text(json.dumps({"text": 3, "label": "pos"}) + "\n")
    with pytest.raises(UserInputError, match=r"val.jsonl:1: column 'text' must hold text, found int"):
        load_user_data(train, validation=bad)
    bad.write_text("{not json\n")
    with pytest.raises(UserInputError, match=r"val.jsonl:1: malformed JSON"):
        load_user_data(train, validation=bad)
    reg = write_rows(tmp_path / "reg.jsonl", [{"text": "a", "label": 0.5}, {"text": "b", "label": 1.5}] * 10)
    bad.write_text(json.dumps({"text": "x", "label": "high"}) + "\n")
    with pytest.raises(UserInputError, match="regression label 'high' is not a number"):
        load_user_data(reg, validation=bad)
    with pytest.raises(UserInputError, match="file not found"):
        load_user_data(tmp_path / "missing.csv")
    with pytest.raises(UserInputError, match="unknown file type '.txt'"):
        load_user_data(tmp_path / "x.txt")


def test_split_in_two_and_balanced_subset_properties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=301)
    split = Split(([f"t{i}" for i in range(301)],), labels, "dev")
    a, b = split_in_two(split, seed=5)
    assert len(a) + len(b) == 301 and not set(a.texts[0]) & set(b.texts[0])
    a2, _ = split_in_two(split, seed=5)
    assert a2.fingerprint == a.fingerprint
    chosen, rest = balanced_subset(split, 31, seed=1)
    assert len(chosen) == 31 and len(rest) == 270 and not set(chosen) & set(rest)
    assert sorted(np.bincount(labels[chosen]).tolist()) == [10, 10, 11]
    with pytest.raises(UserInputError, match="larger than"):
        balanced_subset(split, 1000)
