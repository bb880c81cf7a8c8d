"""The fixed seeds of the data: which training subset a run draws and how dev is split into validation and test.

A module of its own, without numpy or scikit-learn, because `TrainConfig` takes them as defaults and the CLI's
parser (`steadytune --help`) reads `TrainConfig`.
"""

from __future__ import annotations

__all__ = ["DATA_SEED", "SPLIT_SEED"]

# Fixed, run-independent seeds: any constant works; what matters is that they are not the run seed.
SPLIT_SEED = 0
DATA_SEED = 0
