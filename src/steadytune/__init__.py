"""steadytune: stable few-sample fine-tuning of BERT-style encoders, measured across seeds.

BERT's original optimizer (BERTAdam) omits Adam's bias correction, which makes few-sample fine-tuning unstable
(Zhang et al., "Revisiting Few-sample BERT Fine-tuning", ICLR 2021). steadytune ships both optimizers side by side
and a fine-tuning run that records what happened honestly: best and last checkpoints, failed and diverged runs.
"""

from ._version import __version__
from .audit import AuditReport, audit_optimizer
from .config import TrainConfig
from .data import TaskData, load_data, load_glue, load_user_data
from .errors import UserInputError
from .evaluate import evaluate
from .fastpath import cpu_fastpath, sibling_projections
from .fitting import FitResult, FitSettings, fit
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
    "prepare_model",
    "reinit_top_layers",
    "sibling_projections",
    "remove_mixout",
    "train",
]
