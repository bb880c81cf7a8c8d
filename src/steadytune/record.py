"""Writing a run's record to disk: atomically, so a crash never leaves a half-written file or folder."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserInputError

if TYPE_CHECKING:
    from .trainer import RunResult

__all__ = ["atomic_write_text", "library_versions", "write_run"]


def library_versions() -> dict[str, str]:
    """Versions of everything that can change a run's numbers."""
    from . import __version__

    # steadytune's own version from the code that runs, not from the installed metadata (they differ when a
    # checkout is put first on PYTHONPATH, e.g. to finish a study with the version that started it)
    out = {"python": platform.python_version(), "platform": platform.platform(), "steadytune": __version__}
    for dist in ("torch", "transformers", "tokenizers", "datasets", "numpy", "scipy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Plain Python values, with NaN and ±inf as null: strict JSON has no such numbers (a diverged run's loss)."""
    if hasattr(obj, "tolist"):  # numpy scalars and arrays (a float32 NaN is no Python float until converted)
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON (non-finite floats as null), one trailing newline."""
    return json.dumps(_finite(obj), indent=indent, default=_json_default, allow_nan=False) + "\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: str | Path, *, folder: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give the final ones the mode open()/mkdir() would."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _usual_mode(tmp, folder=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_run(out: str | Path, result: RunResult, *, model=None, tokenizer=None, overwrite: bool = False) -> Path:
    """Write `config.json`, `metrics.json`, `curve.jsonl` (and `model/` when given) to the folder `out`.

    Everything goes into a temporary sibling folder first, which is renamed to `out` only when complete.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserInputError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    _usual_mode(tmp, folder=True)
    try:
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
        for f in tmp.rglob("*"):
            if f.is_file():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old / "run")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
