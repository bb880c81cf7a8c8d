"""Files that are complete or absent: atomic writes (temporary file or folder, then rename) and strict JSON."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_folder", "atomic_write_bytes", "atomic_write_text", "json_safe", "to_json"]


def json_safe(obj: Any, *, default: Callable[[Any], Any] | None = None) -> Any:
    """`obj` as plain JSON values: numpy and torch scalars and arrays as Python numbers and lists, tuples as lists,
    paths as strings, and NaN and ±inf as null (strict JSON has no such numbers: a diverged run's loss). Anything
    else goes through `default` (e.g. `repr`), or raises TypeError without one."""
    if hasattr(obj, "tolist"):  # numpy and torch scalars and arrays (a float32 NaN is no Python float until converted)
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): json_safe(v, default=default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, default=default) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if default is not None:
        return default(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON of `json_safe(obj)`, one trailing newline."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n"


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


@contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling folder of `out`; on success it replaces `out` (every file flushed to disk
    first), on an exception it is removed and `out` is left as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    _usual_mode(tmp, folder=True)
    try:
        yield tmp
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
