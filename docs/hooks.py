"""MkDocs hooks: the pages that are written elsewhere and shown here.

- `index.md` is README.md, `changelog.md` CHANGELOG.md and `developers.md` DEVELOPERS.md, their links rewritten
  from the repository's layout to the site's (`docs/guide/fit.md` → `guide/fit.md`);
- `reference/cli.md` is generated from `steadytune.cli.parser.build_parser()`: each command's `--help` as argparse
  prints it, so the reference cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# Root documents shown on the site, and where.
ROOT_PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md", "DEVELOPERS.md": "developers.md"}


def _site_links(text: str) -> str:
    """A root document's relative links as the site has them: docs/X → X, and the other root documents by their
    site names; links to repository files outside docs/ are left for --strict to report."""
    for doc, page in ROOT_PAGES.items():
        text = re.sub(rf"\]\({re.escape(doc)}(#[^)]*)?\)", lambda m, p=page: f"]({p}{m.group(1) or ''})", text)
    return re.sub(r"\]\(docs/", "](", text)


def _cli_reference() -> str:
    os.environ.setdefault("COLUMNS", "100")  # argparse wraps help to the terminal; the page does not have one
    from steadytune.cli.parser import build_parser

    parser = build_parser()
    parser.prog = "steadytune"
    out = ["# Command line reference", "",
           "Generated from the `steadytune` argument parser when the site is built: each section is the command's "
           "`--help`.", "", "```text", parser.format_help().rstrip(), "```", ""]  # fmt: skip
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        out += [f"## `steadytune {name}`", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def on_files(files: Files, config) -> Files:
    for doc, page in ROOT_PAGES.items():
        if (ROOT / doc).is_file():
            files.append(File.generated(config, page, content=_site_links((ROOT / doc).read_text(encoding="utf-8"))))
    files.append(File.generated(config, "reference/cli.md", content=_cli_reference()))
    return files
