"""One fine-tuning run on a tiny random model: determinism, seeds, schedule, checkpoints, records, divergence."""

from __future__ import annotations

import json
import math

import pytest
import torch

from steadytune import TrainConfig, train
from steadytune.data import load_user_data
from steadytune.errors import UserInputError
from steadytune.loop import clip_grad_norm, eval_steps


@pytest.fixture
def toy(toy_files):
    return load_user_data(toy_files["train"], validation=toy_files["validation"], test=toy_files["test"])


def _run(tiny_model_dir, toy, **kw):
    kw = {"lr": 1e-3, "epochs": 2, "batch_size": 8, "seed": 0, **kw}
    return train(data=toy, model=str(tiny_model_dir), **kw)


def test_same_seeds_give_identical_results(tiny_model_dir, toy):
    a = _run(tiny_model_dir, toy)
    b = _run(tiny_model_dir, toy)
    assert a.curve == b.curve and a.best == b.best and a.last == b.last


def test_seed_and_init_seed_are_separate(tiny_model_dir, toy):
    base = _run(tiny_model_dir, toy, seed=0)
    other_order = _run(tiny_model_dir, toy, seed=1, init_seed=0)
    other_head = _run(tiny_model_dir, toy, seed=0, init_seed=1)
    assert base.config["init_seed"] == 0
    # the first batch's loss depends on the head (init_seed) and on which examples come first (seed)
    assert other_order.curve[0]["loss"] != base.curve[0]["loss"]
    assert other_head.curve[0]["loss"] != base.curve[0]["loss"]
    assert other_order.curve != base.curve and other_head.curve != base.curve
    assert base.new_parameters == ["classifier.weight", "classifier.bias"]


def test_schedule_steps_and_evaluations(tiny_model_dir, toy):
    r = _run(tiny_model_dir, toy, epochs=3, batch_size=10, warmup_ratio=0.1, num_evals=4)
    steps_per_epoch = math.ceil(64 / 10)
    assert r.steps == r.total_steps == 3 * steps_per_epoch == 21
    assert [e["step"] for e in r.evals] == [6, 11, 16, 21]
    lrs = [row["lr"] for row in r.curve]
    warmup = math.ceil(0.1 * 21)
    assert lrs[0] == 0.0 and lrs[warmup] == pytest.approx(1e-3)  # linear warm-up to the peak
    assert all(x >= y for x, y in zip(lrs[warmup:], lrs[warmup + 1 :]))  # then linear decay
    assert lrs[-1] == pytest.approx(1e-3 / (21 - warmup))
    assert all(row["grad_norm"] > 0 for row in r.curve)
    # best checkpoint = the best validation score among the evaluations
    best_val = max(e["validation"]["accuracy"] for e in r.evals)
    assert r.best["validation"]["accuracy"] == best_val
    assert r.last["step"] == 21 and r.last["validation"] == r.evals[-1]["validation"]


def test_max_steps_overrides_epochs(tiny_model_dir, toy):
    r = _run(tiny_model_dir, toy, max_steps=5, epochs=100, num_evals=10)
    assert r.steps == 5 and [e["step"] for e in r.evals] == [1, 2, 3, 4, 5]


def test_eval_steps_spread_and_end_at_total():
    assert eval_steps(234, 10) == {24, 47, 71, 94, 117, 141, 164, 188, 211, 234}
    assert max(eval_steps(7, 10)) == 7 and len(eval_steps(7, 10)) == 7


def test_bertadam_differs_from_adamw(tiny_model_dir, toy):
    a = _run(tiny_model_dir, toy, optimizer="adamw", max_steps=3)
    b = _run(tiny_model_dir, toy, optimizer="bertadam", max_steps=3)
    assert a.curve[0] == b.curve[0]  # same start, then the updates differ
    assert a.curve[2]["loss"] != b.curve[2]["loss"]


def test_best_checkpoint_is_what_is_tested(tiny_model_dir, toy, monkeypatch):
    """When the best validation score comes before the end, the best test score comes from those weights."""
    import steadytune.loop as T

    real_evaluate = T.evaluate
    scores = iter([0.9, 0.1, 0.2, 0.3])  # validation: best at the first evaluation

    def fake_evaluate(model, data, *a, **k):
        m = real_evaluate(model, data, *a, **k)
        if data.split.name == "validation":
            m["accuracy"] = next(scores)
        return m

    monkeypatch.setattr(T, "evaluate", fake_evaluate)
    r = _run(tiny_model_dir, toy, num_evals=4, epochs=4)
    assert r.best["step"] == r.evals[0]["step"] and r.best["validation"]["accuracy"] == 0.9
    assert r.best["test"] is not None and r.last["test"] is not None


def test_divergence_is_a_result_not_an_exception(tiny_model_dir, toy, tmp_path):
    r = _run(tiny_model_dir, toy, lr=1e6, epochs=5, max_grad_norm=0, num_evals=20, out=tmp_path / "run")
    assert r.diverged and r.failed
    assert not math.isfinite(r.curve[-1]["loss"])
    assert r.last["test"] is None and r.steps < r.total_steps
    # the record is strict JSON: the NaN loss is written as null
    rows = [json.loads(line, parse_constant=pytest.fail) for line in (tmp_path / "run" / "curve.jsonl").open()]
    assert rows[-1]["loss"] is None and len(rows) == len(r.curve)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert metrics["diverged"] is True and metrics["test_last"] is None


def test_regression_run(tiny_model_dir, tmp_path):
    from conftest import write_rows

    rows = [{"a": f"the cat sat {'very ' * (i % 5)}", "b": "the mat", "score": (i % 5) + 0.5} for i in range(60)]
    data = load_user_data(write_rows(tmp_path / "r.jsonl", rows), text_columns=("a", "b"), label_column="score")
    r = train(data=data, model=str(tiny_model_dir), lr=1e-3, max_steps=4, batch_size=8)
    assert r.metric == "spearmanr" and r.majority_baseline == 0.0
    assert set(r.last["test"]) == {"pearson", "spearmanr", "mse", "loss"}


def test_output_folder_is_complete_and_atomic(tiny_model_dir, toy, tmp_path):
    out = tmp_path / "run"
    r = _run(tiny_model_dir, toy, max_steps=3, save_model=True, out=out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curve.jsonl", "metrics.json", "model"]
    config = json.loads((out / "config.json").read_text())
    assert config["versions"]["torch"] == torch.__version__ and config["seed"] == 0
    assert config["data"]["fingerprints"]["train"] == toy.train.fingerprint
    again = TrainConfig.from_dict(config)  # everything needed to rerun
    assert again.recipe.lr == 1e-3 and again.recipe.max_steps == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_last"] == r.test_last and metrics["failed"] == r.failed
    assert len((out / "curve.jsonl").read_text().splitlines()) == 3
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "tokenizer.json").is_file()
    assert not list(tmp_path.glob(".run.*"))  # no temporary folders left behind
    with pytest.raises(UserInputError, match="exists and is not empty"):
        _run(tiny_model_dir, toy, max_steps=1, out=out)
    _run(tiny_model_dir, toy, max_steps=2, out=out, overwrite=True)
    assert len((out / "curve.jsonl").read_text().splitlines()) == 2
    assert not (out / "model").exists()


def test_bad_config_values():
    with pytest.raises(UserInputError, match="unknown optimizer 'sgd'"):
        TrainConfig().with_overrides(optimizer="sgd")
    with pytest.raises(UserInputError, match="lr must be positive, got -1"):
        TrainConfig().with_overrides(lr=-1)
    with pytest.raises(UserInputError, match=r"warmup_ratio must be in \[0, 1\), got 1.5"):
        TrainConfig(recipe="adam+warmup_ratio=1.5")
    with pytest.raises(UserInputError, match="max_length must be positive, got 0"):
        TrainConfig(max_length=0)


def test_unknown_model_is_a_clear_error(toy):
    with pytest.raises(UserInputError, match="cannot load model 'no/such-model-here'"):
        train(data=toy, model="no/such-model-here", max_steps=1)


def test_metric_override_picks_checkpoints_and_failure(tiny_model_dir, toy):
    r = _run(tiny_model_dir, toy, metric="matthews_correlation", max_steps=4, num_evals=2)
    assert r.metric == "matthews_correlation" and r.majority_baseline == 0.0
    assert r.test_last == r.last["test"]["matthews_correlation"]
    assert r.failed == (r.test_last <= 0.0)
    with pytest.raises(UserInputError, match="metric 'spearmanr' does not apply"):
        _run(tiny_model_dir, toy, metric="spearmanr", max_steps=1)


def test_training_learns_a_learnable_task(tiny_model_dir, toy):
    """The label is a keyword's presence: a working loop must get (nearly) all of validation and test right."""
    r = _run(tiny_model_dir, toy, lr=5e-3, epochs=8)
    first, last = r.curve[0]["loss"], sum(row["loss"] for row in r.curve[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    assert r.best["validation"]["accuracy"] >= 0.9 and r.test_best >= 0.9
    assert not r.failed


def test_no_host_sync_per_training_step(tiny_model_dir, toy, monkeypatch):
    """The loop reads its per-step scalars back every SYNC_EVERY steps (and at evaluations), not every step.

    Counted: reads of a tensor's value (item, tolist, float) made by the training loop itself. (The optimizer's
    `step` counters live on the CPU, as torch.optim keeps them, so reading those is no device round-trip; nor is
    the gradient norm's read in `clip_grad_norm`, which happens only on the CPU: checked in the clipping tests.)
    """
    import traceback

    import steadytune.loop as T

    reads = []
    for name in ("item", "tolist", "__float__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **k):
            caller = traceback.extract_stack(limit=2)[0]
            if caller.filename == T.__file__ and caller.name != "clip_grad_norm":
                reads.append(caller.lineno)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    r = _run(tiny_model_dir, toy, max_steps=4 * T.SYNC_EVERY, num_evals=2, batch_size=4)
    monkeypatch.undo()
    assert r.steps == 4 * T.SYNC_EVERY and len(r.curve) == r.steps and len(r.evals) == 2
    assert len(reads) == 4, reads  # one read-back per SYNC_EVERY steps; the evaluations fall on those steps


def test_divergence_ends_the_curve_at_the_first_bad_step(tiny_model_dir, toy):
    r = _run(tiny_model_dir, toy, lr=1e6, epochs=5, max_grad_norm=0, num_evals=20)
    bad = [i for i, p in enumerate(r.curve) if not (math.isfinite(p["loss"]) and math.isfinite(p["grad_norm"]))]
    assert bad == [len(r.curve) - 1]  # recorded up to and including the first non-finite step, nothing after
    assert r.steps == len(r.curve) - 1 and r.last["step"] == r.steps
    assert all(e["step"] <= r.steps for e in r.evals)  # no evaluation of diverged weights


def test_training_on_cpu_takes_the_fast_path_and_leaves_the_allocator(tiny_model_dir, toy, monkeypatch):
    import steadytune.fastpath as fastpath

    calls = {"dropout": 0, "attention": 0}
    real_dropout, real_attention = fastpath.dropout, fastpath.attention

    def counting_dropout(*args, **kwargs):
        calls["dropout"] += 1
        return real_dropout(*args, **kwargs)

    def counting_attention(*args, **kwargs):
        calls["attention"] += 1
        return real_attention(*args, **kwargs)

    projection_calls = {"training": 0, "evaluation": 0}
    real_projection = fastpath._CPUFastPath._projection

    def counting_projection(self, *args, **kwargs):
        projection_calls["training" if torch.is_grad_enabled() else "evaluation"] += 1
        return real_projection(self, *args, **kwargs)

    retained = []
    monkeypatch.setattr(fastpath, "dropout", counting_dropout)
    monkeypatch.setattr(fastpath, "attention", counting_attention)
    monkeypatch.setattr(fastpath._CPUFastPath, "_projection", counting_projection)
    monkeypatch.setattr(fastpath, "retain_freed_memory", lambda: retained.append(True))
    r = _run(tiny_model_dir, toy, max_steps=2, num_evals=1)
    assert r.steps == 2 and retained == []  # a process-wide setting: the CLI's and workers' to make, not train()'s
    assert r.config["fast_path"] is True and r.config["compact_embedding"] is True
    # 2 steps × 2 layers of attention; dropout: embeddings, 2 × (attention probs, attention out, FFN out), head
    assert calls["attention"] == 2 * 2
    assert calls["dropout"] == 2 * (1 + 2 * 3 + 1)
    # q, k and v of both layers go through the fused projections in training and in every evaluation batch
    assert projection_calls["training"] == 2 * 2 * 3
    assert projection_calls["evaluation"] > 0 and projection_calls["evaluation"] % (2 * 3) == 0


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0, float("inf")])
def test_clipping_is_torchs_bit_for_bit_and_skips_only_the_multiply_by_one(max_norm, monkeypatch):
    def params(nan: bool = False):
        gen = torch.Generator().manual_seed(0)
        ps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in [(7, 3), (5,), (2, 2, 2)]]
        for p in ps:
            p.grad = torch.randn(p.shape, dtype=torch.float64, generator=gen)
        if nan:
            ps[1].grad[2] = float("nan")
        return ps

    for nan in (False, True):
        ref, ours, on_gpu = params(nan), params(nan), params(nan)
        ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)
        versions = [p.grad._version for p in ours]
        norm = clip_grad_norm(ours, max_norm, skip_unit_scale=True)
        assert torch.equal(norm, ref_norm) or (nan and norm.isnan() and ref_norm.isnan())
        for a, b in zip(ours, ref):
            assert torch.equal(a.grad, b.grad) or (nan and a.grad.isnan().any())
        clipped = not nan and ref_norm.item() > max_norm
        # scaled in place exactly when torch's factor is not 1: the version counter tells a multiply happened
        assert [p.grad._version > v for p, v in zip(ours, versions)] == [clipped or nan] * 3

        # without the skip (how a GPU run clips) it is torch's function and reads nothing back
        monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("read the norm back"))
        assert torch.equal(clip_grad_norm(on_gpu, max_norm), ref_norm) or nan
        monkeypatch.undo()
