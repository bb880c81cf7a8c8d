"""`steadytune fit`: start several candidates, drop the bad ones early, finish the best, and say plainly how it went.

- `settings`: what is searched (`FitSettings`, the learning rates by encoder width, the candidates);
- `search`: the successive-halving search over fine-tuning candidates, stage by stage through the study store
  (its docstring gives the procedure and the measurements behind the defaults), and `rejudge`;
- `families`: the candidates besides fine-tuning (the probe, the contrastive and the LP-FT family) and the small-file
  cross-validation;
- `outcome`: the pick, the verdict on the test split, `fit.json` and the delivered model.
"""

from .outcome import FitResult, judge
from .search import FLAG_WORDS, fit, rejudge
from .settings import (
    MAX_CANDIDATES,
    Candidate,
    FitSettings,
    candidate_configs,
    default_families,
    default_lrs,
    resolve,
)

__all__ = [
    "FLAG_WORDS",
    "MAX_CANDIDATES",
    "Candidate",
    "FitResult",
    "FitSettings",
    "candidate_configs",
    "default_families",
    "default_lrs",
    "fit",
    "judge",
    "rejudge",
    "resolve",
]
