"""Shared fixtures: a tiny random BERT saved like a hub checkpoint, and small labelled data files.

Unit tests need no network and no real weights: the model is built from a `BertConfig`, saved with
`save_pretrained` (without a classifier head, like a pre-trained encoder), with a WordPiece vocab written here.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # unit tests never reach for the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The unit tests' tiny models gain nothing from a second thread, and on shared or busy cores it only spin-waits
# (a tiny fit took 96 s with torch's default two threads under load, 8 s with one). Subprocesses keep the default.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = Path(os.environ.get("STEADYTUNE_TEST_GLUE_DIR", REPO.parent / "shared" / "data" / "glue"))

WORDS = ["good", "bad", "great", "awful", "movie", "film", "plot", "the", "a", "was", "is", "not", "very", "fine",
         "story", "acting", "yes", "no", "cat", "dog", "sat", "on", "mat", "same", "different"]  # fmt: skip


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = specials + WORDS + letters + [f"##{c}" for c in letters] + list(".,!?'\"-0123456789")
    return list(dict.fromkeys(tokens))  # "a" is both a word and a letter


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT encoder and its tokenizer, saved as a local model folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    (path / "vocab.txt").write_text("\n".join(_vocab()) + "\n")
    # from_pretrained on a folder holding vocab.txt works on transformers 4.57 and 5.x alike (the constructor's
    # keyword changed from vocab_file to vocab, and 5.x silently ignores the old one)
    tok = BertTokenizerFast.from_pretrained(path, do_lower_case=True)
    assert len(tok) == len(_vocab()) and tok.convert_tokens_to_ids("movie") != tok.unk_token_id
    tok.save_pretrained(path)
    config = BertConfig(vocab_size=len(_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    return path


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable toy task: the label is whether a positive word occurs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(["good", "great", "fine"] if label else ["bad", "awful", "not"])
        filler = rng.sample(
            ["the", "movie", "film", "plot", "was", "is", "very", "story", "acting"], k=rng.randint(1, 6)
        )
        filler.insert(rng.randint(0, len(filler)), word)
        rows.append({"text": " ".join(filler), "label": "pos" if label else "neg"})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        cols = list(rows[0])
        path.write_text(sep.join(cols) + "\n" + "".join(sep.join(str(r[c]) for c in cols) + "\n" for r in rows))
    return path


@pytest.fixture
def toy_files(tmp_path) -> dict[str, Path]:
    """train/validation/test files of the toy sentiment task, as CSV."""
    return {
        "train": write_rows(tmp_path / "train.csv", sentiment_rows(64, seed=1)),
        "validation": write_rows(tmp_path / "validation.csv", sentiment_rows(24, seed=2)),
        "test": write_rows(tmp_path / "test.csv", sentiment_rows(24, seed=3)),
    }


def hears_ctrl_c() -> None:
    """A child's `preexec_fn`: SIGINT back to its default before the exec, so that its Python installs the
    KeyboardInterrupt handler. A shell starts a background job (`cmd &`, nohup, many CI runners) with SIGINT
    ignored, and an ignored signal stays ignored across exec: a test of Ctrl-C would then test nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_heard():
    """This process answers SIGINT with KeyboardInterrupt for the test (see `hears_ctrl_c`), as before after it."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def require_glue(task_folder: str = "RTE") -> Path:
    if not (GLUE_DIR / task_folder).is_dir():
        if os.environ.get("CI"):  # CI always has ../shared beside the clone: missing data there is a failure
            pytest.fail(f"GLUE data not found at {GLUE_DIR}")
        pytest.skip(f"GLUE data not found at {GLUE_DIR}")
    return GLUE_DIR


@pytest.fixture
def still_encoder(tmp_path):
    """The tiny BERT without dropout, so that a training forward pass equals an evaluation one (the contrastive
    and LP-FT loss tests)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    (tmp_path / "vocab.txt").write_text("\n".join(_vocab()) + "\n")
    tok = BertTokenizerFast.from_pretrained(tmp_path, do_lower_case=True)
    config = BertConfig(vocab_size=len(_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    return BertModel(config), tok
