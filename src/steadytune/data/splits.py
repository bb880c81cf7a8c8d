"""The paper's data protocol: labelled examples in a `Split`, stratified halves of dev, class-balanced subsets.

GLUE test labels are hidden, so Zhang et al. (2021, §3) split each dev set into a validation half (to pick the best
checkpoint) and a test half (to report). Both splits use fixed seeds that never depend on the run seed, so every
trial of a study trains and tests on the same rows and only the optimisation differs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import UserInputError
from .seeds import DATA_SEED, SPLIT_SEED

__all__ = ["DATA_SEED", "SPLIT_SEED", "Split", "balanced_subset", "split_in_two"]

# Regression targets are stratified on deciles of the score (STS-B: 0-5 similarity), the discrete analogue of a
# label; ten bins keep every bin populated in a few hundred rows.
REGRESSION_BINS = 10


@dataclass(eq=False)
class Split:
    """Labelled examples: one or two text columns and a label per row (int ids, or floats for regression)."""

    texts: tuple[list[str], ...]
    labels: np.ndarray
    name: str = "split"
    source_rows: np.ndarray | None = field(default=None, repr=False)
    """Row number of each example in the file it came from (for error messages and predictions)."""

    def __post_init__(self) -> None:
        if not 1 <= len(self.texts) <= 2:
            raise ValueError(f"a split has one or two text columns, got {len(self.texts)}")
        if any(len(col) != len(self.labels) for col in self.texts):
            raise ValueError("text and label columns differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.labels.dtype.kind == "f"

    def concat(self, *others: Split, name: str | None = None) -> Split:
        """This split's rows followed by `others`' (the same number of text columns each), as one split."""
        parts = (self, *others)
        return Split(
            texts=tuple([t for part in parts for t in part.texts[i]] for i in range(len(self.texts))),
            labels=np.concatenate([np.asarray(part.labels) for part in parts]),
            name=name or self.name,
        )

    def select(self, indices: np.ndarray, name: str | None = None) -> Split:
        indices = np.asarray(indices, dtype=np.int64)
        return Split(
            texts=tuple([col[i] for i in indices] for col in self.texts),
            labels=self.labels[indices],
            name=name or self.name,
            source_rows=None if self.source_rows is None else self.source_rows[indices],
        )

    @cached_property
    def fingerprint(self) -> str:
        """A content hash: the tokenization cache's key, and a record of exactly which rows a run used."""
        h = hashlib.sha256()
        for col in self.texts:
            h.update("\x1f".join(col).encode())
            h.update(b"\x1e")
        h.update(np.ascontiguousarray(self.labels).tobytes())
        h.update(str(self.labels.dtype).encode())
        return h.hexdigest()[:16]

    def strata(self, *, most: int | None = None) -> np.ndarray | None:
        """What stratified splits keep in proportion: the class, or the score decile for regression.

        Regression uses fewer bins on small splits (at least 4 rows a bin, and at most `most` bins: a stratified
        part needs a row of each) and none when a bin would still hold a single row: binning a score is a
        convenience, not a constraint the user could have violated.
        """
        if not self.is_regression:
            return self.labels
        bins = min(REGRESSION_BINS, len(self) // 4, REGRESSION_BINS if most is None else most)
        if bins < 2:
            return None
        edges = np.unique(np.quantile(self.labels, np.linspace(0, 1, bins + 1)[1:-1]))
        strata = np.digitize(self.labels, edges)
        return strata if np.unique(strata, return_counts=True)[1].min() >= 2 else None


def _check_strata(split: Split, strata: np.ndarray, label_names: tuple[str, ...] | None) -> None:
    values, counts = np.unique(strata, return_counts=True)
    for value, count in zip(values, counts):
        if count < 2:
            what = f"class {label_names[value]!r}" if label_names else f"score bin {value}"
            raise UserInputError(
                f"{what} has only {count} example in the {split.name} split: too few to split it stratified"
            )


def split_in_two(
    split: Split,
    *,
    second_size: float | int = 0.5,
    seed: int = SPLIT_SEED,
    names: tuple[str, str] = ("validation", "test"),
    label_names: tuple[str, ...] | None = None,
) -> tuple[Split, Split]:
    """Stratified split into two parts (default: halves, the paper's validation/test split of dev)."""
    n = len(split)
    # scikit-learn's sizes: a fraction rounds the second part up
    n_second = math.ceil(second_size * n) if isinstance(second_size, float) else int(second_size)
    n_first = n - n_second
    if n_first < 1 or n_second < 1:
        raise UserInputError(f"the {split.name} split has {n} example(s): too few to split into {names[0]} and "
                             f"{names[1]}")  # fmt: skip
    strata = split.strata(most=min(n_first, n_second))
    if strata is not None:
        _check_strata(split, strata, label_names)
        k = len(np.unique(strata))
        if min(n_first, n_second) < k:
            raise UserInputError(
                f"the {split.name} split has {n} examples of {k} classes: too few to split it stratified into "
                f"{names[0]} ({n_first}) and {names[1]} ({n_second}) with every class in both; give more examples "
                "per class, or the splits as files (--validation-file, --test-file)"
            )
    first, second = train_test_split(
        np.arange(len(split)), test_size=second_size, random_state=seed, stratify=strata, shuffle=True
    )
    return split.select(np.sort(first), names[0]), split.select(np.sort(second), names[1])


def balanced_subset(
    split: Split, n: int, *, seed: int = DATA_SEED, label_names: tuple[str, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-balanced `n`-example subset (the paper's "1k" setting) and of the rows left over.

    Each class gets n // C examples, the first n % C classes one more. Regression draws n rows at random.
    """
    if n < 1:
        raise UserInputError(f"train size must be positive, got {n}")
    if n > len(split):
        raise UserInputError(f"train size {n} is larger than the {split.name} split ({len(split)} examples)")
    rng = np.random.default_rng(seed)
    if split.is_regression:
        chosen = rng.choice(len(split), size=n, replace=False)
    else:
        classes = np.unique(split.labels)
        if n < len(classes):
            raise UserInputError(f"train size {n} is smaller than the number of classes ({len(classes)})")
        quota = np.full(len(classes), n // len(classes))
        quota[: n % len(classes)] += 1
        chosen_parts = []
        for cls, k in zip(classes, quota):
            rows = np.flatnonzero(split.labels == cls)
            if len(rows) < k:
                name = label_names[cls] if label_names else str(cls)
                raise UserInputError(
                    f"class {name!r} has {len(rows)} examples in the {split.name} split; a class-balanced subset "
                    f"of {n} needs {k}"
                )
            chosen_parts.append(rng.choice(rows, size=k, replace=False))
        chosen = np.concatenate(chosen_parts)
    chosen = np.sort(chosen)
    rest = np.setdiff1d(np.arange(len(split)), chosen, assume_unique=True)
    return chosen, rest
