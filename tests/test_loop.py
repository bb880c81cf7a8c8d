"""The run's three steps (prepare → loop → finish): the loop's state saved mid-epoch and restored continues the
identical trajectory; the speed paths are settings, recorded, and can be turned off; the allocator is the CLI's."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from torch import nn

from steadytune import TrainConfig, train
from steadytune.data import load_user_data
from steadytune.loop import checkpoint, resume, start, train_steps
from steadytune.trainer import finish, prepare
from steadytune.vocab import RowsEmbedding


@pytest.fixture
def toy(toy_files):
    return load_user_data(toy_files["train"], validation=toy_files["validation"], test=toy_files["test"])


def _config(tiny_model_dir, **kw) -> TrainConfig:
    # 64 examples in batches of 8: 8 steps an epoch, 16 in all; validation at steps 4, 8, 12 and 16
    kw = {"recipe": "adam+lr=1e-3+reinit:1+mixout:0.2+fp32", "epochs": 2, "batch_size": 8, "num_evals": 4, **kw}
    return TrainConfig(model=str(tiny_model_dir), seed=3).with_overrides(**kw)


def _outcome(result, model: nn.Module) -> tuple:
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    return result.curve, result.evals, result.best, result.last, result.steps, weights


def _same(a: tuple, b: tuple) -> None:
    assert a[:5] == b[:5]  # curves, evaluations, best and last checkpoints, steps: equal floats, not close ones
    assert a[5].keys() == b[5].keys()
    assert all(torch.equal(a[5][k], b[5][k]) for k in a[5])


def test_state_saved_mid_epoch_and_restored_continues_the_identical_trajectory(tiny_model_dir, toy):
    config = _config(tiny_model_dir)
    prep = prepare(config, toy)
    state = start(prep.run)
    train_steps(prep.run, state)
    reference = _outcome(finish(prep, state), prep.run.model)
    assert len(reference[0]) == 16 and reference[2]["step"] is not None
    assert prep.surgery["mixout"]  # Mixout draws from torch's generator at every step: a stream to restore

    # step 5: mid-epoch, with 5 scalars not yet read back, after one evaluation; step 11: mid-way through epoch 2
    for pause in (5, 11):
        prep = prepare(config, toy)
        state = start(prep.run)
        train_steps(prep.run, state, until=pause)
        assert state.step == pause and 0 < state.position < len(state.batches) and state.pending
        saved = checkpoint(prep.run, state)
        train_steps(prep.run, state)  # training on does not change what was saved
        _same(_outcome(finish(prep, state), prep.run.model), reference)

        torch.manual_seed(12345)  # another stream now: resume must put the saved one back
        fresh = prepare(config, toy)
        restored = resume(fresh.run, saved)
        assert (restored.step, restored.epoch, restored.position) == (pause, 1 + (pause > 8), pause - 8 * (pause > 8))
        train_steps(fresh.run, restored)
        _same(_outcome(finish(fresh, restored), fresh.run.model), reference)


def test_checkpoint_is_a_copy(tiny_model_dir, toy):
    prep = prepare(_config(tiny_model_dir), toy)
    state = start(prep.run)
    train_steps(prep.run, state, until=3)
    saved = checkpoint(prep.run, state)
    before = {k: v.clone() for k, v in saved["model"].items()}
    train_steps(prep.run, state, until=6)
    assert saved["loop"]["step"] == 3 and len(saved["loop"]["pending"]) == 3
    assert all(torch.equal(before[k], saved["model"][k]) for k in before)


def test_train_is_prepare_loop_finish(tiny_model_dir, toy):
    config = _config(tiny_model_dir)
    prep = prepare(config, toy)
    state = start(prep.run)
    train_steps(prep.run, state)
    a = _outcome(finish(prep, state), prep.run.model)
    r = train(config, data=toy)
    assert (r.curve, r.evals, r.best, r.last) == a[:4]


def test_finish_undoes_the_surgery_and_hands_on_the_best_state(tiny_model_dir, toy):
    from steadytune.mixout import MixLinear

    prep = prepare(_config(tiny_model_dir), toy)
    model = prep.run.model
    assert isinstance(model.get_input_embeddings(), RowsEmbedding)
    assert any(isinstance(m, MixLinear) for m in model.modules())
    state = start(prep.run)
    train_steps(prep.run, state)
    finish(prep, state)
    assert type(model.get_input_embeddings()) is nn.Embedding
    assert model.get_input_embeddings().num_embeddings == model.config.vocab_size
    assert not any(isinstance(m, MixLinear) for m in model.modules())


def _fastpath_calls(monkeypatch) -> dict[str, int]:
    import steadytune.fastpath as fastpath

    calls = {"dropout": 0, "attention": 0}
    for name in calls:
        real = getattr(fastpath, name)

        def counting(*args, _name=name, _real=real, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(fastpath, name, counting)
    return calls


def test_fast_path_off_trains_with_torchs_own_dropout_and_attention(tiny_model_dir, toy, monkeypatch):
    calls = _fastpath_calls(monkeypatch)
    off = train(_config(tiny_model_dir, recipe="adam+lr=1e-3", max_steps=4), data=toy, fast_path=False)
    assert calls == {"dropout": 0, "attention": 0} and off.config["fast_path"] is False
    assert (
        train(_config(tiny_model_dir, recipe="adam+lr=1e-3", max_steps=4), data=toy, fast_path=False).curve
        == off.curve
    )
    on = train(_config(tiny_model_dir, recipe="adam+lr=1e-3", max_steps=4), data=toy)
    assert calls["dropout"] > 0 and calls["attention"] > 0 and on.config["fast_path"] is True
    assert on.curve != off.curve  # other dropout masks: the same distribution, another random stream


def test_compact_embedding_is_a_setting_and_recorded_as_it_ran(tiny_model_dir, toy):
    prep = prepare(_config(tiny_model_dir, compact_embedding=False), toy)
    embedding = prep.run.model.get_input_embeddings()
    assert type(embedding) is nn.Embedding and embedding.num_embeddings == prep.run.model.config.vocab_size
    assert prep.settings["compact_embedding"] is False
    assert prepare(_config(tiny_model_dir), toy).settings["compact_embedding"] is True
    # plain weight decay moves every row: the dense embedding, whatever the setting says
    assert prepare(_config(tiny_model_dir, recipe="adam+wd"), toy).settings["compact_embedding"] is False
    dense = train(_config(tiny_model_dir, max_steps=6), data=toy, compact_embedding=False)
    compact = train(_config(tiny_model_dir, max_steps=6), data=toy)
    assert dense.config["compact_embedding"] is False and compact.config["compact_embedding"] is True
    for a, b in zip(dense.curve, compact.curve):  # the same computation (exact in float64: tests/test_vocab.py)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_the_allocator_setting_is_the_cli_and_the_workers_not_the_library(tiny_model_dir, toy_files, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    import steadytune.fastpath as fastpath
    from steadytune.cli import main
    from steadytune.study.executors import init_worker

    calls = []
    monkeypatch.setattr(fastpath, "retain_freed_memory", lambda: calls.append(1) or True)
    data = ["--train-file", str(toy_files["train"]), "--validation-file", str(toy_files["validation"]),
            "--test-file", str(toy_files["test"])]  # fmt: skip
    train(
        model=str(tiny_model_dir), max_steps=1, **{k[2:].replace("-", "_"): v for k, v in zip(data[::2], data[1::2])}
    )
    assert calls == []
    assert main(["train", "--model", str(tiny_model_dir), *data, "--max-steps", "1", "--quiet", "--json"]) in (0, 1)
    assert calls == [1]
    threads = torch.get_num_threads()
    init_worker(1)
    torch.set_num_threads(threads)
    assert calls == [1, 1]


def test_speed_paths_off_from_the_cli(tiny_model_dir, toy_files, capsys):
    from steadytune.cli import main

    argv = ["train", "--model", str(tiny_model_dir), "--train-file", str(toy_files["train"]), "--validation-file",
            str(toy_files["validation"]), "--test-file", str(toy_files["test"]), "--max-steps", "2", "--quiet",
            "--json"]  # fmt: skip
    assert main([*argv, "--no-fast-path", "--no-compact-embedding"]) in (0, 1)
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["fast_path"] is False and config["compact_embedding"] is False
    assert main(argv) in (0, 1)
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["fast_path"] is True and config["compact_embedding"] is True


def test_a_store_from_before_the_speed_settings_is_resumed_and_they_are_part_of_its_identity(
    tiny_model_dir, toy_files, tmp_path
):
    from steadytune import Study
    from steadytune.errors import UserInputError

    files = {f"{k}_file": str(toy_files[k]) for k in ("train", "validation", "test")}
    kw = {"model": str(tiny_model_dir), "recipes": "adam+lr=1e-3+max_steps=2", "seeds": 1, **files}
    out = tmp_path / "study"
    assert Study(out, **kw).run(progress=False)["ran"] == 1
    con = sqlite3.connect(out / "study.sqlite")
    identity = json.loads(con.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()[0])
    assert identity["settings"]["fast_path"] is True
    for key in ("fast_path", "compact_embedding"):  # as a 0.6.0 store has it
        del identity["settings"][key]
    with con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'identity'", (json.dumps(identity),))
    con.close()
    assert Study(out, **kw).run(progress=False) == {"total": 1, "skipped": 1, "ran": 0, "errors": 0}
    with pytest.raises(UserInputError, match="other settings fast_path"):
        Study(out, **kw, fast_path=False).run(progress=False)


def test_a_state_no_update_moved_is_never_the_best_checkpoint():
    """Issue 29: the warm-up's first step has lr 0, so the model evaluated after it is the untrained one; on a few
    validation rows it won, and `train --save-model` wrote the encoder with its random head. A moved state beats it
    whatever the scores; with nothing moved yet, the unmoved one is all there is."""
    from types import SimpleNamespace

    from steadytune.loop import LoopState, _validate

    scores = iter([0.9, 0.6, 0.7, 0.65])
    model = torch.nn.Linear(1, 1)
    run = SimpleNamespace(evaluate=lambda split: {"accuracy": next(scores)}, validation=None, metric="accuracy",
                          model=model)  # fmt: skip
    state = LoopState(order=torch.Generator())
    state.curve.append({"step": 1, "loss": 0.7, "grad_norm": 1.0, "lr": 0.0})
    state.step = 1
    _validate(run, state)  # 0.9, unmoved: kept for now (nothing else)
    assert state.best == 0
    for step, lr in ((2, 1e-4), (3, 5e-5), (4, 0.0)):
        state.curve.append({"step": step, "loss": 0.6, "grad_norm": 1.0, "lr": lr})
        state.step = step
        _validate(run, state)
    assert state.best == 2 and state.best_eval["step"] == 3  # 0.7 moved beats 0.9 unmoved; 0.65 at lr 0 is moved too
