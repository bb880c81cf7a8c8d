"""steadytune: stable few-sample fine-tuning of BERT-style encoders, measured across seeds.

BERT's original optimizer (BERTAdam) omits Adam's bias correction, which makes few-sample fine-tuning unstable
(Zhang et al., "Revisiting Few-sample BERT Fine-tuning", ICLR 2021). steadytune ships both optimizers side by side
and a fine-tuning run that records what happened honestly: best and last checkpoints, failed and diverged runs.
"""

from .data import TaskData, load_data, load_glue, load_user_data
from .errors import UserInputError
from .metrics import compute_metrics, majority_baseline
from .optim import AdamW, BertAdam, create_optimizer, param_groups
from .trainer import RunResult, TrainConfig, evaluate, train

__version__ = "0.1.0"

__all__ = [
    "AdamW",
    "BertAdam",
    "RunResult",
    "TaskData",
    "TrainConfig",
    "UserInputError",
    "__version__",
    "compute_metrics",
    "create_optimizer",
    "evaluate",
    "load_data",
    "load_glue",
    "load_user_data",
    "majority_baseline",
    "param_groups",
    "train",
]
