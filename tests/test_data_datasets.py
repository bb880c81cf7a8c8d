"""Training data from Hugging Face `datasets` and Parquet: the same rows through CSV, Parquet, a `save_to_disk`
`Dataset` or `DatasetDict`, an in-memory object or a hub id give the same `TaskData` and the same run; a
`ClassLabel` keeps its names; hidden (-1) test labels are left out; the hub is asked once, quickly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import sentiment_rows, write_rows

from steadytune import TrainConfig, train
from steadytune.cli import main
from steadytune.data import load_data, load_user_data
from steadytune.data.readers import read_table
from steadytune.errors import UserInputError

datasets = pytest.importorskip("datasets")


def _key(data) -> tuple:
    """Everything about a TaskData that training reads: names, columns, metric, and each split's rows in order."""
    splits = [(s.name, s.texts, s.labels.tolist(), str(s.labels.dtype), s.fingerprint)
              for s in (data.train, data.validation, data.test)]  # fmt: skip
    return data.label_names, data.text_columns, data.metric, data.source["protocol"], splits


ROWS = {"train": sentiment_rows(60, seed=2), "dev": sentiment_rows(24, seed=3), "test": sentiment_rows(20, seed=4)}


def _sources(tmp: Path, roles: tuple[str, ...]) -> dict[str, dict]:
    """load_data keywords giving the same rows (train, and dev/test when in `roles`) in every supported form."""
    parts = {role: datasets.Dataset.from_list(ROWS[role]) for role in roles}
    files = {}
    for role in roles:
        files[role, "csv"] = write_rows(tmp / f"{role}.csv", ROWS[role])
        files[role, "parquet"] = tmp / f"{role}.parquet"
        parts[role].to_parquet(files[role, "parquet"])
    dd = datasets.DatasetDict({("train" if r == "train" else "dev" if r == "dev" else "test"): p
                               for r, p in parts.items()})  # fmt: skip
    dd.save_to_disk(tmp / "dd")
    out = {}
    for fmt in ("csv", "parquet"):
        out[fmt] = {"train_file": files["train", fmt]}
        if "dev" in roles:
            out[fmt]["validation_file"] = files["dev", fmt]
        if "test" in roles:
            out[fmt]["test_file"] = files["test", fmt]
    out["save_to_disk DatasetDict"] = {"dataset": str(tmp / "dd")}
    out["DatasetDict object"] = {"dataset": dd}
    if roles == ("train",):
        parts["train"].save_to_disk(tmp / "ds")
        out["save_to_disk Dataset"] = {"dataset": str(tmp / "ds")}
        out["Dataset object"] = {"dataset": parts["train"]}
    return out


@pytest.mark.parametrize("roles", [("train",), ("train", "dev"), ("train", "dev", "test"), ("train", "test")])
def test_every_form_gives_the_same_task_data(tmp_path, roles):
    sources = _sources(tmp_path, roles)
    reference = load_data(**sources.pop("csv"))
    assert reference.label_names == ("neg", "pos")
    for form, kwargs in sources.items():
        assert _key(load_data(**kwargs)) == _key(reference), form
    assert _key(load_user_data(datasets.load_from_disk(str(tmp_path / "dd")))) == _key(reference)


def test_protocol_and_sizes_follow_the_splits(tmp_path):
    sources = _sources(tmp_path, ("train", "dev"))
    data = load_data(**sources["save_to_disk DatasetDict"])
    # dev → stratified validation/test halves, as a --validation-file is
    assert (len(data.train), len(data.validation), len(data.test)) == (60, 12, 12)
    assert data.source["splits"] == {"train": "train", "validation": "dev"}
    assert data.source["dataset"] == str(tmp_path / "dd") and data.name == "dd"
    # --train-size draws the same class-balanced subset from either form
    a = load_data(**sources["csv"], train_size=20)
    b = load_data(**sources["save_to_disk DatasetDict"], train_size=20)
    assert _key(a) == _key(b) and len(b.train) == 20


def test_a_validation_file_replaces_the_datasets_split(tmp_path):
    _sources(tmp_path, ("train", "dev"))
    other = write_rows(tmp_path / "other.csv", sentiment_rows(30, seed=9))
    data = load_data(dataset=str(tmp_path / "dd"), validation_file=str(other))
    assert sorted(data.validation.texts[0] + data.test.texts[0]) == sorted(r["text"] for r in sentiment_rows(30, 9))
    assert data.source["files"]["validation"] == str(other)


def _class_label_dict(test_labels: list[int]) -> datasets.DatasetDict:
    """Names deliberately not in alphabetical order, so that keeping the feature's order is visible."""
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["pos", "neg"])})  # fmt: skip

    def part(rows: list[dict], labels: list[int] | None = None) -> datasets.Dataset:
        ids = labels if labels is not None else [0 if r["label"] == "pos" else 1 for r in rows]
        return datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "label": ids}, features=features)

    return datasets.DatasetDict({"train": part(ROWS["train"]), "validation": part(ROWS["dev"]),
                                 "test": part(ROWS["test"], test_labels)})  # fmt: skip


def test_class_label_names_and_ids_are_the_datasets(tmp_path):
    dd = _class_label_dict([0 if r["label"] == "pos" else 1 for r in ROWS["test"]])
    data = load_user_data(dd)
    assert data.label_names == ("pos", "neg")  # the feature's order, not sorted
    assert data.train.labels.tolist() == dd["train"]["label"][:]  # ids as the dataset has them
    assert data.source["protocol"] == "train, validation and test files as given"
    # the same through a save_to_disk folder and a Parquet file written by datasets (features in its metadata)
    dd.save_to_disk(tmp_path / "cl")
    assert _key(load_data(dataset=str(tmp_path / "cl"))) == _key(data)
    for split in ("train", "validation", "test"):
        dd[split].to_parquet(tmp_path / f"{split}.parquet")
    files = load_data(train_file=tmp_path / "train.parquet", validation_file=tmp_path / "validation.parquet",
                      test_file=tmp_path / "test.parquet")  # fmt: skip
    assert _key(files) == _key(data)


def test_hidden_test_labels_leave_the_split_out(tmp_path):
    """The hub's GLUE test splits hold -1 labels: left out, so dev is halved into validation/test (the paper)."""
    data = load_user_data(_class_label_dict([-1] * len(ROWS["test"])))
    assert data.source["unlabelled_splits"] == ["test"]
    assert data.source["protocol"] == "validation file split into stratified validation/test halves"
    assert len(data.validation) + len(data.test) == len(ROWS["dev"])
    # some labels hidden in a split that is used is an error naming the row
    dd = _class_label_dict([0 if r["label"] == "pos" else 1 for r in ROWS["test"]])
    train = dd["train"].to_dict()
    train["label"][3] = -1
    dd["train"] = datasets.Dataset.from_dict(train, features=dd["train"].features)
    with pytest.raises(UserInputError, match=r"^train split row 3: missing label"):
        load_user_data(dd)


def test_int_and_string_labels_keep_their_kind(tmp_path):
    ints = [{"text": r["text"], "label": int(r["label"] == "pos")} for r in ROWS["train"]]
    datasets.Dataset.from_list(ints).to_parquet(tmp_path / "ints.parquet")
    from_parquet = load_data(train_file=tmp_path / "ints.parquet")
    from_csv = load_data(train_file=write_rows(tmp_path / "ints.csv", ints))
    assert from_parquet.label_names == ("0", "1") and _key(from_parquet) == _key(from_csv)
    scores = [{"text": r["text"], "label": i / 7} for i, r in enumerate(ROWS["train"])]
    datasets.Dataset.from_list(scores).save_to_disk(tmp_path / "scores")
    reg = load_data(dataset=str(tmp_path / "scores"))
    assert reg.is_regression and reg.train.labels.dtype.kind == "f"


def test_parquet_reads_like_csv_for_predict(tmp_path):
    datasets.Dataset.from_list(ROWS["dev"]).to_parquet(tmp_path / "in.parquet")
    csv = read_table(write_rows(tmp_path / "in.csv", ROWS["dev"]))
    del csv["__line__"]
    assert read_table(tmp_path / "in.parquet") == csv


def test_a_config_holds_a_name_not_an_object():
    with pytest.raises(UserInputError, match=r"dataset takes NAME\[:CONFIG\].*load_user_data"):
        TrainConfig(dataset=datasets.Dataset.from_list(ROWS["train"]))
    assert json.loads(json.dumps(TrainConfig(dataset="org/name:cfg").to_dict()))["dataset"] == "org/name:cfg"


def test_one_run_is_the_same_from_every_form(tmp_path, tiny_model_dir):
    sources = _sources(tmp_path, ("train", "dev"))
    settings = {"model": str(tiny_model_dir), "lr": 1e-3, "max_steps": 6, "batch_size": 8, "num_evals": 2}
    reference = train(**settings, **{k: str(v) for k, v in sources.pop("csv").items()})
    outcome = (reference.curve, reference.best, reference.last, reference.test_best, reference.test_last)
    assert reference.curve[-1]["loss"] is not None
    for form in ("parquet", "save_to_disk DatasetDict"):
        r = train(**settings, **{k: str(v) for k, v in sources[form].items()})
        assert (r.curve, r.best, r.last, r.test_best, r.test_last) == outcome, form
    r = train(data=load_user_data(sources["DatasetDict object"]["dataset"]), **settings)
    assert (r.curve, r.best, r.last, r.test_best, r.test_last) == outcome


def test_the_cli_trains_from_a_dataset_folder(tmp_path, tiny_model_dir, capsys):
    _sources(tmp_path, ("train",))
    argv = ["train", "--model", str(tiny_model_dir), "--lr", "1e-3", "--max-steps", "4", "--quiet", "--json"]
    assert main([*argv, "--dataset", str(tmp_path / "ds")]) in (0, 1)
    from_ds = json.loads(capsys.readouterr().out)
    assert main([*argv, "--train-file", str(tmp_path / "train.parquet")]) in (0, 1)
    from_parquet = json.loads(capsys.readouterr().out)
    assert from_ds["config"]["dataset"] == str(tmp_path / "ds")
    assert from_ds["data"]["fingerprints"] == from_parquet["data"]["fingerprints"]
    scores = ("test_best", "test_last", "best", "last", "train_loss")
    assert {k: from_ds.get(k) for k in scores} == {k: from_parquet.get(k) for k in scores}
    assert from_ds["test_last"] is not None


def test_a_study_keeps_its_identity_across_forms(tmp_path):
    """Paths are not identity (the rows' fingerprints are): a study begun on CSV files resumes from the dataset."""
    from steadytune.study import Study

    sources = _sources(tmp_path, ("train", "dev"))
    a = Study(tmp_path / "s", **{k: str(v) for k, v in sources["csv"].items()})
    b = Study(tmp_path / "s", **sources["save_to_disk DatasetDict"])
    assert a.identity()["settings"] == b.identity()["settings"]
    assert list(a.identity()["data"].values()) == list(b.identity()["data"].values())


# ---------------------------------------------------------------------------------------------------------------
# The hub


def test_a_hub_id_loads_through_load_dataset(tmp_path, monkeypatch):
    dd = _class_label_dict([-1] * len(ROWS["test"]))
    calls = []

    def load_dataset(name, config=None, **kwargs):
        calls.append((name, config, kwargs))
        return dd

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    data = load_data(dataset="someone/reviews:plain")
    assert calls == [("someone/reviews", "plain", {})]  # no trust_remote_code, nothing else
    assert data.name == "reviews-plain" and data.source["hub_dataset"] == "someone/reviews/plain"
    assert _key(data) == _key(load_user_data(dd))
    assert load_data(dataset="someone/reviews").source["hub_dataset"] == "someone/reviews"


def test_hub_errors_are_one_line(monkeypatch):
    def unknown_config(name, config=None, **kwargs):
        raise ValueError(f"BuilderConfig '{config}' not found. Available: ['plain', 'full']\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", unknown_config)
    with pytest.raises(UserInputError, match=r"^cannot load dataset 'org/x:nope' .*Available: \['plain', 'full'\]$"):
        load_data(dataset="org/x:nope")


def test_an_unreachable_hub_fails_fast(monkeypatch):
    import huggingface_hub

    from steadytune import hub

    hub._probe.cache_clear()

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("load_dataset must not be tried when the hub is unreachable")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(UserInputError, match=r"no local folder org/reviews, and the Hugging Face hub is unreachable "
                       r"\(\[Errno -2\].*save_to_disk.*HF_HUB_OFFLINE=1"):  # fmt: skip
        load_data(dataset="org/reviews")
    hub._probe.cache_clear()
