"""The candidate families `fit` compares (`FitSettings.families`), beside the fine-tuning candidates of `search`:

- `probe`: the encoder frozen, its sentence features pooled as it was trained to pool them, and a scikit-learn head
  whose regularisation is chosen by cross-validation on the training rows (`steadytune.probe`). Seconds on a few
  hundred rows. SST-2 with all-MiniLM-L6-v2, scored on all 872 dev rows: 0.69-0.72 from 64 training rows, where
  the default `train` scored 0.53-0.56 (docs/results/small-data).
- `finetune`: the (seed, learning rate) candidates of the successive-halving search (`search`).

A probe is one candidate, `probe`, stored in the fit's store like a finished stage (`probe@end`), so a rerun or
`rejudge` reads it instead of computing it again; its model goes where a candidate's model goes
(`<out>/candidates/probe/run/model`). It is picked, like any candidate, by its validation score, and judged by the
same verdict on the test split: the family is one more choice the test rows took no part in.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..data import TaskData
from ..files import atomic_folder, to_json
from ..metrics import Baseline, compute_metrics, failure, majority_baseline
from ..record import library_versions

__all__ = ["PROBE", "run_probe"]

# The probe candidate's name (its stage key in the store is PROBE + "@end").
PROBE = "probe"


def run_probe(config: TrainConfig, data: TaskData, *, metric: str, test_base: Baseline, out: Path) -> dict[str, Any]:
    """Fit the probe on the training split, score it on validation and test, save its model to
    `<out>/candidates/probe/run/model` (safetensors and steadytune.json; replaced whole or not at all), and return
    its record, shaped as a finished run's (`steadytune.record.RunResult`) with `"family": "probe"`."""
    from ..models import load_model, load_tokenizer, quiet_transformers, resolve_model
    from ..probe import ENCODER_DIR, ProbeModel, embed, fit_head, pooling_of

    started = time.perf_counter()
    regression = data.num_labels == 1
    classifier, _ = load_model(config.model, label_names=data.label_names, trust_remote_code=config.trust_remote_code)
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    encoder = classifier.base_model
    pooling = pooling_of(resolve_model(config.model), encoder)
    features = {
        name: embed(encoder, tokenizer, getattr(data, name), pooling, max_length=config.max_length,
                    batch_size=config.eval_batch_size)
        for name in ("train", "validation", "test")
    }  # fmt: skip
    labels = {name: np.asarray(getattr(data, name).labels) for name in features}
    head = fit_head(features["train"], labels["train"], regression=regression, seed=config.seed)
    scores = {}
    for name in ("validation", "test"):
        predicted = head.predict(features[name])
        scores[name] = compute_metrics(predicted, labels[name], num_labels=data.num_labels)
    model = ProbeModel.from_head(encoder, pooling, head, num_labels=data.num_labels, label_names=data.label_names)
    with atomic_folder(out / "candidates" / PROBE / "run" / "model") as tmp, quiet_transformers():
        model.save(tmp)
        tokenizer.save_pretrained(tmp / ENCODER_DIR)
        (tmp / "steadytune.json").write_text(to_json({
            "text_columns": data.summary()["text_columns"], "label_names": data.label_names,
            "max_length": config.max_length, "metric": metric, **model.meta(),
        }))  # fmt: skip
    test = scores["test"]
    why = failure(test.get(metric), test_base, mse=test.get("mse"))
    chosen = {"C": float(head.C_[0])} if not regression else {"alpha": float(head.alpha_)}
    wall = time.perf_counter() - started
    return {
        "family": PROBE,
        "config": config.to_dict(),
        "data": data.summary(),
        "metric": metric,
        "majority_baseline": majority_baseline(data.test.labels, num_labels=data.num_labels, metric=metric),
        "best": {"step": 0, **scores},
        "last": {"step": 0, **scores},
        "diverged": False,
        "failed": why is not None,
        "failure": why,
        "steps": 0,
        "total_steps": 0,
        "evals": [],
        "curve": [],
        "timings": {"setup_s": wall, "train_s": 0.0, "eval_s": 0.0, "wall_s": wall},
        "versions": library_versions(),
        "new_parameters": [],
        "surgery": {},
        "baseline": test_base.to_dict(),
        "probe": {"pooling": pooling.source, "head": type(head).__name__, **chosen,
                  "folds": "leave-one-out" if regression else head.cv.get_n_splits()},
    }  # fmt: skip
