"""Model cards: the README.md of a saved model folder, in the Hugging Face format (YAML metadata, then prose).

The metadata follows the hub's model-card spec (`huggingface_hub.ModelCard.load` reads it back): `base_model`,
`library_name`, `tags`, `datasets`, `metrics` and a `model-index` with the test results. The prose states what a
user needs to trust or distrust the model: the data, the recipe, every candidate's outcome, the constant
baselines, the compute used and steadytune's version.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["fit_card"]


def _yaml(value: Any, indent: int = 0) -> str:
    """A small YAML writer for nested dicts, lists and scalars (scalars as JSON, which YAML reads as is)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{k}: {json.dumps(v, ensure_ascii=False)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, dict):
                body = _yaml(v, indent + 2)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {json.dumps(v, ensure_ascii=False)}")
        return "\n".join(lines)
    return f"{pad}{json.dumps(value, ensure_ascii=False)}"


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def fit_card(result: Any) -> str:
    """The model card of `steadytune fit`'s chosen model (`result` a `steadytune.fitting.FitResult`)."""
    config, data, metric = result.config, result.data, result.metric
    test = result.test or {}
    task_type = "text-classification"
    metadata = {
        "base_model": config["model"],
        "library_name": "transformers",
        "pipeline_tag": task_type,
        "tags": ["steadytune", "text-classification" if data.get("label_names") else "regression"],
        "datasets": [data["name"]],
        "metrics": [metric],
        "model-index": [{
            "name": f"{data['name']}-{result.chosen}",
            "results": [{
                "task": {"type": task_type},
                "dataset": {"name": data["name"], "type": data["name"], "split": "test"},
                "metrics": [{"type": k, "value": v, "name": f"test {k}"} for k, v in test.items() if k != "loss"],
            }],
        }],
    }  # fmt: skip
    sizes = data["sizes"]
    rows = ["| candidate | seed | lr | at the checks | outcome | best validation | test (best) |",
            "|---|---:|---:|---|---|---:|---:|"]  # fmt: skip
    for c in result.candidates:
        checks = "; ".join(f"step {k['step']}: val {_number(k.get('validation'))}, loss {_number(k.get('loss'))}"
                           for k in c["checks"] if "loss" in k)  # fmt: skip
        best = c.get("best") or {}
        outcome = c["status"] + (f" ({c['reason']})" if c["reason"] else "")
        name = c["name"] + (" **(chosen)**" if c["name"] == result.chosen else "")
        scores = [_number((best.get(split) or {}).get(metric)) for split in ("validation", "test")]
        rows.append(
            f"| {name} | {c['seed']} | {c['lr']:g} | {checks or '-'} | {outcome} | {scores[0]} | {scores[1]} |"
        )
    base, s = result.baselines, result.settings
    headline = "A model that beats every constant predictor" if result.success else "No candidate beat chance"
    labels = ", ".join(map(str, data.get("label_names") or ["a real number"]))
    lrs, checks_at = ", ".join(f"{x:g}" for x in s["lrs"]), ", ".join(f"{x:g}" for x in s["check_at"])
    body = f"""# {data["name"]} fine-tuned from {config["model"]} with steadytune `fit`

**{headline}.** {result.verdict}.

## Data

{data["name"]}: {sizes["train"]} training, {sizes["validation"]} validation and {sizes["test"]} test examples
(text columns {", ".join(data["text_columns"])}; labels {labels}).

## Recipe

`{config["recipe"]}` with the candidates' learning rates; {config["batch_size"]} examples a batch,
{result.full_steps // max(1, len(result.candidates))} steps a candidate, precision {config["precision"]},
max length {config["max_length"]}. Search: {s["candidates"]} candidates over learning rates {lrs}, judged at
{checks_at} of the budget, {s["keep"]} kept to the end.

## Candidates

{chr(10).join(rows)}

## Baselines

The best constant predictor scores {metric} {_number(base["validation"]["score"])} on validation
({base["validation"]["predictor"]}) and {_number(base["test"]["score"])} on test ({base["test"]["predictor"]}).
The chosen model's test {metric}: {_number(test.get(metric))}.

## Compute

{result.steps} training steps over all candidates ({result.steps / max(1, result.full_steps):.0%} of running every
candidate to the end). steadytune {result.version}.
"""
    return f"---\n{_yaml(metadata)}\n---\n\n{body}"
