"""Model cards: the README.md of a saved model folder, in the Hugging Face format (YAML metadata, then prose).

The metadata is built with `huggingface_hub.ModelCardData` and `EvalResult`, so it follows the hub's model-card
spec and `huggingface_hub.ModelCard.load` reads it back: `base_model`, `library_name`, `pipeline_tag`, `tags`,
`datasets`, `metrics` and a `model-index` with the saved weights' validation and test scores (exactly the numbers
of the run's record). The prose states what a user needs to trust or distrust the model: the data, the recipe,
the seeds, the constant baselines and the failed flag, the compute used, steadytune's version, and how to load it.

`run_card` describes one `train --save-model` run (`<out>/model/README.md`, written inside the run folder's atomic
write: a model folder never exists without its card); `fit_card` the model `steadytune fit` chose.

The model-index's `split` says which rows of the data set a score is on, in the data set's own split names
(`split_names`): steadytune's validation and test are often not the data set's splits of those names (for a GLUE
preset, halves of GLUE's validation split, or rows held out of its train split), and a machine reader takes a
`split: test` of `nyu-mll/glue` for GLUE's test split, whose labels are hidden. `metric_name` keeps the role
("test accuracy"): what the score was used for.

A card names no path of the machine it was written on (it is what `--push-to-hub` uploads): the base model is its
hub id, or only its folder's name for a local folder, and user data files are named without their folders. Like
transformers' Trainer, the metadata names a `base_model` only when it is a hub id; the hub rejects cards whose
`base_model` is not one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = ["DatasetRef", "base_model_id", "dataset_ref", "fit_card", "model_label", "run_card", "split_names"]

_TASK = "text-classification"  # the hub's pipeline tag for sequence classification, regression heads included


def base_model_id(model: str) -> str | None:
    """The base model's hub id: a known alias's id (the packaged all-MiniLM-L6-v2 is the hub's), a hub id as
    given, or None for a local folder (its path is no hub id, and the user's machine's business)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from .models import MODEL_ALIASES

    alias = MODEL_ALIASES.get(str(model).lower())
    if alias is not None:
        return alias[1]
    if Path(model).exists():  # transformers loads an existing folder before asking the hub
        return None
    try:
        validate_repo_id(str(model))
    except HFValidationError:
        return None
    return str(model)


def model_label(model: str) -> str:
    """How a card names the base model: its hub id, or a local folder's name without the folders above it."""
    return base_model_id(model) or Path(str(model).rstrip("/\\")).name or str(model)


@dataclass(frozen=True)
class DatasetRef:
    """The data set as a card names it: `id` goes to `datasets` and the model-index (a hub id, or a file name)."""

    id: str
    name: str
    config: str | None = None
    on_hub: bool = False


def dataset_ref(config: dict[str, Any], data: dict[str, Any]) -> DatasetRef:
    """A GLUE preset is `nyu-mll/glue` with its config name (TSV files hold the same rows and label ids); a hub data
    set is its id (`owner/name/config` splits into id and config); a local `datasets` folder or user files are the
    folder's or the training file's name."""
    from .data import GLUE_TASKS

    hub = data.get("hub_dataset")
    if isinstance(hub, str) and hub:
        parts = hub.split("/")
        repo, conf = ("/".join(parts[:2]), "/".join(parts[2:]) or None) if len(parts) > 2 else (hub, None)
        spec = GLUE_TASKS.get(str(config.get("task") or "").lower())
        return DatasetRef(repo, f"GLUE {spec.folder}" if spec and repo == "nyu-mll/glue" else hub, conf, True)
    spec = GLUE_TASKS.get(str(config.get("task") or "").lower())
    if spec is not None:
        return DatasetRef("nyu-mll/glue", f"GLUE {spec.folder}", spec.hub_config, True)
    local = data.get("dataset")  # a `datasets` folder written by save_to_disk: its name, not its path
    train = local or (data.get("files") or {}).get("train") or config.get("train_file")
    name = Path(str(train).rstrip("/\\")).name if train else str(data["name"])
    return DatasetRef(name or str(data["name"]), str(data["name"]))


# The rows behind steadytune's validation and test splits, by the protocol `steadytune.data` recorded (every
# `info["protocol"]` it writes is a key; tests/test_card.py checks that none is missing). `{dev}`: the data set's
# split the halves come from (GLUE's is `validation`, MNLI's `validation_matched`; a user's validation file or a
# dataset's split as it names it), `{test}` a given test split's name. "Stratified half" because the halves are
# drawn at random by class (`steadytune.data.splits.split_in_two`), not the split's first and last rows.
_SPLIT_ROWS = {
    "balanced train subset; validation from unused train rows; test = dev": ("train (held-out rows)", "{dev}"),
    "balanced train subset; dev split into stratified validation/test halves":
        ("{dev} (stratified half 1)", "{dev} (stratified half 2)"),
    "full train; dev split into stratified validation/test halves":
        ("{dev} (stratified half 1)", "{dev} (stratified half 2)"),
    "validation file split into stratified validation/test halves":
        ("{dev} (stratified half 1)", "{dev} (stratified half 2)"),
    "stratified 20% of train held out, split into validation/test halves":
        ("{train} (held-out 20%, half 1)", "{train} (held-out 20%, half 2)"),
    "validation = stratified 10% of train": ("{train} (held-out 10%)", "{test}"),
    "train, validation and test files as given": ("{dev}", "{test}"),
}  # fmt: skip


def split_names(config: dict[str, Any], data: dict[str, Any]) -> dict[str, str]:
    """What the rows of steadytune's `validation` and `test` splits are, in the data set's own split names: the
    model-index's `split`. A protocol this version does not know keeps the role's name."""
    from .data import GLUE_TASKS

    spec = GLUE_TASKS.get(str(config.get("task") or "").lower())
    own = data.get("splits") or {}  # a DatasetDict's split behind each role, as it names them
    if spec is not None:
        dev = "validation_matched" if spec.name == "mnli" else "validation"  # the hub's name of GLUE's dev split
    else:
        dev = own.get("validation", "validation")
    names = {"dev": dev, "train": own.get("train", "train"), "test": own.get("test", "test")}
    rows = _SPLIT_ROWS.get(str(data.get("protocol")), ("validation", "test"))
    return {"validation": rows[0].format(**names), "test": rows[1].format(**names)}


Scores = dict[str, Any] | None


def _card_data(model: str, dataset: DatasetRef, data: dict[str, Any], metric: str, name: str,
               results: list[tuple[str, str, Scores]], *, library: str = "transformers") -> Any:  # fmt: skip
    """`ModelCardData` with a model-index of `results`: (role, the rows' split name, metrics) of the saved weights;
    the loss and non-finite values (None in the record's JSON) are left out. `library`: who loads the folder (a
    probe: steadytune, which then also has no pipeline tag)."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset_kwargs = {"dataset_type": dataset.id, "dataset_name": dataset.name, "dataset_config": dataset.config}
    evals = [
        EvalResult(task_type=_TASK, task_name="Text Classification", dataset_split=split, metric_type=k,
                   metric_value=float(v), metric_name=f"{role} {k}", **dataset_kwargs)
        for role, split, scores in results for k, v in (scores or {}).items()
        if k != "loss" and v is not None and math.isfinite(float(v))
    ]  # fmt: skip
    regression = not data.get("label_names")
    return ModelCardData(base_model=base_model_id(model), library_name=library,
                         pipeline_tag=_TASK if library == "transformers" else None,
                         tags=["steadytune", "regression" if regression else _TASK], datasets=[dataset.id],
                         metrics=[metric], model_name=name, eval_results=evals or None)  # fmt: skip


def _document(card_data: Any, body: str) -> str:
    from huggingface_hub import ModelCard

    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}"))


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _base_link(model: str) -> str:
    hub_id = base_model_id(model)
    return f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else f"the local folder `{model_label(model)}`"


def _data_section(config: dict[str, Any], data: dict[str, Any], dataset: DatasetRef, *, small: bool = False) -> str:
    sizes = data["sizes"]
    if dataset.on_hub:
        where = f"the hub's `{dataset.id}`" + (f" (config `{dataset.config}`)" if dataset.config else "")
        if data.get("glue_dir"):
            where += f", read from the GLUE TSV files of a folder named `{Path(data['glue_dir']).name}`"
    else:
        files = data.get("files") or {}
        where = ", ".join(f"{split} `{Path(str(f)).name}`" for split, f in files.items()) or "data given in Python"
    labels = ", ".join(f"`{x}`" for x in data.get("label_names") or []) or "a real number (regression)"
    prints = ", ".join(f"{k} {v}" for k, v in (data.get("fingerprints") or {}).items())
    return f"""## Data

{data["name"]}: {sizes["train"]} training, {sizes["validation"]} validation and {sizes["test"]} test examples from
{where}. Protocol: {data.get("protocol", "-")}; train_size {data.get("train_size") or "all rows"}, data_seed
{data.get("data_seed")}, split_seed {data.get("split_seed")}. Text columns: {", ".join(data["text_columns"])};
labels: {labels}. Row fingerprints: {prints}.{"" if small else _rows_sentence(config, data, dataset)}
"""


def _rows_sentence(config: dict[str, Any], data: dict[str, Any], dataset: DatasetRef) -> str:
    """Which rows steadytune's validation and test splits are (`split_names`), as the model-index names them."""
    names = split_names(config, data)
    of = f" of `{dataset.id}`" if dataset.on_hub else ""
    return (f"\nIn the model-index, validation (the rows the choices read) is {names['validation']}{of} and test "
            f"(rows no choice read) {names['test']}{of}.")  # fmt: skip


def _usage(data: dict[str, Any], max_length: int) -> str:
    pair = len(data["text_columns"]) > 1
    texts = '["first text", "the second text"]'
    call = f'tokenizer({texts}, ["its pair", "and its pair"], ' if pair else f"tokenizer({texts}, "
    read = ("logits.squeeze(-1)  # the predicted scores" if not data.get("label_names")
            else "[model.config.id2label[i] for i in logits.argmax(-1).tolist()]")  # fmt: skip
    return f"""## How to use

`MODEL` is this folder (or its hub id, once pushed). With transformers:

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained("MODEL").eval()
tokenizer = AutoTokenizer.from_pretrained("MODEL")
batch = {call}padding=True, truncation=True, max_length={max_length}, return_tensors="pt")
with torch.no_grad():
    logits = model(**batch).logits
print({read})
```

With steadytune, over a CSV, TSV or JSONL file holding the column(s) {", ".join(data["text_columns"])}
(`steadytune.json` in this folder holds the text columns, labels and max length it was trained with):

```bash
steadytune predict --model MODEL --input texts.csv --output predictions.csv
```
"""


def _verdict(result: Any) -> str:
    """The failed flag in words: why the run counts as failed (`steadytune.metrics.failure`), or that it did not."""
    base, m = result.baseline or {}, result.metric
    against = f"the best constant predictor's {_number(base.get('score'))} ({base.get('predictor', '-')})"
    if result.failure == "diverged":
        return (f"**Failed: the run diverged** (a non-finite training loss after step {result.steps}). These weights "
                "are its best-validation checkpoint before that.")  # fmt: skip
    if result.failure == "collapsed":
        mse = (result.last.get("test") or {}).get("mse")
        return (f"**Failed: the run collapsed to predicting the mean**: its last test MSE {_number(mse)} is no lower "
                f"than predicting the training labels' mean ({_number(base.get('mse'))}).")  # fmt: skip
    if result.failed:
        return (f"**Failed**: the last checkpoint's test {m} {_number(result.test_last)} is no better than {against}. "
                "These weights are kept so the run can be inspected, not because they are useful.")  # fmt: skip
    return f"**Not failed**: the last checkpoint's test {m} {_number(result.test_last)} beats {against}."


def run_card(result: Any) -> str:
    """The model card of one `train --save-model` run (`result` a `steadytune.record.RunResult`): the saved weights
    are the best-validation checkpoint, so the model-index holds its validation and test scores."""
    from .recipes import Recipe

    config, data, m = result.config, result.data, result.metric
    dataset = dataset_ref(config, data)
    name = f"{data['name']}-{config['recipe']}-seed{config['seed']}"
    best, last = result.best, result.last
    rows = split_names(config, data)
    card_data = _card_data(config["model"], dataset, data, m, name,
                           [(role, rows[role], best.get(role)) for role in ("validation", "test")])  # fmt: skip
    keys = [k for k in dict.fromkeys([*(best.get("test") or {}), *(last.get("test") or {})]) if k != "loss"]
    rows = [f"| checkpoint | step | split | {' | '.join(keys)} |", "|---|---:|---|" + "---:|" * len(keys)]
    for label, point in (("best validation (these weights)", best), ("last", last)):
        for split in ("validation", "test"):
            scores = point.get(split) or {}
            rows.append(f"| {label} | {point.get('step', '-')} | {split} | "
                        + " | ".join(_number(scores.get(k)) for k in keys) + " |")  # fmt: skip
    recipe_rows = ["| field | value | meaning |", "|---|---|---|"]
    for f in fields(Recipe):
        if f.name != "name":
            meaning = f.metadata.get("help", "").replace("|", "/")
            recipe_rows.append(f"| {f.name} | `{config.get(f.name)}` | {meaning} |")
    base = result.baseline or {}
    mean = (f" Predicting the training labels' mean gives test MSE {_number(base.get('mse'))}."
            if base.get("mse") is not None else "")  # fmt: skip
    surgery = result.surgery or {}
    changed = "; ".join(f"{k}: {len(v)} ({', '.join(v[:4])}{', …' if len(v) > 4 else ''})"
                        for k, v in surgery.items() if v) or "none"  # fmt: skip
    t, v = result.timings, result.versions
    libs = ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "tokenizers", "python", "cpu") if k in v)
    body = f"""# {data["name"]} fine-tuned from {model_label(config["model"])} with steadytune

{_verdict(result)}

This model is {_base_link(config["model"])} fine-tuned once with `steadytune train` (recipe `{config["recipe"]}`,
seed {config["seed"]}). It holds the best-validation checkpoint (step {best.get("step")}); the failed flag is
decided on the last checkpoint (steadytune's rule, after Mosbach et al. 2021: failed when the last test score is
no better than the best constant predictor's, the run diverged, or a regression collapsed to the mean).

## Results

{m} is the metric that picks the best checkpoint and decides failure.

{chr(10).join(rows)}

## Baselines

The best constant predictor scores test {m} {_number(base.get("score"))} ({base.get("predictor", "-")}); always
predicting the test split's majority class scores {_number(result.majority_baseline)}.{mean}

{_data_section(config, data, dataset)}
## Recipe

`{config["recipe"]}`, every field:

{chr(10).join(recipe_rows)}

Run settings: max_length {config["max_length"]}, num_evals {config["num_evals"]}, eval_batch_size
{config["eval_batch_size"]}, device {config["device"]}, precision {config["precision"]} (as resolved), fast_path
{config["fast_path"]}, compact_embedding {config["compact_embedding"]}.

## Seeds

seed {config["seed"]} (data order and dropout), init_seed {config["init_seed"]} (the new head and re-initialised
layers), data_seed {config["data_seed"]} (the training subset), split_seed {config["split_seed"]} (the
validation/test split).

## Training

{result.steps} of {result.total_steps} steps, {len(result.evals)} validation evaluations; diverged:
{"yes" if result.diverged else "no"}. New parameters: {", ".join(result.new_parameters) or "none"}. Changed by the
recipe: {changed}. Wall time {t.get("wall_s", 0):.1f} s (training {t.get("train_s", 0):.1f} s, evaluation
{t.get("eval_s", 0):.1f} s). steadytune {v.get("steadytune", __version__)}; {libs}.

{_usage(data, config["max_length"])}"""
    return _document(card_data, body)


def fit_card(result: Any) -> str:
    """The model card of `steadytune fit`'s chosen model (`result` a `steadytune.fitting.FitResult`)."""
    from .probe import PROBE_FAMILIES

    config, data, metric = result.config, result.data, result.metric
    dataset = dataset_ref(config, data)
    chosen = next((c for c in result.candidates if c["name"] == result.chosen), None) or {}
    validation = (chosen.get("best") or {}).get("validation")
    family = chosen.get("family") in PROBE_FAMILIES  # the probe, contrastive and LP-FT families
    # their models are `steadytune.probe.ProbeModel` folders, but where they are BERT-style heads over the pooler,
    # which are saved as transformers classifiers (`steadytune.probe.as_classifier`)
    probe = family and (chosen.get("probe") or {}).get("format") != "transformers"
    judged = result.judgement or {}
    small = judged.get("split") == "cross-validated"
    cv = chosen.get("cv") or {}
    if small:  # one score, cross-validated over every row (the record's validation and test hold the same one)
        results = [("cross-validated", f"all {cv.get('rows', '')} rows ({cv.get('folds', 'k')}-fold cross-validated)",
                    result.test)]  # fmt: skip
    else:
        rows = split_names(config, data)
        results = [("validation", rows["validation"], validation), ("test", rows["test"], result.test)]
    card_data = _card_data(config["model"], dataset, data, metric, f"{data['name']}-{result.chosen}", results,
                           library="steadytune" if probe else "transformers")  # fmt: skip
    rows = _small_rows(result, metric) if small else _candidate_rows(result, metric)
    s = result.settings
    if small:
        headline = ("A model whose family beats every constant predictor by more than chance, cross-validated over "
                    "every row of a small file" if result.success else
                    "No model: the chosen family does not beat chance, cross-validated over every row")  # fmt: skip
    else:
        headline = ("A model that beats every constant predictor by more than chance on test rows that chose "
                    "nothing" if result.success else
                    "No model: the chosen candidate does not beat chance on the test rows")  # fmt: skip
    corrected = f" Corrected for: {judged['corrected_for']}." if judged.get("corrected_for") else ""
    lrs, checks_at = ", ".join(f"{x:g}" for x in s["lrs"]), ", ".join(f"{x:g}" for x in s["check_at"])
    what = _probe_text(chosen, config) if family else (
        f"This model is {_base_link(config['model'])} fine-tuned by `steadytune fit`: the best-validation checkpoint "
        "of the chosen candidate.")  # fmt: skip
    how = {"probe": "probed", "contrastive": "tuned contrastively",
           "lp-ft": "linear-probed then fine-tuned"}.get(chosen.get("family"), "fine-tuned")  # fmt: skip
    body = f"""# {data["name"]} {how} from {model_label(config["model"])} with steadytune `fit`

**{headline}.** {result.verdict}.{corrected}

{what}

{_data_section(config, data, dataset, small=small)}{_SMALL if small else ""}
{_small_sections(result, metric) if small else _search_sections(result, metric, lrs, checks_at)}
## Candidates

{chr(10).join(rows)}

{_small_compute(result) if small else _compute(result)}

{_probe_usage(data) if probe else _usage(data, config["max_length"])}"""
    return _document(card_data, body)


def _candidate_rows(result: Any, metric: str) -> list[str]:
    """The candidates table of a held-out fit: each candidate's checks, outcome and best-checkpoint scores."""
    rows = ["| candidate | seed | lr | at the checks | outcome | best validation | test (best) |",
            "|---|---:|---:|---|---|---:|---:|"]  # fmt: skip
    for c in result.candidates:
        checks = "; ".join(f"step {k['step']}: val {_number(k.get('validation'))}, loss {_number(k.get('loss'))}"
                           for k in c["checks"] if "loss" in k)  # fmt: skip
        best = c.get("best") or {}
        outcome = c["status"] + (f" ({c['reason']})" if c["reason"] else "")
        name = c["name"] + (" **(chosen)**" if c["name"] == result.chosen else "")
        scores = [_number((best.get(split) or {}).get(metric)) for split in ("validation", "test")]
        lr = f"{c['lr']:g}" if c.get("family", "finetune") == "finetune" else "-"  # a family has no learning rate
        rows.append(f"| {name} | {c['seed']} | {lr} | {checks or '-'} | {outcome} | {scores[0]} | {scores[1]} |")
    return rows


def _small_rows(result: Any, metric: str) -> list[str]:
    """The candidates table of a small file: each family's cross-validated score (its own folds, and the folds the
    families were compared on) and its test."""
    rows = [
        f"| family | outcome | cross-validated {metric} | on the shared folds | its test |",
        "|---|---|---:|---:|---|",
    ]
    for c in result.candidates:
        cv = c.get("cv") or {}
        name = c["name"] + (" **(chosen)**" if c["name"] == result.chosen else "")
        outcome = c["status"] + (f" ({c['reason']})" if c["reason"] else "")
        folds = f" ({cv['folds']}-fold)" if "folds" in cv else ""
        p = "" if cv.get("p") is None else f", p = {cv['p']:.2g}"
        rows.append(f"| {name} | {outcome} | {_number(cv.get('score'))}{folds} | {_number(cv.get('compare'))} | "
                    f"{cv.get('test', '-')}{p} |")  # fmt: skip
    return rows


def _search_sections(result: Any, metric: str, lrs: str, checks_at: str) -> str:
    """The Recipe and Baselines sections of a held-out fit."""
    config, s, base, test = result.config, result.settings, result.baselines, result.test or {}
    return f"""## Recipe

`{config["recipe"]}` with the candidates' learning rates; {config["batch_size"]} examples a batch,
{result.full_steps // max(1, len(result.candidates))} steps a candidate, precision {config["precision"]},
max length {config["max_length"]}. Search: {s["candidates"]} candidates over learning rates {lrs}, judged at
{checks_at} of the budget, {s["keep"]} kept to the end.

## Baselines

The best constant predictor scores {metric} {_number(base["validation"]["score"])} on validation
({base["validation"]["predictor"]}) and {_number(base["test"]["score"])} on test ({base["test"]["predictor"]}).
The chosen model's test {metric}: {_number(test.get(metric))}.
"""


def _small_sections(result: Any, metric: str) -> str:
    """What a small file's fit tried instead of a recipe search, and its one baseline: the verdict's."""
    families = ", ".join(c["name"] for c in result.candidates)
    judged = result.judgement or {}
    why = getattr(result, "choice", "")  # the probe against a family that trains the encoder (`choose_small`)
    chosen = f"\nChosen: {why}." if why else ""
    return f"""## Families

On a small file `fit` tries its feature families alone ({families}), each with its head fixed in advance, and no
fine-tuning candidates: a held-out split of these rows could not choose among them, nor judge them.{chosen}

## Baselines

The verdict's test compares the chosen family's out-of-fold predictions with the best constant predictor over the
same {judged.get("n", "")} rows: {judged.get("test", "-")}. The chosen model's cross-validated {metric}:
{_number((result.test or {}).get(metric))}.
"""


def _compute(result: Any) -> str:
    return f"""## Compute

{result.steps} training steps over all candidates ({result.steps / max(1, result.full_steps):.0%} of running every
candidate to the end). steadytune {result.version}."""


def _small_compute(result: Any) -> str:
    return f"""## Compute

{_family_steps(result)} (cross-validation folds and the delivered model). steadytune {result.version}."""


def _family_steps(result: Any) -> str:
    """A small file's training steps by family, in words: "3200 contrastive pair steps and 300 LP-FT steps"."""
    words = {"contrastive": "contrastive pair steps", "lp-ft": "LP-FT steps"}
    counts = {f: sum(c.get("steps", 0) for c in result.candidates if c.get("family") == f) for f in words}
    said = [f"{n} {words[f]}" for f, n in counts.items() if n]
    return " and ".join(said) if said else "no training steps: the probe alone"


_SMALL = """
A small file: its held-out splits were too small to choose or to judge, so every row above counted. Each family was
cross-validated over all of them and the delivered model was fitted on all of them; the splits served nothing.
"""


def _probe_text(chosen: dict[str, Any], config: dict[str, Any]) -> str:
    """What a probe or a contrastive model is, for the card of a fit that chose one."""
    info = chosen.get("probe") or {}
    reg = f"C = {info['C']:.3g}" if "C" in info else f"alpha = {info.get('alpha', float('nan')):.3g}"
    cv = chosen.get("cv")
    how = (
        f"fixed in advance and fitted on all {cv['rows']} rows, after {cv['folds']}-fold cross-validation over "
        "them judged it"
        if cv
        else f"chosen by {info.get('folds', '')}-fold cross-validation on the training rows"
    )
    if chosen.get("family") == "lp-ft":
        encoder = (f"{_base_link(config['model'])} **fine-tuned together with its head** (LP-FT: the head below "
                   f"was fitted on the frozen encoder's features first, then both were trained for "
                   f"{info.get('epochs', '?')} epochs, batch {info.get('batch_size', '?')}, learning rate "
                   f"{info.get('lr', float('nan')):g}, bias-corrected AdamW)")  # fmt: skip
        family = "LP-FT"
    elif chosen.get("family") == "contrastive":
        encoder = (f"{_base_link(config['model'])} **tuned contrastively** (SetFit's first stage: "
                   f"{info.get('pairs', '?')} pairs drawn from the labels, {info.get('iterations', '?')} rounds, "
                   f"batch {info.get('batch_size', '?')}, learning rate {info.get('lr', float('nan')):g}, cosine "
                   "similarity loss"
                   + (f"; the label names joined the rows as {info['label_rows']} partner rows" if info.get(
                       "label_rows") else "") + ")")  # fmt: skip
        family = "contrastive"
    else:
        encoder, family = f"{_base_link(config['model'])} **frozen** (its weights as published)", "probe"
    if info.get("format") == "transformers":
        folder = ("The head reads the encoder's pooler, as its own sequence-classification class does, so this folder "
                  "is that class (`config.json`, `model.safetensors`, the tokenizer), which `transformers.pipeline`, "
                  "`steadytune predict` and `steadytune.predict` all load.")  # fmt: skip
    else:
        folder = ("The encoder is in `encoder/`, the head in `probe_head.safetensors`. transformers has no class for "
                  "a head over pooled sentence features, so `transformers.pipeline` cannot load this folder (it "
                  "refuses: there is no `config.json` at its top); `steadytune predict` and `steadytune.predict` "
                  "can.")  # fmt: skip
    return (
        f"This model is {encoder}, its sentence "
        f"features ({info.get('pooling', 'pooled')}) and a linear head (scikit-learn `{info.get('head', '')}`, "
        f"{reg}, {how}): `steadytune fit`'s {family} family. {folder}"
    )


def _probe_usage(data: dict[str, Any]) -> str:
    return f"""## How to use

`MODEL` is this folder. With steadytune, over a CSV, TSV or JSONL file holding the column(s)
{", ".join(data["text_columns"])}, or from Python:

```bash
steadytune predict --model MODEL --input texts.csv --output predictions.csv
```

```python
import steadytune

steadytune.predict("MODEL", ["first text", "another text"])
```
"""
