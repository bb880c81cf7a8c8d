"""The linear probe: a frozen encoder's sentence features and a scikit-learn head whose regularisation is chosen by
cross-validation on the training rows (issue 29's first candidate family).

Features are pooled as the encoder was trained to pool them. A sentence-transformers folder says so itself:
`modules.json` names a `Pooling` module (its `config.json`: mean, CLS, max or mean-sqrt-len pooling) and perhaps a
`Normalize` module (unit-length embeddings); all-MiniLM-L6-v2 is mean-pooled and normalised. Any other encoder is
read through its pooler (tanh of a dense layer over the [CLS] state, what `BertForSequenceClassification`'s
classifier sees), or its [CLS] state where it has no pooler. `Pooling.source` says which and why.

The head: `LogisticRegressionCV` for classification, `RidgeCV` for regression (scikit-learn). On a few dozen rows the
features are fixed and the head is convex, so the whole fit takes seconds, and every training row counts: the
regularisation is chosen by stratified k-fold cross-validation inside the training rows, not on a held-out split.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.encode import encode
from .data.splits import Split
from .evaluate import _eval_batches

__all__ = [
    "ENCODER_DIR",
    "HEAD_FILE",
    "PROBE_FAMILIES",
    "Pooling",
    "ProbeModel",
    "as_classifier",
    "embed",
    "fit_head",
    "pool",
    "pooling_of",
]

# The inverse regularisation strengths LogisticRegressionCV tries: 1e-2 .. 1e4, 4 a decade. Measured on SST-2 with
# all-MiniLM-L6-v2 (3 samples each of 16 and 64 rows, all 872 dev rows): any fixed C from 0.01 to 100 scored
# 0.57-0.62 at 16 rows and 0.66-0.72 at 64; cross-validated log loss picks 18-56 at 64 rows, but at 16 it picked
# C = 1e-4 twice in 3, where the weights vanish and the head predicts one class (0.509, 0.498). Below 1e-2 lies
# only that collapse, so the grid starts there.
CS = np.logspace(-2, 4, 25)
# RidgeCV's alphas: 1e-4 .. 1e4 (a regression head has no collapse to one class to avoid; RidgeCV's efficient
# leave-one-out makes the wide grid free).
ALPHAS = np.logspace(-4, 4, 33)
# At most 5 folds (scikit-learn's default), fewer when the smallest class has fewer rows: each fold needs one of each.
MAX_FOLDS = 5


@dataclass(frozen=True)
class Pooling:
    """How token states become one sentence vector."""

    mode: str
    """"mean", "cls", "max", "mean_sqrt_len" (sentence-transformers' modes) or "pooler" (the model's own pooler)."""
    normalize: bool
    """Scale each vector to unit length (a sentence-transformers `Normalize` module)."""
    source: str
    """Where the choice came from, in words."""


_ST_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
             "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len"}  # fmt: skip


def pooling_of(model_dir: str | Path, model: Any = None) -> Pooling:
    """The pooling the encoder in `model_dir` was trained with (see the module docstring); `model` (a loaded
    transformers encoder or classifier) tells whether it has a pooler when the folder is no sentence-transformers
    one."""
    folder = Path(model_dir)
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        types = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
        if "Pooling" in types:
            config = json.loads((folder / types["Pooling"].get("path", "") / "config.json").read_text("utf-8"))
            modes = [mode for key, mode in _ST_MODES.items() if config.get(key)]
            if len(modes) == 1:
                normalize = "Normalize" in types
                return Pooling(modes[0], normalize, f"sentence-transformers modules.json: {modes[0]} pooling"
                                                    f"{', normalised' if normalize else ''}")  # fmt: skip
    base = getattr(model, "base_model", model)
    if getattr(base, "pooler", None) is not None:
        return Pooling("pooler", False, "no sentence-transformers pooling in the folder: the model's pooler")
    return Pooling("cls", False, "no sentence-transformers pooling and no pooler: the [CLS] state")


def pool(output: Any, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """One vector per example from an encoder's `output` (last hidden states, pooler output) as `pooling` says."""
    if pooling.mode == "pooler":
        vectors = output.pooler_output
    else:
        states, mask = output.last_hidden_state, attention_mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
        if pooling.mode == "cls":
            vectors = states[:, 0]
        elif pooling.mode == "max":
            vectors = states.masked_fill(mask == 0, -torch.inf).amax(dim=1)
        else:  # mean over real tokens; mean_sqrt_len divides the sum by sqrt(length) instead
            total, length = (states * mask).sum(dim=1), mask.sum(dim=1).clamp(min=1)
            vectors = total / (length.sqrt() if pooling.mode == "mean_sqrt_len" else length)
    return torch.nn.functional.normalize(vectors, dim=1) if pooling.normalize else vectors


@torch.inference_mode()
def embed(encoder: Any, tokenizer: Any, split: Split, pooling: Pooling, *, max_length: int = 128,
          batch_size: int = 128, device: torch.device | None = None) -> np.ndarray:  # fmt: skip
    """One float64 vector per example of `split`, in its order: the encoder's last hidden states pooled as `pooling`
    says. `encoder` is a transformers model (a classifier's base model is used); it is left in eval mode."""
    base = getattr(encoder, "base_model", encoder)
    base.eval()
    device = device or next(base.parameters()).device
    data = encode(split, tokenizer, max_length=max_length)
    out: np.ndarray | None = None
    for idx in _eval_batches(data.lengths, batch_size, batch_size * max_length):
        batch = {k: v.to(device) for k, v in data.batch(idx, tokenizer).items() if k != "labels"}
        vectors = pool(base(**batch), batch["attention_mask"], pooling).double()
        if out is None:
            out = np.empty((len(data), vectors.shape[1]), dtype=np.float64)
        out[np.asarray(idx)] = vectors.cpu().numpy()
    assert out is not None
    return out


def fit_head(features: np.ndarray, labels: np.ndarray, *, regression: bool = False, seed: int = 0) -> Any:
    """A scikit-learn estimator fitted on `features`: `LogisticRegressionCV` over `CS` (classification, stratified
    k-fold, k = min(5, the smallest class's count), scored by log loss) or `RidgeCV` over `ALPHAS` (regression,
    efficient leave-one-out). Every row trains the final head; the folds only choose its regularisation."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import StratifiedKFold

    if regression:
        return RidgeCV(alphas=ALPHAS).fit(features, labels)
    counts = np.unique(labels, return_counts=True)[1]
    folds = int(min(MAX_FOLDS, counts.min())) if len(counts) > 1 else 0
    if folds < 2:
        raise ValueError("the probe's head needs two classes of at least 2 training rows each (cross-validation)")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # scikit-learn 1.9 announces 1.10's defaults; what is fitted here stays the same
        warnings.simplefilter("ignore", FutureWarning)
        return LogisticRegressionCV(Cs=CS, cv=cv, scoring="neg_log_loss", max_iter=5000).fit(features, labels)


def _linear(head: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """(coef, intercept, classes) of a linear estimator, or of a `StandardScaler` + linear pipeline with the scaling
    folded in: w·((x − μ)/σ) + b = (w/σ)·x + (b − Σ wμ/σ)."""
    steps = [s for _, s in getattr(head, "steps", [(None, head)])]
    last = steps[-1]
    coef, intercept = np.atleast_2d(last.coef_).astype(np.float64), np.atleast_1d(last.intercept_).astype(np.float64)
    for step in steps[:-1]:
        mean = getattr(step, "mean_", None)
        scale = getattr(step, "scale_", None)
        scale = np.ones(coef.shape[1]) if scale is None else scale
        mean = np.zeros(coef.shape[1]) if mean is None else mean
        coef, intercept = coef / scale, intercept - (coef / scale) @ mean
    return coef, intercept, getattr(last, "classes_", None)


# A probe model folder: the encoder (weights, config, tokenizer) in ENCODER_DIR, the head in HEAD_FILE beside it, and
# steadytune.json (family, pooling, labels). No config.json at the top, on purpose: transformers would load the
# encoder from it with a random classification head and predict coin flips; without one it refuses.
ENCODER_DIR = "encoder"
HEAD_FILE = "probe_head.safetensors"
# The fit families whose models are such folders (steadytune.json's "family"): the probe's encoder is the pre-trained
# one, the contrastive family's is tuned (`steadytune.contrastive`), LP-FT's with its head (`steadytune.lpft`).
PROBE_FAMILIES = ("probe", "contrastive", "lp-ft")


class ProbeModel(torch.nn.Module):
    """A frozen encoder, its pooling and a linear head, as one classifier: `logits = pooled · weightᵀ + bias`
    (regression: one output, the predicted value). Its `forward` takes a tokenizer's batch and returns an object
    with `.logits`, as a transformers classifier does, so steadytune's prediction code runs it unchanged.

    transformers has no class for a head over mean-pooled states, so `transformers.pipeline` cannot load a probe
    folder; `steadytune predict` and `steadytune.predict` do (`load`)."""

    def __init__(self, encoder: Any, pooling: Pooling, weight: torch.Tensor, bias: torch.Tensor,
                 label_names: tuple[str, ...] | None) -> None:  # fmt: skip
        super().__init__()
        self.encoder = getattr(encoder, "base_model", encoder)
        self.pooling = pooling
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())
        self.config = copy.deepcopy(self.encoder.config)
        self.config.num_labels = weight.shape[0]
        if label_names is not None:
            self.config.id2label = dict(enumerate(label_names))
            self.config.label2id = {n: i for i, n in enumerate(label_names)}

    @classmethod
    def from_head(cls, encoder: Any, pooling: Pooling, head: Any, *, num_labels: int,
                  label_names: tuple[str, ...] | None) -> ProbeModel:  # fmt: skip
        """Wrap a `fit_head` estimator: a binary logistic regression's score z becomes the logits (0, z), whose
        softmax is its sigmoid; a multinomial one's scores are the logits; a ridge's prediction is the one output."""
        coef, intercept, classes = _linear(head)
        if num_labels == 1:
            weight, bias = coef, intercept
        else:
            weight, bias = np.zeros((num_labels, coef.shape[1])), np.full(num_labels, -1e4)  # absent classes: never
            rows = np.asarray(classes, dtype=np.int64)
            if len(rows) == 2 and num_labels == 2 and coef.shape[0] == 1:
                weight[1], bias[:] = coef[0], (0.0, intercept[0])
            elif len(rows) == 2:  # two of more classes present: class rows[1] scores z against rows[0]
                weight[rows[1]], bias[rows[0]], bias[rows[1]] = coef[0], 0.0, intercept[0]
            else:
                weight[rows], bias[rows] = coef, intercept
        return cls(encoder, pooling, torch.from_numpy(weight), torch.from_numpy(bias), label_names)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **batch: Any) -> Any:
        from types import SimpleNamespace

        batch.pop("labels", None)
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **batch)
        vectors = pool(output, attention_mask, self.pooling)
        return SimpleNamespace(logits=vectors.float() @ self.weight.T + self.bias)

    def save(self, folder: str | Path) -> None:
        """The encoder (`save_pretrained`, safetensors) into `folder/ENCODER_DIR` and the head into
        `folder/HEAD_FILE`; the pooling goes into the folder's steadytune.json, which the caller writes (`meta`),
        and the tokenizer into `folder/ENCODER_DIR`."""
        from safetensors.torch import save_file

        self.encoder.save_pretrained(Path(folder) / ENCODER_DIR, safe_serialization=True)
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(Path(folder) / HEAD_FILE))

    def meta(self) -> dict[str, Any]:
        """What steadytune.json records of the probe: its family and pooling."""
        return {"family": "probe", "pooling": {"mode": self.pooling.mode, "normalize": self.pooling.normalize}}

    @classmethod
    def load(cls, folder: str | Path, meta: dict[str, Any], label_names: tuple[str, ...] | None) -> ProbeModel:
        """A probe folder written by `save` (safetensors only)."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        folder = Path(folder)
        pooling = meta.get("pooling") or {}
        encoder = AutoModel.from_pretrained(folder / ENCODER_DIR, use_safetensors=True)
        head = load_file(str(folder / HEAD_FILE))
        found = Pooling(str(pooling.get("mode", "mean")), bool(pooling.get("normalize", False)), "steadytune.json")
        return cls(encoder, found, head["weight"], head["bias"], label_names).eval()


# How close the converted classifier's logits must be to the probe's own on the check batch (float32 forward passes
# of the same weights, summed in another order: they agree to about 1e-6).
SAME_LOGITS = 1e-4


@torch.no_grad()
def as_classifier(model: ProbeModel, batch: dict[str, torch.Tensor]) -> Any | None:
    """`model` as a transformers sequence-classification model, when the encoder's own classification class reads
    what the probe reads: the pooler's output, not normalised (BERT's classifier is dropout, then one linear layer
    over it). Then the folder is an ordinary transformers classifier, which `transformers.pipeline` loads. Checked,
    not assumed: the classifier is built from the encoder's config, given the encoder's weights and the head, and
    its logits on `batch` (a tokenizer's output) must be the probe's (`SAME_LOGITS`). None where they are not, or
    where the architecture has no such class or head (RoBERTa's head, for one, reads the [CLS] state, not the
    pooler; a sentence-transformers model is mean-pooled)."""
    from transformers import AutoModelForSequenceClassification

    if model.pooling.mode != "pooler" or model.pooling.normalize:
        return None
    config = copy.deepcopy(model.config)
    try:
        classifier = AutoModelForSequenceClassification.from_config(config)
    except (ValueError, KeyError):  # no sequence-classification class for this model type
        return None
    head = getattr(classifier, "classifier", None)
    if not isinstance(head, torch.nn.Linear) or head.weight.shape != model.weight.shape:
        return None
    try:
        classifier.base_model.load_state_dict(model.encoder.state_dict())
    except RuntimeError:  # the classifier's encoder is not this one, key for key
        return None
    head.weight.copy_(model.weight)
    head.bias.copy_(model.bias)
    classifier.eval()
    model.eval()
    device = next(model.encoder.parameters()).device
    classifier.to(device)
    batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    ours, theirs = model(**batch).logits, classifier(**batch).logits
    if ours.shape != theirs.shape or not torch.allclose(ours.float(), theirs.float(), atol=SAME_LOGITS, rtol=0):
        return None
    return classifier
