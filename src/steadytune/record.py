"""What one run produced (`RunResult`, the record a study stores per trial) and writing it to a run folder."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from ._version import __version__
from .files import atomic_folder, check_output_folder, to_json

__all__ = ["RunResult", "library_versions", "write_run"]


@dataclass
class RunResult:
    """What one run produced: the record a study stores per trial."""

    config: dict[str, Any]
    data: dict[str, Any]
    metric: str
    majority_baseline: float
    """The test metric of always predicting the test split's majority class (0 for correlations)."""
    best: dict[str, Any]
    """{"step", "validation": metrics, "test": metrics} of the best-validation checkpoint."""
    last: dict[str, Any]
    """The same for the final weights (test is None when the run diverged)."""
    diverged: bool
    failed: bool
    """`failure` is not None: diverged, final test metric ≤ the best constant predictor's, or (regression) a test
    MSE ≥ predicting the training mean."""
    steps: int
    total_steps: int
    evals: list[dict[str, Any]]
    curve: list[dict[str, float]]
    timings: dict[str, float]
    versions: dict[str, str]
    new_parameters: list[str]
    surgery: dict[str, list[str]] = field(default_factory=dict)
    """What the recipe changed in the model: {"reinitialized": parameter names, "mixout": module names}."""
    baseline: dict[str, Any] = field(default_factory=dict)
    """The test split's constant-predictor baseline (`steadytune.metrics.Baseline`): the failure line."""
    failure: str | None = None
    """Why the run failed (`steadytune.metrics.failure`: "diverged", "constant", "collapsed"), None if it did not."""
    model: Any = field(default=None, repr=False, compare=False)
    """The trained model with `steadytune.train(..., return_model=True)`, else None: a plain transformers
    classifier on the CPU (the recipe's surgery undone) holding the weights `save_model` writes, the
    best-validation checkpoint. Never part of the record (`to_dict`)."""

    def __repr__(self) -> str:
        """A few lines: task, recipe, seed, the best and last scores, the baseline and the flags (not the curve)."""
        cfg, m, base = self.config, self.metric, self.baseline or {}

        def point(name: str, p: dict[str, Any]) -> str:
            val, test = (p.get("validation") or {}).get(m), (p.get("test") or {}).get(m)
            return f"{name} (step {p.get('step')}): validation {_fmt(val)}, test {_fmt(test)}"

        predictor = f" ({base['predictor']})" if base.get("predictor") else ""
        why = f" ({self.failure})" if self.failure else ""
        attached = ", model attached" if self.model is not None else ""
        return (f"RunResult(task={self.data.get('name')!r}, metric={m!r}, recipe={cfg.get('recipe')!r}, "
                f"seed={cfg.get('seed')}, model={cfg.get('model')!r},\n"
                f"  {point('best', self.best)}; {point('last', self.last)},\n"
                f"  constant baseline {_fmt(base.get('score', self.majority_baseline))}{predictor}, "
                f"failed={self.failed}{why}, diverged={self.diverged}, steps={self.steps}/{self.total_steps}"
                f"{attached})")  # fmt: skip

    @property
    def test_best(self) -> float | None:
        return None if self.best.get("test") is None else self.best["test"][self.metric]

    @property
    def test_last(self) -> float | None:
        return None if self.last.get("test") is None else self.last["test"][self.metric]

    def to_dict(self) -> dict[str, Any]:
        """The record (JSON-ready): every field but `model`."""
        d = asdict(replace(self, model=None))
        d.pop("model")
        return d

    def metrics_dict(self) -> dict[str, Any]:
        """Everything but the config and the per-step curve: `metrics.json`."""
        d = self.to_dict()
        for key in ("config", "curve"):
            d.pop(key)
        d["test_best"], d["test_last"] = self.test_best, self.test_last
        return d


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def library_versions() -> dict[str, str]:
    """Versions of everything that can change a run's numbers."""
    # steadytune's own version from the code that runs, not from the installed metadata (they differ when a
    # checkout is put first on PYTHONPATH, e.g. to finish a study with the version that started it)
    out = {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
           "steadytune": __version__}  # fmt: skip
    for dist in ("torch", "transformers", "tokenizers", "datasets", "numpy", "scipy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def cpu_model() -> str:
    """The CPU's model name, because bf16 kernels differ between instruction sets (AMX, AVX512-BF16, emulated): the
    same code and library versions scored the README's BERTAdam STS-B seed 0 at 0.1270 on this project's machine
    of 2026-12-02 and at 0.1341 on an AMD EPYC with AVX512-BF16 and no AMX. A record says where it ran."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown"


def write_run(out: str | Path, result: RunResult, *, model=None, tokenizer=None, overwrite: bool = False) -> Path:
    """Write `config.json`, `metrics.json`, `curve.jsonl` (and `model/` with its model card `README.md`, when
    given) to the folder `out`.

    Everything goes into a temporary sibling folder first, which is renamed to `out` only when complete. An
    existing non-empty `out` is replaced only with `overwrite`, and only when it is a steadytune run folder
    (`files.check_output_folder`).
    """
    # Checked again here (train checks before any work): the folder may have changed while the run trained.
    check_output_folder(out, overwrite=overwrite)
    out = Path(out)
    with atomic_folder(out) as tmp:
        # config.json alone says how to rerun and on exactly which rows (the data summary holds their fingerprints)
        (tmp / "config.json").write_text(to_json({**result.config, "data": result.data, "versions": result.versions}))
        (tmp / "metrics.json").write_text(to_json(result.metrics_dict()))
        (tmp / "curve.jsonl").write_text("".join(to_json(row, indent=None) for row in result.curve))
        if model is not None:
            from .models import quiet_transformers

            with quiet_transformers():
                model.save_pretrained(tmp / "model", safe_serialization=True)
                if tokenizer is not None:
                    tokenizer.save_pretrained(tmp / "model")
            (tmp / "model" / "steadytune.json").write_text(to_json({
                "text_columns": result.data["text_columns"],
                "label_names": result.data["label_names"],
                "max_length": result.config["max_length"],
                "metric": result.metric,
            }))  # fmt: skip
            from .card import run_card

            (tmp / "model" / "README.md").write_text(run_card(result), encoding="utf-8")  # the folder's model card
    return out
