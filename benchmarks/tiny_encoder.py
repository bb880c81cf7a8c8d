"""A random 2-layer, 64-wide BERT with all-MiniLM-L6-v2's tokenizer and pooling, for benchmarks that measure a
procedure rather than an encoder (`verdict_calibration.py --model`: on shuffled labels nothing is learnable with
any encoder, so the false-yes rate is the test's own, and a fit takes seconds instead of minutes).

    python benchmarks/tiny_encoder.py OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from steadytune.models import resolve_model


def main() -> None:
    out = Path(sys.argv[1])
    minilm = Path(resolve_model("all-MiniLM-L6-v2"))
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=512)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for name in ("modules.json", "1_Pooling", "2_Normalize"):  # mean-pooled and normalised, as MiniLM is
        source = minilm / name
        if source.is_dir():
            shutil.copytree(source, out / name, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy(source, out / name)
    print(out)


if __name__ == "__main__":
    main()
