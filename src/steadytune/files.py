"""Files that are complete or absent: atomic writes (temporary file or folder, then rename) and strict JSON."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import EnvironmentFailure, UserInputError, is_disk_full

__all__ = [
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_file",
    "check_output_folder",
    "check_stdout",
    "check_writable_folder",
    "is_run_folder",
    "json_safe",
    "to_json",
    "write_stdout",
]


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
    first, and given the usual mode, 0644 under the usual umask), on an exception it is removed and `out` is left as
    it was. Nothing else is left behind either way."""
    out = Path(os.path.abspath(out))  # "." or "runs/" have no usable name; the absolute path always has one
    if out == Path(out.anchor):
        raise UserInputError(f"{out} is a filesystem root; name a folder below it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    _usual_mode(tmp, folder=True)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file() and not f.is_symlink():
                # transformers and safetensors write weights 0600 (a private temporary file renamed): the folder's
                # files get the mode open() would give them, as every other file steadytune writes (issue 31)
                _usual_mode(f, folder=False)
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        if os.path.lexists(out):
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            try:
                os.replace(out, old / "run")
                try:
                    os.replace(tmp, out)
                except BaseException:
                    os.replace(old / "run", out)  # put the original back where it was
                    raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_stdout(data: bytes, *, binary: bool = False) -> None:
    """Write `data` to standard output in one piece (`--output -`). A text stream without a byte buffer (a notebook's,
    a `contextlib.redirect_stdout`) gets UTF-8 text decoded; `binary` data (Parquet) cannot go there: check with
    `check_stdout(binary=True)` before any work."""
    check_stdout(binary=binary)
    stream = sys.stdout
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode("utf-8"))
        stream.flush()


def check_stdout(*, binary: bool = False, what: str = "--output -") -> None:
    """Refuse, before any work, binary output to a standard output that takes only text."""
    if sys.stdout is None:
        raise UserInputError(f"{what}: this process has no standard output")
    if binary and getattr(sys.stdout, "buffer", None) is None:
        raise UserInputError(f"{what}: standard output here takes text only; write Parquet to a file")


# ---------------------------------------------------------------------------------------------------------------
# Proving an output location usable before any work starts


def is_run_folder(folder: str | Path) -> bool:
    """A folder `steadytune train --out` wrote: config.json (naming the steadytune version) and metrics.json."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    versions = config.get("versions") if isinstance(config, dict) else None
    return isinstance(versions, dict) and "steadytune" in versions and (folder / "metrics.json").is_file()


def _existing_ancestor(path: Path, what: str, target: str | Path) -> Path:
    """The nearest folder at or above `path` that exists (where new folders would be made); a file or a broken
    link on the way is an error naming it."""
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            if not parent.is_dir():
                kind = "a broken symbolic link" if parent.is_symlink() else "a file, not a folder"
                raise UserInputError(f"{what} {target}: {parent} is {kind}")
            return parent
    return Path(path.anchor)  # pragma: no cover - the root always exists


def _probe(folder: Path, what: str, target: str | Path) -> None:
    """Create and remove an empty temporary folder in `folder`: proof that it can be written now."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".steadytune-", suffix=".probe"))
    except OSError as e:
        if is_disk_full(e):
            raise EnvironmentFailure(f"{what} {target}: the disk holding {folder} is full; free some space") from None
        raise UserInputError(f"{what} {target}: cannot write in {folder} ({e.strerror or e})") from None


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(path))


def _holds_cwd(folder: Path) -> bool:
    try:
        return Path.cwd().resolve().is_relative_to(folder.resolve())
    except OSError:  # the current folder was deleted
        return False


def _not_stdout(folder: str | Path, what: str) -> None:
    """`-` means standard output for files (`predict --output -`); a folder cannot go there."""
    if str(folder) == "-":
        raise UserInputError(f"{what} -: standard output takes a file, not a folder; name a folder, e.g. runs/NAME")


def check_output_folder(
    out: str | Path, *, overwrite: bool = False, replace: tuple[str, ...] = ("run",), what: str = "--out"
) -> Path:
    """Prove, before any work, that the folder `out` can be written by `atomic_folder`: it is absent or empty, or
    (with `overwrite`) a folder `replace` allows replacing ("run": a steadytune run folder, "study": a study folder
    with study.sqlite); it is not a file, a symbolic link, the current folder or a root; and its parent folder (or
    the nearest one that exists) accepts a new entry. Returns the absolute path; raises `UserInputError`."""
    _not_stdout(out, what)
    path = _resolved(out)
    if path == Path(path.anchor) or _holds_cwd(path):
        raise UserInputError(f"{what} {out} is the current folder, a folder holding it, or a root; name a new "
                             "folder, e.g. runs/NAME")  # fmt: skip
    if os.path.islink(path):
        target = os.readlink(path)
        state = "" if path.exists() else ", which does not exist"
        raise UserInputError(f"{what} {out} is a symbolic link to {target}{state}; give a real folder")
    if path.exists():
        if not path.is_dir():
            raise UserInputError(f"{what} {out} is a file, not a folder")
        try:
            non_empty = any(path.iterdir())
        except OSError as e:
            raise UserInputError(f"{what} {out}: cannot read the folder ({e.strerror or e})") from None
        if non_empty:
            if not overwrite:
                raise UserInputError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
            kinds = {"run": is_run_folder(path), "study": (path / "study.sqlite").is_file()}
            if not any(kinds[k] for k in replace):
                names = " or ".join({"run": "a steadytune run folder", "study": "a study folder"}[k] for k in replace)
                raise UserInputError(f"{what} {out} is not {names} (no config.json and metrics.json from "
                                     "steadytune); --overwrite replaces only those: remove it yourself or choose "
                                     "another folder")  # fmt: skip
    _probe(_existing_ancestor(path.parent, what, out), what, out)
    return path


def check_writable_folder(folder: str | Path, *, what: str = "--out") -> Path:
    """Prove that files can be written in `folder` (which may not exist yet: then where it would be made), before
    any work. Returns the absolute path; raises `UserInputError`."""
    _not_stdout(folder, what)
    path = _resolved(folder)
    if os.path.lexists(path) and not path.is_dir():
        kind = "a broken symbolic link" if path.is_symlink() else "a file, not a folder"
        raise UserInputError(f"{what} {folder} is {kind}")
    _probe(path if path.is_dir() else _existing_ancestor(path.parent, what, folder), what, folder)
    return path


def check_output_file(path: str | Path, *, overwrite: bool = False, what: str = "--output") -> Path:
    """Prove that `atomic_write_bytes` can write the file `path`: not a folder, absent unless `overwrite`, in a
    folder that accepts a new entry. Returns the absolute path; raises `UserInputError`. `-` (standard output) is
    the caller's to handle: it is never an existing file, so callers skip this check for it."""
    if str(path) == "-":
        raise UserInputError(f"{what} -: this command writes a file, not standard output; name a file")
    target = _resolved(path)
    if target.is_dir():
        raise UserInputError(f"{what} {path} is a folder; give a file name")
    if os.path.lexists(target) and not overwrite:
        raise UserInputError(f"output file {path} exists; pass --overwrite to replace it")
    _probe(_existing_ancestor(target.parent, what, path), what, path)
    return target
