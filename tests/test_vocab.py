"""Training only the reachable embedding rows: the same computation as a dense embedding, and the full one back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadytune import train
from steadytune.data import load_user_data
from steadytune.optim import AdamW, BertAdam
from steadytune.vocab import RowsEmbedding, reachable_rows, restore_rows


def _classifier(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        torch_dtype=torch.float64,
    )  # fmt: skip


def test_rows_embedding_looks_up_the_same_vectors_and_rejects_other_ids():
    full = nn.Embedding(20, 3, padding_idx=0)
    rows = RowsEmbedding(full, torch.tensor([0, 4, 7, 19]))
    assert rows.weight.shape == (4, 3) and rows.padding_idx == 0 and rows.full_size == 20
    ids = torch.tensor([[4, 19, 0], [7, 7, 4]])
    assert torch.equal(rows(ids), full(ids))
    assert rows.weight.data_ptr() != full.weight.data_ptr()  # a copy: training it leaves the original alone
    with pytest.raises(IndexError):
        rows(torch.tensor([5]))
    with pytest.raises(ValueError, match="padding id 0"):
        RowsEmbedding(full, torch.tensor([4, 7]))
    assert "4 of 20 rows" in repr(rows)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: AdamW(ps, lr=1e-2, foreach=False),
        lambda ps: AdamW(ps, lr=1e-2, fused=True),
        lambda ps: BertAdam(ps, lr=1e-2, weight_decay=0.0),
        lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1, prior_weight_decay=True, foreach=True),
    ],
    ids=["adamw", "adamw-fused", "bertadam", "prior-wd"],
)
def test_training_the_reachable_rows_is_training_the_dense_embedding(tiny_model_dir, make):
    """Five steps with clipping on batches of a few token ids: every parameter ends where dense training puts it,
    and the rows no batch held keep their pre-trained values exactly."""
    dense, compact = _classifier(tiny_model_dir), _classifier(tiny_model_dir)
    pretrained = dense.get_input_embeddings().weight.detach().clone()
    used = torch.tensor([0, 2, 3, 7, 9, 11, 30, 31, 40])
    assert isinstance(reachable_rows(compact, used.numpy()), RowsEmbedding)
    gen = torch.Generator().manual_seed(0)
    batches = [used[torch.randint(1, len(used), (4, 6), generator=gen)] for _ in range(5)]
    labels = torch.tensor([0, 1, 1, 0])
    for model in (dense, compact):
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make(params)
        for ids in batches:
            ids = ids.clone()
            ids[:, 0], ids[0, -2:] = 2, 0  # [CLS] first, some padding
            mask = (ids != 0).long()
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
            opt.zero_grad(set_to_none=True)
    rows = compact.get_input_embeddings()
    full = restore_rows(compact, rows)
    assert compact.get_input_embeddings() is full and full.weight.shape == pretrained.shape
    untouched = torch.ones(len(pretrained), dtype=torch.bool)
    untouched[used] = False
    assert torch.equal(full.weight[untouched], pretrained[untouched])
    assert not torch.equal(full.weight[used], pretrained[used])  # the kept rows did train
    for (name, a), (_, b) in zip(dense.named_parameters(), compact.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14, msg=name)


def test_reachable_rows_declines_where_it_would_not_be_exact(tiny_model_dir):
    from transformers import AutoModelForMaskedLM

    tied = AutoModelForMaskedLM.from_pretrained(tiny_model_dir)  # the output layer shares the embedding
    assert reachable_rows(tied, [0, 1, 2]) is None and type(tied.get_input_embeddings()) is nn.Embedding
    model = _classifier(tiny_model_dir)
    size = model.get_input_embeddings().num_embeddings
    assert reachable_rows(model, range(size)) is None  # every row reachable: nothing to gain
    model.get_input_embeddings().max_norm = 1.0  # renormalises the rows it looks up: not a plain lookup
    assert reachable_rows(model, [0, 1]) is None
    model.get_input_embeddings().max_norm = None
    with pytest.raises(ValueError, match=rf"token ids must lie in \[0, {size}\), got ids from 0 to {size}"):
        reachable_rows(model, [0, size])


def test_a_run_trains_the_reachable_rows_and_saves_the_full_vocabulary(tiny_model_dir, toy_files, tmp_path):
    from safetensors.torch import load_file

    toy = load_user_data(toy_files["train"], validation=toy_files["validation"], test=toy_files["test"])
    key = "bert.embeddings.word_embeddings.weight"
    pretrained = load_file(tiny_model_dir / "model.safetensors")
    pretrained = pretrained.get(key, pretrained.get(key.removeprefix("bert.")))
    saved = {}
    for wd in (0.0, 0.1):
        out = tmp_path / f"wd{wd}"
        train(
            data=toy,
            model=str(tiny_model_dir),
            lr=1e-2,
            epochs=1,
            batch_size=8,
            seed=0,
            weight_decay=wd,
            num_evals=1,
            save_model=True,
            out=out,
        )  # fmt: skip (one evaluation: the saved model is the last)
        saved[wd] = load_file(out / "model" / "model.safetensors")[key]
    assert saved[0.0].shape == pretrained.shape == saved[0.1].shape
    same = (saved[0.0] == pretrained).all(dim=1)
    assert 0 < int(same.sum()) < len(same) - 5  # the toy task's words trained; the rest of the vocabulary did not
    # Plain weight decay shrinks rows no batch holds, so such a run keeps the dense embedding: every row moves but
    # the padding row, which is zeros.
    assert not (saved[0.1][1:] == pretrained[1:]).all(dim=1).any()
