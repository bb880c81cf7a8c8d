"""`steadytune tasks`, `recipes` and `audit`: what is available, and whether an optimizer is BERTAdam."""

from __future__ import annotations

import argparse
import dataclasses
import json

from ..errors import UserInputError

__all__ = ["cmd_audit", "cmd_recipes", "cmd_tasks"]


def cmd_tasks(args: argparse.Namespace) -> int:
    from ..data import GLUE_TASKS

    rows = [(t.name, t.folder, t.metric, "regression" if t.is_regression else " / ".join(t.label_names),
             t.description) for t in GLUE_TASKS.values()]  # fmt: skip
    if args.json:
        print(json.dumps([dict(zip(("name", "folder", "metric", "labels", "description"), r)) for r in rows],
                         indent=2))  # fmt: skip
        return 0
    header = ("task", "folder", "metric", "labels", "description")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(f"{str(c):<{w}}" for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from ..audit import audit_optimizer, resolve_optimizer

    given = {"lr": args.lr, "betas": args.betas, "eps": args.eps, "weight_decay": args.weight_decay}
    hyperparameters = {k: v for k, v in given.items() if v is not None} | dict(args.option)
    if args.recipe is not None:
        if args.optimizer is not None or hyperparameters:
            raise UserInputError("give an optimizer with its options, or --recipe (whose settings are its own)")
        from ..recipes import Recipe

        recipe = Recipe.parse(args.recipe).resolved(None)  # no model here: an unset lr audits at the paper's 2e-5
        factory, hyperparameters = recipe.optimizer_class, recipe.optimizer_kwargs()
    elif args.optimizer is None:
        raise UserInputError("name an optimizer (e.g. torch.optim.AdamW) or give --recipe")
    else:
        factory = resolve_optimizer(args.optimizer)
    report = audit_optimizer(factory, **hyperparameters)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
        if args.recipe is not None and hyperparameters.get("prior_weight_decay"):
            print("Note: this recipe decays toward the weights of the first step (pre-trained weight decay), which "
                  "the probes start from, so they see no decay.")  # fmt: skip
    return report.exit_code


def cmd_recipes(args: argparse.Namespace) -> int:
    from ..recipes import PRESETS, Recipe

    if args.recipe:  # expand the given recipes to every field
        recipes = [Recipe.parse(text) for text in args.recipe]
        if args.json:
            print(json.dumps([r.to_dict() for r in recipes], indent=2))
            return 0
        for r in recipes:
            print(r.name)
            for f in dataclasses.fields(r):
                if f.name != "name":
                    mark = "*" if f.name in r.changes() else " "
                    value = getattr(r, f.name)
                    unset = f.name == "lr" and value is None
                    shown = "None (by the encoder: 1e-4 below 768 wide, else 2e-5)" if unset else repr(value)
                    print(f"  {mark} {f.name:<20} {shown}")
        return 0
    rows = []
    for name, preset in PRESETS.items():
        usage = name if preset.arg is None else f"{name}[:{preset.metavar}]"
        sets = {**preset.sets, **({preset.arg: preset.default} if preset.arg else {})}
        rows.append({"preset": usage, "expands to": ", ".join(f"{k}={v!r}" for k, v in sets.items()),
                     "what": preset.summary, "source": preset.source})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["preset"]) for r in rows)
    for r in rows:
        print(f"{r['preset']:<{width}}  {r['expands to']}\n{'':<{width}}  {r['what']}\n{'':<{width}}  "
              f"source: {r['source']}")  # fmt: skip
    print(
        "\nJoin presets with '+', give a preset's value after ':', set any field with field=value, e.g.\n"
        "  adam+reinit:2   bertadam+lr=5e-5+batch_size=16   adam+llrd:0.9+longer:800\n"
        "`steadytune recipes RECIPE` shows every field of a recipe (* marks a change from the defaults).\n"
        "train's default recipe is adam+reinit:2 at the encoder's learning rate; the paper's §3 set-up is paper."
    )
    return 0
