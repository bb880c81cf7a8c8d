"""Predictions: every label's score (checked against transformers run directly on the saved folder), input types
kept, `-` for standard input and output, the one overwrite rule, and the public `steadytune.predict`."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sentiment_rows, write_rows

import steadytune
from steadytune.cli import main
from steadytune.errors import UserInputError

TEXTS = ["good movie", "the plot was awful", "a very fine film", "not good", "the acting is great"]


def _save(tmp: Path, model: Path, rows: list[dict], name: str, *extra: str) -> Path:
    data = write_rows(tmp / f"{name}.jsonl", rows)
    # lr 1e-2 for 6 steps moves the random head away from uniform scores, so a wrong class order would show; the
    # run may fail (exit 1: no better than a constant on the tiny test split), its model is saved either way
    code = main(["train", "--model", str(model), "--train-file", str(data), "--max-steps", "6", "--lr", "1e-2",
                 "--batch-size", "8", "--quiet", "--out", str(tmp / name), "--save-model", *extra])  # fmt: skip
    assert code in (0, 1)
    return tmp / name / "model"


@pytest.fixture(scope="module")
def saved(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Saved models: string labels, integer labels (JSON 0/1), a pair task and a regression task."""
    tmp = tmp_path_factory.mktemp("predict-models")
    rows = sentiment_rows(48, seed=1)
    ints = [{"text": r["text"], "label": int(r["label"] == "pos")} for r in rows]
    pairs = [{"a": r["text"], "b": rows[-1 - i]["text"], "label": r["label"]} for i, r in enumerate(rows)]
    scores = [{"text": r["text"], "score": (3.5 if r["label"] == "pos" else 1.0) + 0.01 * i}
              for i, r in enumerate(rows)]  # fmt: skip
    return {
        "str": _save(tmp, tiny_model_dir, rows, "str"),
        "int": _save(tmp, tiny_model_dir, ints, "int"),
        "pair": _save(tmp, tiny_model_dir, pairs, "pair", "--text-columns", "a,b"),
        "regression": _save(tmp, tiny_model_dir, scores, "regression", "--label-column", "score"),
    }


def _reference_logits(model_dir: Path, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
    """Logits from transformers itself: the saved folder loaded as-is, one example at a time (no padding)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for i, text in enumerate(texts):
            enc = tok(text, pairs[i] if pairs else None, truncation=True, max_length=128, return_tensors="pt")
            out.append(model(**enc).logits[0].double().numpy())
    return np.stack(out)


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def _predict(*argv: str) -> int:
    return main(["predict", *map(str, argv)])


def test_every_label_score_matches_transformers(saved, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    assert _predict("--model", saved["str"], "--input", src, "--output", tmp_path / "p.jsonl") == 0
    rows = _jsonl((tmp_path / "p.jsonl").read_text())
    logits = _reference_logits(saved["str"], TEXTS)
    reference = torch.softmax(torch.from_numpy(logits), -1).numpy()
    names = ["neg", "pos"]  # id order: labels sorted
    assert len(rows) == len(TEXTS)
    for row, text, probs in zip(rows, TEXTS, reference):
        assert list(row) == ["text", "prediction", "probability", "scores"] and row["text"] == text
        scores = {s["label"]: s["score"] for s in row["scores"]}
        assert set(scores) == set(names)
        np.testing.assert_allclose([scores[n] for n in names], probs, atol=1e-6, rtol=0)
        assert [s["score"] for s in row["scores"]] == sorted(scores.values(), reverse=True)  # pipeline's order
        assert row["prediction"] == names[int(probs.argmax())] == row["scores"][0]["label"]
        assert row["probability"] == row["scores"][0]["score"]
        assert abs(sum(scores.values()) - 1) < 1e-12  # float64 softmax
    assert len({round(r["probability"], 6) for r in rows}) > 1  # the scores depend on the text

    # CSV, TSV, Parquet: one score_<label> column per label, in label order, the same numbers
    for suffix in (".csv", ".tsv", ".parquet"):
        dst = tmp_path / f"p{suffix}"
        assert _predict("--model", saved["str"], "--input", src, "--output", dst) == 0
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(dst).to_pylist()
        else:
            table = list(csv.DictReader(dst.open(newline=""), delimiter="," if suffix == ".csv" else "\t"))
        assert list(table[0]) == ["text", "prediction", "probability", "score_neg", "score_pos"]
        got = np.array([[float(r["score_neg"]), float(r["score_pos"])] for r in table])
        np.testing.assert_allclose(got, reference, atol=1e-6, rtol=0)
        assert [r["prediction"] for r in table] == [r["prediction"] for r in rows]


def test_regression_gives_the_value_and_no_scores(saved, tmp_path):
    src = write_rows(tmp_path / "in.csv", [{"text": t, "id": i} for i, t in enumerate(TEXTS)])
    assert _predict("--model", saved["regression"], "--input", src, "--output", tmp_path / "p.jsonl") == 0
    rows = _jsonl((tmp_path / "p.jsonl").read_text())
    assert list(rows[0]) == ["text", "id", "prediction"] and rows[0]["id"] == "0"  # CSV cells are text
    np.testing.assert_allclose([r["prediction"] for r in rows], _reference_logits(saved["regression"], TEXTS)[:, 0],
                               atol=1e-5, rtol=0)  # fmt: skip
    api = steadytune.predict(saved["regression"], TEXTS)
    assert [list(p) for p in api] == [["score"]] * len(TEXTS)
    np.testing.assert_allclose([p["score"] for p in api], [r["prediction"] for r in rows], atol=1e-6, rtol=0)


def test_jsonl_values_keep_their_types_and_integer_labels_are_integers(saved, tmp_path):
    rows = [{"id": i, "text": t, "weight": 0.5 * i, "ok": i % 2 == 0, "note": None, "tags": [i, "x"]}
            for i, t in enumerate(TEXTS)]  # fmt: skip
    src = write_rows(tmp_path / "in.jsonl", rows)
    assert _predict("--model", saved["int"], "--input", src, "--output", tmp_path / "p.jsonl") == 0
    out = _jsonl((tmp_path / "p.jsonl").read_text())
    assert [{k: r[k] for k in rows[0]} for r in out] == rows  # 0 stays 0, null stays null, lists stay lists
    assert all(isinstance(r["prediction"], int) and r["prediction"] in (0, 1) for r in out)
    assert all({s["label"] for s in r["scores"]} == {0, 1} for r in out)
    # a CSV of the same rows: cells stay the text they were, labels are text as every CSV cell is
    assert _predict("--model", saved["int"], "--input", src, "--output", tmp_path / "p.csv") == 0
    table = list(csv.DictReader((tmp_path / "p.csv").open(newline="")))
    assert (table[1]["id"], table[1]["ok"], table[1]["note"], table[1]["tags"]) == ("1", "false", "", '[1, "x"]')
    assert list(table[0])[-2:] == ["score_0", "score_1"]


def test_parquet_keeps_arrow_types(saved, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(TEXTS)
    table = pa.table({
        "id": pa.array(range(n), pa.int32()),
        "text": pa.array(TEXTS),
        "when": pa.array([datetime.datetime(2024, 1, i + 1) for i in range(n)], pa.timestamp("ms")),
        "x": pa.array([1.5, None, 2.5, None, 0.0], pa.float32()),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "in.parquet")
    assert _predict("--model", saved["str"], "--input", tmp_path / "in.parquet", "--output", tmp_path / "p.parquet",
                    "--overwrite") == 0  # fmt: skip
    out = pq.read_table(tmp_path / "p.parquet")
    assert out.schema.names == [*table.schema.names, "prediction", "probability", "score_neg", "score_pos"]
    assert out.select(table.schema.names).equals(table)  # every input column, its type and its nulls, unchanged
    assert out.schema.field("probability").type == pa.float64()
    # to JSONL: timestamps as ISO 8601, nulls as null
    assert _predict("--model", saved["str"], "--input", tmp_path / "in.parquet", "--output", tmp_path / "p.jsonl") == 0
    rows = _jsonl((tmp_path / "p.jsonl").read_text())
    assert rows[0]["when"] == "2024-01-01T00:00:00" and rows[1]["x"] is None and rows[0]["id"] == 0
    # JSONL to Parquet: types inferred from the JSON values
    write_rows(tmp_path / "j.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    assert _predict("--model", saved["str"], "--input", tmp_path / "j.jsonl", "--output", tmp_path / "j.parquet") == 0
    assert pq.read_table(tmp_path / "j.parquet").schema.field("id").type == pa.int64()


def test_pairs_through_the_file_and_the_api(saved, tmp_path):
    a, b = TEXTS, TEXTS[::-1]
    src = write_rows(tmp_path / "in.jsonl", [{"a": x, "b": y} for x, y in zip(a, b)])
    assert _predict("--model", saved["pair"], "--input", src, "--output", tmp_path / "p.jsonl") == 0
    rows = _jsonl((tmp_path / "p.jsonl").read_text())
    reference = torch.softmax(torch.from_numpy(_reference_logits(saved["pair"], a, b)), -1).numpy()
    got = np.array([[{s["label"]: s["score"] for s in r["scores"]}[n] for n in ("neg", "pos")] for r in rows])
    np.testing.assert_allclose(got, reference, atol=1e-6, rtol=0)
    api = steadytune.predict(saved["pair"], list(zip(a, b)))
    assert [p["scores"] for p in api] == [r["scores"] for r in rows]
    assert steadytune.predict(saved["pair"], [{"a": x, "b": y} for x, y in zip(a, b)]) == api
    with pytest.raises(UserInputError, match="trained on \\(text, text_pair\\) pairs"):
        steadytune.predict(saved["pair"], a)
    with pytest.raises(UserInputError, match="trained on single texts"):
        steadytune.predict(saved["str"], list(zip(a, b)))


def test_the_api_takes_every_kind_of_input_and_agrees_with_the_file(saved, tmp_path):
    import datasets
    import pandas as pd
    import pyarrow as pa

    src = write_rows(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    assert _predict("--model", saved["str"], "--input", src, "--output", tmp_path / "p.jsonl") == 0
    rows = _jsonl((tmp_path / "p.jsonl").read_text())
    want = [{"label": r["prediction"], "score": r["probability"], "scores": r["scores"]} for r in rows]
    assert steadytune.predict(saved["str"], TEXTS) == want  # the same batches as the file: the same numbers

    def same(got: list[dict], expected: list[dict]) -> None:
        """Other batches pad differently: the same labels in the same order, scores equal to float32 rounding."""

        def labels(rows: list[dict]) -> list[list]:
            return [[s["label"] for s in r["scores"]] for r in rows]

        def scores(rows: list[dict]) -> list[list[float]]:
            return [[s["score"] for s in r["scores"]] for r in rows]

        assert labels(got) == labels(expected) and [g["label"] for g in got] == [e["label"] for e in expected]
        np.testing.assert_allclose(scores(got), scores(expected), atol=1e-6, rtol=0)

    same(steadytune.predict(saved["str"], TEXTS[0]), want[:1])
    same(steadytune.predict(saved["str"], [{"text": t, "other": 1} for t in TEXTS]), want)
    same(steadytune.predict(saved["str"], {"text": TEXTS}), want)
    same(steadytune.predict(saved["str"], {"text": TEXTS[0]}), want[:1])
    same(steadytune.predict(saved["str"], pd.DataFrame({"review": TEXTS}), text_columns="review"), want)
    same(steadytune.predict(saved["str"], datasets.Dataset.from_dict({"text": TEXTS, "n": [1] * 5})), want)
    same(steadytune.predict(saved["str"], pa.table({"text": TEXTS})), want)
    same(steadytune.predict(saved["str"], TEXTS, batch_size=2, device="cpu"), want)
    assert steadytune.predict(saved["str"], []) == []
    assert "predict" in steadytune.__all__
    with pytest.raises(UserInputError, match="no column 'title' \\(columns: 'review'\\)"):
        steadytune.predict(saved["str"], [{"review": "x"}], text_columns="title")
    with pytest.raises(UserInputError, match="no column 'text' \\(columns: 'review'\\)"):
        steadytune.predict(saved["str"], [{"review": "x"}])
    with pytest.raises(UserInputError, match="row 1: expected text, found int"):
        steadytune.predict(saved["str"], ["fine", 3])  # type: ignore[list-item]
    with pytest.raises(UserInputError, match="row 2: expected a \\(text, text_pair\\) pair"):
        steadytune.predict(saved["str"], [("a", "b"), ("c", "d"), ("e",)])
    with pytest.raises(TypeError, match="not int"):
        steadytune.predict(saved["str"], 3)
    with pytest.raises(UserInputError, match="not a saved model folder"):
        steadytune.predict(tmp_path, TEXTS)


# ---------------------------------------------------------------------------------------------------------------
# Standard input and output (in a process of its own: real pipes)


def _cli(*args: object, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # One thread, as conftest gives the in-process side: the outputs are compared exactly, and a different thread
    # count sums the matrix products in another order (1e-9 apart).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "steadytune", *map(str, args)], input=stdin, capture_output=True,
                          env=env, cwd=cwd, timeout=300)  # fmt: skip


def test_dash_is_standard_input_and_output(saved, tmp_path):
    rows = [{"id": i, "text": t} for i, t in enumerate(TEXTS)]
    jsonl = "".join(json.dumps(r) + "\n" for r in rows).encode()
    proc = _cli("predict", "--model", saved["int"], "--input", "-", "--output", "-", stdin=jsonl, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = _jsonl(proc.stdout.decode())  # stdout holds the predictions and nothing else
    assert [r["id"] for r in out] == list(range(5)) and all(isinstance(r["prediction"], int) for r in out)
    assert proc.stderr.decode().strip() == "wrote 5 predictions to standard output"
    assert list(tmp_path.iterdir()) == []  # no file named "-"
    assert _predict("--model", saved["int"], "--input", write_rows(tmp_path / "f.jsonl", rows),
                    "--output", tmp_path / "f.out.jsonl") == 0  # fmt: skip
    assert _jsonl((tmp_path / "f.out.jsonl").read_text()) == out

    csv_in = b"text,id\ngood movie,7\nnot good,8\n"
    proc = _cli("predict", "--model", saved["int"], "--input", "-", "--input-format", "csv", "--output", "-",
                "--output-format", "csv", stdin=csv_in)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = list(csv.DictReader(io.StringIO(proc.stdout.decode())))
    assert [r["id"] for r in table] == ["7", "8"] and list(table[0])[-2:] == ["score_0", "score_1"]

    import pyarrow.parquet as pq

    proc = _cli("predict", "--model", saved["int"], "--input", "-", "--output", "-", "--output-format", "parquet",
                stdin=jsonl)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(io.BytesIO(proc.stdout)).column("id").to_pylist() == list(range(5))


@pytest.mark.parametrize(
    ("stdin", "extra", "message"),
    [
        (b"", (), "standard input is empty"),
        (b"text,id\na,1\n", (), "standard input:1: malformed JSON"),
        (b"PAR1garbage", ("--input-format", "parquet"), "standard input is not a readable Parquet file"),
    ],
)
def test_bad_standard_input_is_one_line(saved, tmp_path, stdin, extra, message):
    proc = _cli("predict", "--model", saved["str"], "--input", "-", "--output", "-", *extra, stdin=stdin)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and proc.stdout == b"" and message in err and "\n" not in err, err


# ---------------------------------------------------------------------------------------------------------------
# One overwrite rule


def test_predict_refuses_an_existing_output_unless_overwrite(saved, tmp_path, capsys):
    src = write_rows(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    dst = tmp_path / "p.jsonl"
    dst.write_text("mine\n")
    assert _predict("--model", saved["str"], "--input", src, "--output", dst) == 2
    assert "output file" in capsys.readouterr().err and dst.read_text() == "mine\n"
    assert _predict("--model", saved["str"], "--input", src, "--output", dst, "--overwrite") == 0
    assert len(_jsonl(dst.read_text())) == 5


def test_export_follows_the_same_rule_and_writes_stdout(tiny_model_dir, tmp_path, capsys):
    train_file = write_rows(tmp_path / "train.csv", sentiment_rows(40, seed=1))
    study = tmp_path / "s"
    assert main(["study", "--model", str(tiny_model_dir), "--train-file", str(train_file), "--out", str(study),
                 "--recipes", "adam+max_steps=1", "--seeds", "1", "--num-evals", "1", "--workers", "1",
                 "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["export", str(study)]) == 0
    first = (study / "trials.csv").read_bytes()
    capsys.readouterr()
    assert main(["export", str(study)]) == 2  # once written, a second export names --overwrite
    err = capsys.readouterr().err
    assert "trials.csv exists; pass --overwrite" in err and err.count("\n") == 1
    assert main(["export", str(study), "--overwrite"]) == 0 and (study / "trials.csv").read_bytes() == first
    capsys.readouterr()
    assert main(["export", str(study), "--output", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.encode() == first and "to standard output" in captured.err
    assert not (Path.cwd() / "-").exists()
    import pyarrow.parquet as pq

    assert main(["export", str(study), "--output", str(tmp_path / "t.parquet")]) == 0  # the format from the name
    assert pq.read_table(tmp_path / "t.parquet").num_rows == 1
    assert main(["export", str(study), "--format", "parquet", "--output", str(tmp_path / "t.csv")]) == 2
    assert "names a .csv file but --format is parquet" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_stdout_without_a_byte_buffer_takes_text_not_parquet(saved, tmp_path, capsys):
    """In-process callers (a notebook, redirect_stdout) have a text stdout: JSONL goes there, Parquet is refused."""
    import contextlib

    src = write_rows(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert _predict("--model", saved["str"], "--input", src, "--output", "-") == 0
        assert _predict("--model", saved["str"], "--input", src, "--output", "-", "--output-format", "parquet") == 2
    assert [r["text"] for r in _jsonl(text.getvalue())] == TEXTS
    assert "standard output here takes text only" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]
