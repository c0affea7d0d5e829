"""A cell's class from its class probabilities."""

from __future__ import annotations

import numpy as np


def choose_labels(p: np.ndarray, groups: list[list[int]] | None) -> np.ndarray:
    """Class codes of probabilities (…, classes): the most probable, or the group's best.

    With `groups`, the most probable class of the most probable group. A two-level model's
    group probabilities are the world-wide model's shares, so choosing the group first makes a
    cell's label agree with the world-wide model by construction: a window it calls mostly
    water is River or SeaLake whatever the patch CNN prefers among other groups.
    """
    if groups is None:
        return p.argmax(-1)
    group_p = np.stack([p[..., g].sum(-1) for g in groups], axis=-1)
    best = group_p.argmax(-1)
    labels = np.zeros(p.shape[:-1], dtype=np.int64)
    for i, members in enumerate(groups):
        where = best == i
        labels[where] = np.asarray(members)[p[where][:, members].argmax(-1)]
    return labels
