"""Model cards and `--push-to-hub`: a saved model folder always holds a Hugging Face model card whose metadata
`huggingface_hub.ModelCard.load` reads back with the record's exact numbers, and a push uploads that folder.

The hub cannot be reached here: the push tests stub `huggingface_hub.HfApi` and check the calls it receives and
the folder it is handed, never the real hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
from conftest import require_glue

from steadytune.card import base_model_id, dataset_ref, model_label
from steadytune.cli import main


def _train_argv(tiny_model_dir: Path, files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(tiny_model_dir), "--train-file", str(files["train"]), "--validation-file",
            str(files["validation"]), "--test-file", str(files["test"]), "--max-steps", "4", "--num-evals", "2",
            "--quiet", "--out", str(out), *extra]  # fmt: skip


def _model_index_values(card) -> dict[tuple[str, str], float]:
    results = card.data.to_dict()["model-index"][0]["results"]
    return {(r["dataset"]["split"], m["type"]): m["value"] for r in results for m in r["metrics"]}


def _scores(metrics: dict, names: dict[str, str]) -> dict[tuple[str, str], float]:
    """The best checkpoint's validation and test scores as the model-index should hold them, its rows named."""
    return {(names[role], k): v for role in names for k, v in metrics["best"][role].items() if k != "loss"}


def test_a_saved_model_has_a_card_with_the_records_exact_numbers(tiny_model_dir, toy_files, tmp_path, capsys):
    from huggingface_hub import ModelCard

    import steadytune

    out = tmp_path / "run"
    assert main(_train_argv(tiny_model_dir, toy_files, out, "--save-model")) in (0, 1)  # 1: the tiny run failed
    metrics = json.loads((out / "metrics.json").read_text())
    card = ModelCard.load(out / "model" / "README.md")
    # the saved weights are the best-validation checkpoint: its validation and test scores, exactly as recorded
    expected = {(split, k): v for split in ("validation", "test") for k, v in metrics["best"][split].items()
                if k != "loss"}  # fmt: skip
    assert _model_index_values(card) == expected
    assert {(e.dataset_split, e.metric_type): e.metric_value for e in card.data.eval_results} == expected
    assert card.data.base_model is None  # a local folder, not a hub id
    assert card.data.datasets == ["train.csv"] and card.data.metrics == [metrics["metric"]]
    assert card.data.library_name == "transformers" and "steadytune" in card.data.tags
    text = card.text
    assert ("**Failed**" in text) == metrics["failed"] and ("**Not failed**" in text) == (not metrics["failed"])
    assert f"steadytune {steadytune.__version__}" in text and "## Seeds" in text and "init_seed 0" in text
    assert "train_size all rows" in " ".join(text.split())  # no subset of the user's file was drawn
    for field in ("optimizer", "warmup_ratio", "reinit_layers", "mixout", "group_by_length"):
        assert f"| {field} |" in text
    assert "AutoModelForSequenceClassification" in text and "steadytune predict --model MODEL" in text
    assert str(tmp_path) not in card.content  # no path of this machine: the card is what a push uploads
    assert f"the local folder `{tiny_model_dir.name}`" in text


def test_a_glue_presets_card_names_the_hub_dataset_and_its_config(tiny_model_dir, tmp_path):
    from huggingface_hub import ModelCard

    glue = require_glue("RTE")
    out = tmp_path / "run"  # exit 1 when the 2-step run fails: its folder is written all the same
    assert main(["train", "--model", str(tiny_model_dir), "--task", "rte", "--glue-dir", str(glue), "--train-size",
                 "32", "--max-steps", "2", "--num-evals", "1", "--quiet", "--out", str(out),
                 "--save-model"]) in (0, 1)  # fmt: skip
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.datasets == ["nyu-mll/glue"]
    assert {(e.dataset_type, e.dataset_config, e.dataset_name) for e in card.data.eval_results} == {
        ("nyu-mll/glue", "rte", "GLUE RTE")
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert card.data.eval_results[0].metric_value == metrics["best"]["validation"]["accuracy"]
    assert str(glue.parent) not in card.content
    # RTE's validation and test are halves of GLUE's validation split (its test labels are hidden): the model-index
    # says so, and never `split: test`, which a reader would take for GLUE's own; the metric names keep the roles
    names = {"validation": "validation (stratified half 1)", "test": "validation (stratified half 2)"}
    assert _model_index_values(card) == _scores(metrics, names)
    assert {e.metric_name for e in card.data.eval_results} >= {"validation accuracy", "test accuracy"}
    text = " ".join(card.text.split())
    assert ("validation (the rows the choices read) is validation (stratified half 1) of `nyu-mll/glue` and test "
            "(rows no choice read) validation (stratified half 2) of `nyu-mll/glue`") in text  # fmt: skip


def test_a_user_files_card_names_the_rows_it_held_out(tiny_model_dir, toy_files, tmp_path):
    """A training file alone: 20% of it held out and halved into validation and test, named as rows of train."""
    from huggingface_hub import ModelCard

    out = tmp_path / "run"
    assert main(["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]), "--max-steps",
                 "2", "--num-evals", "1", "--quiet", "--out", str(out), "--save-model"]) in (0, 1)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.datasets == ["train.csv"]
    names = {"validation": "train (held-out 20%, half 1)", "test": "train (held-out 20%, half 2)"}
    assert _model_index_values(card) == _scores(metrics, names)
    assert "test (rows no choice read) train (held-out 20%, half 2)." in " ".join(card.text.split())


def test_split_names_cover_every_protocol_the_data_loader_records():
    """Each protocol string `steadytune.data` writes has its rows named; the GLUE names are the hub's."""
    import re

    from steadytune.card import _SPLIT_ROWS, split_names

    source = (Path(__file__).resolve().parents[1] / "src" / "steadytune" / "data" / "load.py").read_text()
    recorded = set(re.findall(r'"protocol"\] = "([^"]+)"', source))
    assert len(recorded) == 7 and recorded == set(_SPLIT_ROWS)
    large = "balanced train subset; validation from unused train rows; test = dev"
    assert split_names({"task": "sst-2"}, {"protocol": large}) == {"validation": "train (held-out rows)",
                                                                   "test": "validation"}  # fmt: skip
    halves = "full train; dev split into stratified validation/test halves"
    assert split_names({"task": "mnli"}, {"protocol": halves})["test"] == "validation_matched (stratified half 2)"
    given = {"protocol": "validation file split into stratified validation/test halves",
             "splits": {"train": "train", "validation": "dev"}}  # fmt: skip
    assert split_names({}, given) == {"validation": "dev (stratified half 1)", "test": "dev (stratified half 2)"}
    tenth = {"protocol": "validation = stratified 10% of train", "splits": {"train": "train", "test": "heldout"}}
    assert split_names({}, tenth) == {"validation": "train (held-out 10%)", "test": "heldout"}
    files = {"protocol": "train, validation and test files as given"}
    assert split_names({}, files) == {"validation": "validation", "test": "test"}


def test_the_card_is_written_inside_the_folders_atomic_write(tiny_model_dir, toy_files, tmp_path, monkeypatch):
    """A card that cannot be written leaves no run folder at all (never a model without its card)."""
    import steadytune.card

    def broken(result):
        raise RuntimeError("card failed")

    monkeypatch.setattr(steadytune.card, "run_card", broken)
    with pytest.raises(RuntimeError, match="card failed"):
        main(_train_argv(tiny_model_dir, toy_files, tmp_path / "run", "--save-model"))
    assert not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def test_base_model_and_dataset_names():
    assert base_model_id("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_id("bert-base-uncased") == "bert-base-uncased"
    assert base_model_id("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert base_model_id("/home/someone/models/my-bert") is None  # a path: never a hub id
    assert model_label("/home/someone/models/my-bert/") == "my-bert"
    rte = dataset_ref({"task": "rte"}, {"name": "rte", "glue_dir": "/data/glue"})
    assert (rte.id, rte.config, rte.name, rte.on_hub) == ("nyu-mll/glue", "rte", "GLUE RTE", True)
    sts = dataset_ref({"task": "sts-b"}, {"name": "sts-b", "hub_dataset": "nyu-mll/glue/stsb"})
    assert (sts.id, sts.config) == ("nyu-mll/glue", "stsb")
    mine = dataset_ref({"task": None}, {"name": "reviews", "files": {"train": "/home/me/data/reviews.csv"}})
    assert (mine.id, mine.config, mine.on_hub) == ("reviews.csv", None, False)
    imdb = dataset_ref({}, {"name": "imdb", "hub_dataset": "stanfordnlp/imdb", "dataset": "stanfordnlp/imdb"})
    assert (imdb.id, imdb.config, imdb.on_hub) == ("stanfordnlp/imdb", None, True)
    saved = dataset_ref({}, {"name": "reviews", "dataset": "/home/me/ds/reviews/", "files": {"train": "train"}})
    assert (saved.id, saved.on_hub) == ("reviews", False)


# ---------------------------------------------------------------------------------------------------------------
# --push-to-hub, with huggingface_hub.HfApi stubbed (untested against the real hub)


class FakeApi:
    calls: list[tuple[str, dict]] = []
    uploaded: list[str] = []
    fail: BaseException | None = None

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        FakeApi.calls.append(("upload_folder", kwargs))
        FakeApi.uploaded = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        if FakeApi.fail is not None:
            raise FakeApi.fail


@pytest.fixture
def hub(monkeypatch):
    FakeApi.calls, FakeApi.uploaded, FakeApi.fail = [], [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    return FakeApi


def labelled(monkeypatch, *, failed: bool) -> None:
    """Train for real (4 steps, saved as they are), then label the run failed or not as the failure rule would: the
    4-step toy run is no model of anything, and the push tests are about what happens after the label."""
    import dataclasses

    import steadytune.trainer

    real = steadytune.trainer.train
    monkeypatch.setattr(steadytune.trainer, "train",
                        lambda *a, **k: dataclasses.replace(real(*a, **k), failed=failed))  # fmt: skip


def test_push_to_hub_uploads_the_saved_model_folder(tiny_model_dir, toy_files, tmp_path, capsys, hub, monkeypatch):
    labelled(monkeypatch, failed=False)
    out = tmp_path / "run"
    assert main(_train_argv(tiny_model_dir, toy_files, out, "--save-model", "--push-to-hub", "me/tiny",
                            "--hub-private")) == 0  # fmt: skip
    (create, kwargs), (upload, up) = hub.calls
    assert create == "create_repo" and kwargs == {"repo_id": "me/tiny", "repo_type": "model", "private": True,
                                                  "exist_ok": True}  # fmt: skip
    assert upload == "upload_folder" and up["repo_id"] == "me/tiny" and Path(up["folder_path"]) == out / "model"
    assert {"README.md", "config.json", "model.safetensors", "steadytune.json"} <= set(hub.uploaded)
    assert "pushed to          https://huggingface.co/me/tiny" in capsys.readouterr().out


def test_a_failed_push_is_exit_3_and_says_where_the_model_is(
    tiny_model_dir, toy_files, tmp_path, capsys, hub, monkeypatch
):
    labelled(monkeypatch, failed=False)
    hub.fail = ConnectionError("Failed to resolve 'huggingface.co'")
    out = tmp_path / "run"
    assert main(_train_argv(tiny_model_dir, toy_files, out, "--save-model", "--push-to-hub", "me/tiny")) == 3
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "Failed to resolve" in err[0]
    assert f"saved locally at {out / 'model'}" in err[0] and f"`hf upload me/tiny {out / 'model'} .`" in err[0]
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "README.md").is_file()


def test_a_failed_run_is_not_pushed(tiny_model_dir, toy_files, tmp_path, capsys, hub, monkeypatch):
    labelled(monkeypatch, failed=True)
    out = tmp_path / "run"
    assert main(_train_argv(tiny_model_dir, toy_files, out, "--save-model", "--push-to-hub", "me/tiny")) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "pushed" in line]
    assert hub.calls == [] and len(lines) == 1 and "nothing pushed to me/tiny: the run failed" in lines[0]
    assert f"`hf upload me/tiny {out / 'model'} .`" in lines[0] and (out / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--save-model", "--push-to-hub", "a/b/c"], "is not a hub repository id"),
        (["--push-to-hub", "me/tiny"], "--push-to-hub needs --save-model"),
        (["--save-model", "--hub-private"], "--hub-private needs --push-to-hub"),
        (["--save-model", "--push-to-hub", "me/tiny", "offline"], "offline mode is on"),
        (["--save-model", "--push-to-hub", "me/tiny", "no-token"], "needs a Hugging Face token"),
    ],
)
def test_push_problems_are_found_before_any_work(extra, message, tiny_model_dir, toy_files, tmp_path, capsys, hub,
                                                 monkeypatch):  # fmt: skip
    if "offline" in extra:
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    if "no-token" in extra:
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    extra = [a for a in extra if a not in ("offline", "no-token")]
    assert main(_train_argv(tiny_model_dir, toy_files, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists() and hub.calls == []


def test_fit_pushes_its_model_only_on_success(tmp_path, capsys, hub, monkeypatch):
    """cmd_fit's wiring, with `fit` itself replaced by one that writes `<out>/model` (test_fit runs the real one)."""
    import steadytune.fitting

    outcome = {"success": True}

    def fake_fit(config, out, **kwargs):
        (Path(out) / "model").mkdir(parents=True)
        (Path(out) / "model" / "README.md").write_text("card")
        return steadytune.fitting.FitResult(
            settings={}, config={}, data={"name": "toy"}, metric="accuracy",
            baselines={"test": {"score": 0.5, "predictor": "always 'neg'"}}, candidates=[], chosen="c00",
            success=outcome["success"], verdict="v", test={"accuracy": 0.9}, steps=1, full_steps=2,
        )  # fmt: skip

    monkeypatch.setattr(steadytune.fitting, "fit", fake_fit)
    argv = ["fit", "--train-file", "x.csv", "--workers", "1", "--quiet", "--push-to-hub", "me/fitted", "--json"]
    monkeypatch.setattr("steadytune.cli.runs.check_before_trials", lambda *a, **k: None)
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert [c[0] for c in hub.calls] == ["create_repo", "upload_folder"]
    assert Path(hub.calls[1][1]["folder_path"]) == tmp_path / "a" / "model" and hub.uploaded == ["README.md"]
    hub.calls.clear()
    outcome["success"] = False
    assert main([*argv, "--out", str(tmp_path / "b")]) == 1
    assert hub.calls == [] and "nothing was pushed to me/fitted" in capsys.readouterr().err
