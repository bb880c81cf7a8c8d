"""Experiment tracking (`report_to`): what TensorBoard, MLflow and W&B hold, read back with each library's own
reader, against the run's own record (curve.jsonl, metrics.json), and that tracking changes no score."""

from __future__ import annotations

import glob
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import steadytune.trainer as trainer
from steadytune.cli import main
from steadytune.config import NOT_IDENTITY, TRACKING_FIELDS, TrainConfig
from steadytune.data import load_user_data
from steadytune.errors import UserInputError
from steadytune.fitting import FitSettings, candidate_configs, fit
from steadytune.study import LocalExecutor, Study, load_records
from steadytune.tracking import hyperparameters, parse_report_to, run_folder_name
from steadytune.trainer import train

# Both are in the dev extra; W&B is tested where it is installed.
pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

# 24 steps of batch 8 on the toy task: a read-back at steps 16 and 24 (loop.SYNC_EVERY = 16) and 3 evaluations.
RUN = {"lr": 1e-3, "batch_size": 8, "max_steps": 24, "num_evals": 3, "seed": 0}


@pytest.fixture(autouse=True)
def _no_outside_trackers(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_PROJECT", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def toy(toy_files):
    return load_user_data(toy_files["train"], validation=toy_files["validation"], test=toy_files["test"])


def _curve(run_folder: Path) -> list[dict]:
    return [json.loads(line) for line in (run_folder / "curve.jsonl").read_text().splitlines()]


def _events(log_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _series(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _f32(x: float) -> float:
    return float(np.float32(x))


def _mlflow(folder: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def _mlflow_runs(client: MlflowClient) -> dict:
    experiment = client.get_experiment_by_name("steadytune")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _without_tracking(record: dict) -> dict:
    record = {k: v for k, v in record.items() if k not in ("timings", "versions")}
    record["config"] = {k: v for k, v in record["config"].items() if k not in TRACKING_FIELDS}
    return record


def test_report_to_values():
    assert parse_report_to(None) == parse_report_to("none") == parse_report_to(["none"]) == "none"
    assert parse_report_to(" TensorBoard, mlflow,tensorboard ") == "tensorboard,mlflow"
    for contradiction in (["wandb", "none"], "none,tensorboard"):  # issue 30: accepted, and tensorboard written
        with pytest.raises(UserInputError, match="names none beside a tracker"):
            parse_report_to(contradiction)
    for empty in ("", "tensorboard,", ",", []):
        with pytest.raises(UserInputError, match="has an empty name"):
            parse_report_to(empty)
    assert TrainConfig(report_to=("mlflow",)).report_to == "mlflow"
    with pytest.raises(UserInputError, match="unknown tracker 'comet'"):
        TrainConfig(report_to="tensorboard,comet")
    assert TRACKING_FIELDS <= NOT_IDENTITY  # a study's identity leaves them out
    assert run_folder_name("rte/adam+reinit:2/seed-0") == Path("rte", "adam+reinit_2", "seed-0")
    assert hyperparameters({"a": None, "b": (1, 2), "c": 0.5, "d": True}) == {"a": "None", "b": "1,2", "c": 0.5,
                                                                            "d": True}  # fmt: skip


def test_tensorboard_and_mlflow_hold_the_curve_evals_final_metrics_and_config(tiny_model_dir, toy, tmp_path):
    out = tmp_path / "runs" / "toy"
    result = train(data=toy, model=str(tiny_model_dir), report_to="tensorboard,mlflow", out=out, **RUN)
    curve, metrics = _curve(out), json.loads((out / "metrics.json").read_text())
    assert [p["step"] for p in curve] == list(range(1, 25))
    m = result.metric

    # TensorBoard: beside the run folder, named after it; scalars are float32 (loss and grad norm already are)
    events = _events(tmp_path / "runs" / "tensorboard" / "toy")
    assert _series(events, "train/loss") == [(p["step"], p["loss"]) for p in curve]
    assert _series(events, "train/grad_norm") == [(p["step"], p["grad_norm"]) for p in curve]
    assert _series(events, "train/learning_rate") == [(p["step"], _f32(p["lr"])) for p in curve]
    assert _series(events, f"eval/{m}") == [(e["step"], _f32(e["validation"][m])) for e in metrics["evals"]]
    assert [e["step"] for e in metrics["evals"]] == [8, 16, 24]
    assert _series(events, f"best/test/{m}") == [(24, _f32(metrics["best"]["test"][m]))]
    assert _series(events, f"last/test/{m}") == [(24, _f32(metrics["test_last"]))]
    assert _series(events, "final/failed") == [(24, float(metrics["failed"]))]
    assert _series(events, "final/baseline") == [(24, _f32(metrics["baseline"]["score"]))]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info.hparams
    assert start["lr"].number_value == 1e-3 and start["recipe"].string_value == result.config["recipe"]
    assert start["report_to"].string_value == "tensorboard,mlflow" and start["init_seed"].number_value == 0
    assert set(start) == set(result.config)

    # MLflow: the SQLite store beside the run folder, float64 values exactly as in the record
    client = _mlflow(tmp_path / "runs")
    (run,) = _mlflow_runs(client).values()
    assert run.info.run_name == "toy" and run.info.status == "FINISHED"
    rid = run.info.run_id
    assert _history(client, rid, "train/loss") == [(p["step"], p["loss"]) for p in curve]
    assert _history(client, rid, "train/grad_norm") == [(p["step"], p["grad_norm"]) for p in curve]
    assert _history(client, rid, "train/learning_rate") == [(p["step"], p["lr"]) for p in curve]
    assert _history(client, rid, f"eval/{m}") == [(e["step"], e["validation"][m]) for e in metrics["evals"]]
    assert run.data.metrics[f"best/test/{m}"] == metrics["test_best"]
    assert run.data.metrics[f"last/validation/{m}"] == metrics["last"]["validation"][m]
    assert run.data.metrics["final/failed"] == float(metrics["failed"])
    assert run.data.metrics["final/majority_baseline"] == metrics["majority_baseline"]
    assert run.data.params == {k: str(v) for k, v in hyperparameters(result.config).items()}

    # tracking changes no score: the same run without it has the same record, but for where it was logged
    plain = train(data=toy, model=str(tiny_model_dir), **RUN)
    assert plain.config["report_to"] == "none"
    assert _without_tracking(plain.to_dict()) == _without_tracking(result.to_dict())


def test_a_missing_extra_is_one_line_before_any_work(tiny_model_dir, toy_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it raises ImportError
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setattr(trainer, "prepare", lambda *a, **k: pytest.fail("training started"))
    files = ["--train-file", str(toy_files["train"]), "--model", str(tiny_model_dir), "--quiet"]
    for argv, extra in (
        (["train", *files, "--report-to", "tensorboard", "--out", str(tmp_path / "run")], "tensorboard"),
        (["study", *files, "--report-to", "mlflow,wandb", "--out", str(tmp_path / "s"), "--seeds", "1"], "wandb"),
        (["fit", *files, "--report-to", "wandb", "--out", str(tmp_path / "f")], "wandb"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"pip install 'steadytune[{extra}]'" in err, err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["test.csv", "train.csv", "validation.csv"]  # nothing new
    with pytest.raises(UserInputError, match="is a file"):
        train(train_file=str(toy_files["train"]), report_to="mlflow", tracking_dir=str(toy_files["train"]))


def test_a_resumed_run_continues_the_same_tracker_runs_without_repeating_a_step(tiny_model_dir, toy, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    real, calls = trainer.save_checkpoint, []

    def killed_at_the_second_checkpoint(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # steps 1-16 are logged by now, the checkpoint on disk is step 8's
            raise KeyboardInterrupt
        real(*args, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", killed_at_the_second_checkpoint)
    out, kw = tmp_path / "runs" / "toy", {"data": toy, "model": str(tiny_model_dir), **RUN}
    with pytest.raises(KeyboardInterrupt):
        train(report_to="tensorboard,mlflow", out=out, checkpoint_every=8, **kw)
    client = _mlflow(tmp_path / "runs")
    (run,) = _mlflow_runs(client).values()
    assert run.info.status == "FAILED" and len(_history(client, run.info.run_id, "train/loss")) == 16
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    result = train(report_to="tensorboard,mlflow", out=out, checkpoint_every=8, resume=True, **kw)
    curve = _curve(out)
    assert _without_tracking(result.to_dict()) == _without_tracking(train(**kw).to_dict())  # the same trajectory
    (again,) = _mlflow_runs(client).values()
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert _history(client, run.info.run_id, "train/loss") == [(p["step"], p["loss"]) for p in curve]
    events = _events(tmp_path / "runs" / "tensorboard" / "toy")
    assert _series(events, "train/loss") == [(p["step"], p["loss"]) for p in curve]  # purged, then logged on


def test_a_study_logs_one_tracker_run_per_trial(tiny_model_dir, toy_files, tmp_path):
    files = {"train_file": str(toy_files["train"]), "validation_file": str(toy_files["validation"]),
             "test_file": str(toy_files["test"])}  # fmt: skip
    kw = {"recipes": "bertadam+lr=1e-3+max_steps=4,adam+lr=1e-3+max_steps=4", "seeds": 1,
          "model": str(tiny_model_dir), "num_evals": 1, **files}  # fmt: skip
    out = tmp_path / "s"
    assert Study(out, report_to="tensorboard,mlflow", **kw).run(workers=1, progress=False)["ran"] == 2
    records = {f"{r['task']}/{r['recipe']}/seed-{r['seed']}": r for r in load_records(out)}
    assert sorted(n.split("/", 1)[1] for n in records) == ["adam+lr=1e-3+max_steps=4/seed-0",
                                                           "bertadam+lr=1e-3+max_steps=4/seed-0"]  # fmt: skip
    client = _mlflow(out)
    runs = _mlflow_runs(client)
    assert sorted(runs) == sorted(records)
    for name, record in records.items():
        assert runs[name].info.status == "FINISHED"
        expected = [(p["step"], p["loss"]) for p in record["curve"]]
        assert _history(client, runs[name].info.run_id, "train/loss") == expected
        assert _series(_events(out / "tensorboard" / run_folder_name(name)), "train/loss") == expected
    # the same study without tracking: its identity is the same, so every trial counts as done
    assert Study(out, **kw).run(workers=1, progress=False)["skipped"] == 2


def test_a_fit_logs_each_candidate_as_one_run_over_its_stages(tiny_model_dir, toy, toy_files, tmp_path):
    config = TrainConfig(model=str(tiny_model_dir), report_to="tensorboard,mlflow", num_evals=2,
                         train_file=str(toy_files["train"]), validation_file=str(toy_files["validation"]),
                         test_file=str(toy_files["test"]))  # fmt: skip
    config = config.with_overrides(batch_size=8, max_steps=8)
    settings = FitSettings(candidates=3, lrs=(1e-3,), check_at=(0.5,), keep=1, families=("finetune",))
    result = fit(config, tmp_path / "f", settings=settings, data=toy, executor=LocalExecutor(1))
    configs = candidate_configs(config, settings)
    client = _mlflow(tmp_path / "f")
    runs = _mlflow_runs(client)
    assert len(runs) == 3
    statuses = {c["name"]: c["status"] for c in result.candidates}
    for c in result.candidates:
        name = f"{toy.name}/{configs[c['name']].recipe.name}/seed-{c['seed']}"
        steps = [s for s, _ in _history(client, runs[name].info.run_id, "train/loss")]
        tb = [s for s, _ in _series(_events(tmp_path / "f" / "tensorboard" / run_folder_name(name)), "train/loss")]
        if statuses[c["name"]] == "finished":  # both stages on one step axis, each step once
            curve = _curve(tmp_path / "f" / "candidates" / c["name"] / "run")
            assert steps == tb == [p["step"] for p in curve] == list(range(1, 9))
            assert runs[name].info.status == "FINISHED"
        else:  # stopped at the check (step 4): the steps it read back by then
            assert steps == tb == list(range(1, 5)) and runs[name].info.status == "KILLED"


def test_a_fits_probe_and_contrastive_candidates_are_tracked_too(tiny_model_dir, toy, toy_files, tmp_path):
    """Each family candidate is one tracker run `<data>/<family>` beside the fine-tuning ones: the contrastive
    candidate's pair-step losses and, for both, the final metrics of its record."""
    config = TrainConfig(model=str(tiny_model_dir), report_to="tensorboard,mlflow", num_evals=2,
                         train_file=str(toy_files["train"]), validation_file=str(toy_files["validation"]),
                         test_file=str(toy_files["test"]))  # fmt: skip
    settings = FitSettings(candidates=1, keep=1, families=("probe", "contrastive"))
    result = fit(config, tmp_path / "f", settings=settings, data=toy, executor=LocalExecutor(1))
    records = {c["name"]: c for c in result.candidates}
    client = _mlflow(tmp_path / "f")
    runs = _mlflow_runs(client)
    assert {f"{toy.name}/probe", f"{toy.name}/contrastive"} <= set(runs)
    curve = json.loads((tmp_path / "f" / "fit.json").read_text())  # the contrastive record's losses, as stored
    losses = _history(client, runs[f"{toy.name}/contrastive"].info.run_id, "train/loss")
    assert len(losses) == records["contrastive"]["best"]["step"] > 0
    for family in ("probe", "contrastive"):
        run = runs[f"{toy.name}/{family}"]
        assert run.info.status == "FINISHED" and run.data.params["family"] == family
        test = records[family]["best"]["test"]["accuracy"]
        assert run.data.metrics["best/test/accuracy"] == pytest.approx(test)
        tb = _series(_events(tmp_path / "f" / "tensorboard" / run_folder_name(f"{toy.name}/{family}")),
                     "best/test/accuracy")  # fmt: skip
        assert tb and tb[-1][1] == pytest.approx(_f32(test))
    assert curve["chosen"] in records


def _wandb_records(path: str) -> list:
    """The records of a W&B run file (`run-<id>.wandb`): LevelDB-log framing (32 KiB blocks of checksum, length,
    kind) of `wandb_internal_pb2.Record` protobufs, after a 7-byte header."""
    from wandb.proto import wandb_internal_pb2

    raw, block, pos, records, buf = Path(path).read_bytes(), 32768, 7, [], b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if length == 0 and kind == 0:
            break
        buf, pos = buf + raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            records.append(record)
            buf = b""
    return records


def test_wandb_offline_run_holds_the_curve(tiny_model_dir, toy, tmp_path):
    pytest.importorskip("wandb")
    out = tmp_path / "runs" / "toy"
    result = train(data=toy, model=str(tiny_model_dir), report_to="wandb", out=out, **RUN)
    (path,) = glob.glob(str(tmp_path / "runs" / "wandb" / "offline-run-*" / "run-*.wandb"))
    for _ in range(100):  # wandb's service may still be writing the file when finish() returns: up to 10 s
        records = _wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.1)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.display_name == "toy" and run.project == "steadytune"
    config = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in run.config.update}
    assert config["report_to"] == "wandb" and config["lr"] == 1e-3
    history = [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]  # fmt: skip
    curve = _curve(out)
    assert [(h["_step"], h["train/loss"], h["train/learning_rate"]) for h in history] == [
        (p["step"], p["loss"], p["lr"]) for p in curve]  # fmt: skip
    assert history[-1][f"best/test/{result.metric}"] == result.test_best
    assert [(h["_step"], h[f"eval/{result.metric}"]) for h in history if f"eval/{result.metric}" in h] == [
        (e["step"], e["validation"][result.metric]) for e in result.evals]  # fmt: skip


@pytest.mark.parametrize(("uri", "message"), [("garbage://nowhere", "is not a store MLflow can log to"),
                                              ("file:///tmp/mlruns", "is MLflow's file store")])  # fmt: skip
def test_a_tracking_uri_mlflow_cannot_use_is_refused_before_any_work(uri, message, tiny_model_dir, toy_files,
                                                                      tmp_path, capsys, monkeypatch):  # fmt: skip
    """Issue 30: MLFLOW_TRACKING_URI=garbage://nowhere trained for 30 s, then ended in a 50-line traceback."""
    from steadytune.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "run"
    argv = ["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]), "--out", str(out),
            "--report-to", "mlflow", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
    assert not out.exists() and not (tmp_path / "mlruns").exists()
