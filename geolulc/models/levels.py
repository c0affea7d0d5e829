"""The two levels of a two-level model, apart: the world-wide group and the patch CNN's class.

A two-level model (`DynamicWorldTwoLevel`) answers P(class) = P(group) × P(class | group). For
patches, `evaluate` and `classify` also say what each level said: Dynamic World's group shares
over the window, and the patch CNN's own ten-class answer, so a user can see which level
decided and how good each is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geolulc.models.model import Model, prepare_input
from geolulc.models.network import WORLD_GROUPS, DynamicWorldTwoLevel, TwoLevelHead

#: Patches per forward pass when the levels are computed (lone patches, evaluation sets).
BATCH = 64


@dataclass(frozen=True)
class Levels:
    """Each level's answer for a batch of patches."""

    groups: list[str]
    """Names of the world-wide groups (`WORLD_GROUPS`)."""
    group_shares: np.ndarray
    """(N, groups): Dynamic World's class shares over each window, summed by group."""
    patch_classes: list[str]
    """The patch CNN's classes (EuroSAT's ten)."""
    patch_probabilities: np.ndarray
    """(N, patch classes): the patch CNN alone, over all its classes."""
    class_group: list[int]
    """The group of each patch class."""


def is_two_level(model: Model) -> bool:
    """Whether the model's answer is a world-wide group times a patch CNN's class within it."""
    return isinstance(model.network, DynamicWorldTwoLevel)


def patch_levels(model: Model, x: np.ndarray) -> Levels:
    """Both levels of a two-level `model` for DN patches `x` (N, bands, h, w), in fp32 torch."""
    net = model.network
    assert isinstance(net, DynamicWorldTwoLevel)  # callers check `is_two_level`
    head = net.head
    assert isinstance(head, TwoLevelHead)
    device = next(net.parameters()).device
    shares, probs = [], []
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            batch = prepare_input(torch.as_tensor(x[i:i + BATCH]).to(device), model.card.input)
            pooled = net.embedding(batch).float()
            probs.append(torch.softmax(head.linear(pooled[:, :head.features]), -1).cpu())
            shares.append((pooled[:, head.features:] @ head.group_of_world).cpu())
    patch_classes = model.classes[:head.head_classes]
    return Levels([name for name, _, _ in WORLD_GROUPS], torch.cat(shares).numpy(),
                  patch_classes, torch.cat(probs).numpy(),
                  [int(g) for g in head.group_of_class[:head.head_classes]])


def level_scores(levels: Levels, y: np.ndarray, classes: list[str]) -> dict[str, float | int]:
    """How each level does on labelled patches (`y`: indices into `classes`).

    - patch_accuracy: the patch CNN alone, argmax over its ten classes;
    - group_accuracy: Dynamic World's largest group is the group of the true class;
    - within_group_accuracy: on patches whose true group holds several classes, the CNN's
      choice among that group's classes is the true one (what the CNN decides in a map).
    """
    known = [k for k, i in enumerate(y) if classes[i] in levels.patch_classes]
    y = y[known]  # a patch labelled BareGround or SnowAndIce has no patch-CNN class
    levels = Levels(levels.groups, levels.group_shares[known], levels.patch_classes,
                    levels.patch_probabilities[known], levels.class_group)
    truth = [levels.patch_classes.index(classes[i]) for i in y]
    patch_pred = levels.patch_probabilities.argmax(1)
    true_group = np.array([levels.class_group[t] for t in truth])
    group = np.array(levels.class_group)
    within_hits, within_n = 0, 0
    for p, t, g in zip(levels.patch_probabilities, truth, true_group):
        members = np.flatnonzero(group == g)
        if len(members) > 1:
            within_n += 1
            within_hits += int(members[p[members].argmax()] == t)
    return {
        "patch_accuracy": round(float((patch_pred == np.array(truth)).mean()), 4),
        "group_accuracy": round(float((levels.group_shares.argmax(1) == true_group).mean()), 4),
        "within_group_accuracy": round(within_hits / within_n, 4) if within_n else 0.0,
        "within_group_n": within_n,
    }
