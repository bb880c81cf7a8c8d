"""steadytune: stable few-sample fine-tuning of BERT-style encoders, measured across seeds.

BERT's original optimizer (BERTAdam) omits Adam's bias correction, which makes few-sample fine-tuning unstable
(Zhang et al., "Revisiting Few-sample BERT Fine-tuning", ICLR 2021). steadytune ships both optimizers side by side
and a fine-tuning run that records what happened honestly: best and last checkpoints, failed and diverged runs.

The public names load on first use (PEP 562): `import steadytune` and `steadytune --help` do not import torch or
transformers until something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_package
from ._version import __version__

if TYPE_CHECKING:
    from .audit import AuditReport, audit_optimizer
    from .config import TrainConfig
    from .data import TaskData, load_data, load_glue, load_user_data
    from .errors import UserInputError
    from .evaluate import evaluate
    from .fastpath import cpu_fastpath, sibling_projections
    from .fitting import FitResult, FitSettings, fit
    from .inference import predict
    from .metrics import compute_metrics, majority_baseline
    from .mixout import MixLinear, apply_mixout, remove_mixout
    from .optim import AdamW, BertAdam, create_optimizer, param_groups
    from .optim.llrd import llrd_param_groups
    from .recipes import PRESETS, Recipe, create_optimizer_and_scheduler, prepare_model
    from .record import RunResult
    from .reinit import reinit_top_layers
    from .study import Study
    from .trainer import train

__all__ = [
    "PRESETS",
    "AdamW",
    "AuditReport",
    "BertAdam",
    "FitResult",
    "FitSettings",
    "MixLinear",
    "Recipe",
    "RunResult",
    "Study",
    "TaskData",
    "TrainConfig",
    "UserInputError",
    "__version__",
    "apply_mixout",
    "audit_optimizer",
    "compute_metrics",
    "cpu_fastpath",
    "create_optimizer",
    "create_optimizer_and_scheduler",
    "evaluate",
    "fit",
    "load_data",
    "load_glue",
    "llrd_param_groups",
    "load_user_data",
    "majority_baseline",
    "param_groups",
    "predict",
    "prepare_model",
    "reinit_top_layers",
    "sibling_projections",
    "remove_mixout",
    "train",
]

# Each public name → the submodule that defines it. A function never shares its name with a submodule it is not
# defined in (`fit` lives in fitting/, a `predict` in inference.py); `evaluate` is both, and stays the function.
__getattr__, __dir__ = lazy_package(
    __name__,
    {
        **dict.fromkeys(("AuditReport", "audit_optimizer"), "audit"),
        "TrainConfig": "config",
        **dict.fromkeys(("TaskData", "load_data", "load_glue", "load_user_data"), "data"),
        "UserInputError": "errors",
        "evaluate": "evaluate",
        **dict.fromkeys(("cpu_fastpath", "sibling_projections"), "fastpath"),
        **dict.fromkeys(("FitResult", "FitSettings", "fit"), "fitting"),
        "predict": "inference",
        **dict.fromkeys(("compute_metrics", "majority_baseline"), "metrics"),
        **dict.fromkeys(("MixLinear", "apply_mixout", "remove_mixout"), "mixout"),
        **dict.fromkeys(("AdamW", "BertAdam", "create_optimizer", "param_groups"), "optim"),
        "llrd_param_groups": "optim.llrd",
        **dict.fromkeys(("PRESETS", "Recipe", "create_optimizer_and_scheduler", "prepare_model"), "recipes"),
        "RunResult": "record",
        "reinit_top_layers": "reinit",
        "Study": "study",
        "train": "trainer",
    },
)
