"""The `steadytune` command: `train`, `fit`, `predict`, `study`, `report`, `export`, `recipes`, `audit`, `tasks`.

`main` is the one error boundary: bad input ends with one line on stderr and exit code 2, and nothing is written
in that case. The parser is `parser.py`; the commands live in `runs.py` (train, fit, predict), `studies.py` (study,
report, export) and `info.py` (tasks, recipes, audit); `args.py` has what they share.
"""

from __future__ import annotations

import os
import sys

from ..errors import UserInputError
from .parser import build_parser

__all__ = ["build_parser", "main"]


def known_failure(error: BaseException) -> tuple[int, str] | None:
    """(exit code, message) of a failure that is not a bug: bad input, or the environment failing; None for
    anything else (a bug, which keeps its traceback)."""
    from ..errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EnvironmentFailure, is_disk_full

    if isinstance(error, UserInputError):
        return EXIT_BAD_INPUT, str(error)
    if isinstance(error, EnvironmentFailure):
        return EXIT_ENVIRONMENT, str(error)
    if is_disk_full(error):
        where = getattr(error, "filename", None)
        writing = f" (writing {where})" if where else ""
        return EXIT_ENVIRONMENT, f"the disk is full{writing}; free some space and run the same command again"
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":  # torch's, CPU or CUDA
        return EXIT_ENVIRONMENT, "out of memory; try a smaller --batch-size or --max-length, or fewer --workers"
    if isinstance(error, OSError) and error.filename is not None:  # a path the user gave or a folder it is in
        names = " and ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        return EXIT_BAD_INPUT, f"{names}: {error.strerror or error}"
    return None


def main(argv: list[str] | None = None) -> int:
    """The `steadytune` command. The one error boundary: bad input ends with one line on stderr and exit 2, an
    environment failure (disk full, out of memory) with one line and exit 3; a bug keeps its traceback, and with
    --debug every error shows it. Without a command it prints the help to stderr and exits 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no command: what there is to do, on stderr like any usage error, and exit 2
        parser.print_help(sys.stderr)
        return 2
    debug = getattr(args, "debug", False)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader gone before the last lines is handled below, not at exit
        return code
    except BrokenPipeError:
        # The reader of standard output left (`steadytune recipes | head -1`): stop quietly, as Unix tools do when
        # SIGPIPE ends them, with the shell's code for that (128 + SIGPIPE); the rest of the output goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("steadytune: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        known = known_failure(e)
        if known is None:
            raise  # a bug: the traceback is what a report needs
        if debug:
            import traceback

            traceback.print_exc()
        code, message = known
        print(f"steadytune {args.command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
