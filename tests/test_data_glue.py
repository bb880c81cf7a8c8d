"""GLUE presets on the real files: official row counts, label sets, no quote handling, the paper's splits."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_glue

from steadytune.data import GLUE_TASKS, get_task, load_glue
from steadytune.data.load import _glue_split_from_tsv
from steadytune.errors import UserInputError

# Official GLUE sizes (train, dev) and the label counts of train, from the data README.
OFFICIAL = {
    "rte": (2490, 277, {0: 1249, 1: 1241}),
    "mrpc": (3668, 408, {1: 2474, 0: 1194}),
    "cola": (8551, 1043, {1: 6023, 0: 2528}),
    "sts-b": (5749, 1500, None),
    "sst-2": (67349, 872, {1: 37569, 0: 29780}),
}


@pytest.mark.parametrize("task", list(OFFICIAL))
def test_official_row_counts_and_labels(task):
    glue = require_glue(GLUE_TASKS[task].folder)
    spec = get_task(task)
    train = _glue_split_from_tsv(spec, glue / spec.folder / "train.tsv", "train")
    dev = _glue_split_from_tsv(spec, glue / spec.folder / spec.dev_file, "dev")
    n_train, n_dev, counts = OFFICIAL[task]
    assert (len(train), len(dev)) == (n_train, n_dev)
    if counts is None:
        assert train.is_regression and train.labels.min() == 0.0 and train.labels.max() == 5.0
    else:
        values, c = np.unique(train.labels, return_counts=True)
        assert dict(zip(values.tolist(), c.tolist())) == counts
        assert set(np.unique(dev.labels)) == set(range(len(spec.label_names)))


def test_bare_quotes_are_kept():
    """A quote-aware reader merges MRPC rows; ours keeps the first dev row's leading quote as text."""
    glue = require_glue("MRPC")
    spec = get_task("mrpc")
    dev = _glue_split_from_tsv(spec, glue / "MRPC" / "dev.tsv", "dev")
    assert dev.texts[1][0].startswith('"The foodservice pie business')


@pytest.mark.parametrize("task", ["rte", "mrpc", "cola", "sts-b"])
def test_dev_split_into_stratified_halves(task):
    glue = require_glue(GLUE_TASKS[task].folder)
    data = load_glue(task, glue)
    n_train, n_dev, _ = OFFICIAL[task]
    assert len(data.train) == n_train
    assert len(data.validation) + len(data.test) == n_dev
    assert abs(len(data.validation) - len(data.test)) <= 1
    # disjoint halves that cover dev
    rows = np.concatenate([data.validation.source_rows, data.test.source_rows])
    assert len(np.unique(rows)) == n_dev
    if not data.is_regression:
        fv = np.bincount(data.validation.labels) / len(data.validation)
        ft = np.bincount(data.test.labels) / len(data.test)
        assert np.abs(fv - ft).max() < 0.02
    # fixed split seed: a second load gives the same halves
    again = load_glue(task, glue)
    assert data.test.fingerprint == again.test.fingerprint


def test_train_size_is_class_balanced_and_fixed():
    glue = require_glue("RTE")
    data = load_glue("rte", glue, train_size=1000)
    assert len(data.train) == 1000
    assert np.bincount(data.train.labels).tolist() == [500, 500]
    assert load_glue("rte", glue, train_size=1000).train.fingerprint == data.train.fingerprint
    other = load_glue("rte", glue, train_size=1000, data_seed=1)
    assert other.train.fingerprint != data.train.fingerprint
    # the dev halves do not depend on the subset
    assert other.test.fingerprint == data.test.fingerprint


def test_large_task_setting_validation_from_unused_train():
    glue = require_glue("SST-2")
    data = load_glue("sst-2", glue, train_size=1000)
    assert (len(data.train), len(data.validation), len(data.test)) == (1000, 1000, 872)
    assert np.bincount(data.validation.labels).tolist() == [500, 500]
    assert not set(data.train.source_rows) & set(data.validation.source_rows)


def test_stsb_train_size_and_strata():
    glue = require_glue("STS-B")
    data = load_glue("sts-b", glue, train_size=1000)
    assert len(data.train) == 1000 and data.num_labels == 1 and data.metric == "spearmanr"
    assert abs(float(data.validation.labels.mean()) - float(data.test.labels.mean())) < 0.1


def test_unknown_task_and_missing_folder(tmp_path):
    with pytest.raises(UserInputError, match="unknown task 'rtee'"):
        get_task("rtee")
    assert get_task("STSB").name == "sts-b" and get_task("SST2").name == "sst-2"
    with pytest.raises(UserInputError, match="file not found"):
        load_glue("rte", tmp_path)
    with pytest.raises(UserInputError, match="GLUE folder not found"):
        load_glue("rte", tmp_path / "nope")


def test_glue_dir_from_env(monkeypatch):
    glue = require_glue("RTE")
    monkeypatch.setenv("GLUE_DIR", str(glue))
    assert len(load_glue("rte").train) == 2490


def test_malformed_and_unknown_label_rows(tmp_path):
    (tmp_path / "RTE").mkdir()
    head = "index\tsentence1\tsentence2\tlabel\n"
    (tmp_path / "RTE" / "train.tsv").write_text(head + "0\ta\tb\tentailment\n1\ta\tb\n")
    with pytest.raises(UserInputError, match=r"train.tsv:3: malformed row: expected 4 tab-separated fields, found 3"):
        load_glue("rte", tmp_path)
    (tmp_path / "RTE" / "train.tsv").write_text(head + "0\ta\tb\tentailment\n1\ta\tb\tmaybe\n")
    with pytest.raises(UserInputError, match=r"train.tsv:3: unknown label 'maybe'"):
        load_glue("rte", tmp_path)


def test_hub_fallback_offline_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserInputError, match="cannot load nyu-mll/glue .*--glue-dir"):
        load_glue("rte")


def test_hub_fallback_without_network_fails_fast(monkeypatch):
    """No network and no offline flag: one quick probe, then the one-line error (no 30 s of logged retries)."""
    import datasets
    import huggingface_hub

    from steadytune import hub

    hub._probe.cache_clear()

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("load_dataset must not be tried when the hub is unreachable")

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(UserInputError, match=r"Name or service not known.*--glue-dir.*HF_HUB_OFFLINE=1"):
        load_glue("mrpc")
    hub._probe.cache_clear()
