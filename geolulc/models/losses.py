"""Training losses of the patch classifiers, chosen with `geolulc train --loss`."""

from __future__ import annotations

import torch
from torch import nn

LOSSES = ("label-smoothing", "ce", "bahri")


def classification_loss(logits: torch.Tensor, target: torch.Tensor, kind: str,
                        smoothing: float = 0.05, penalty: float = 1.0) -> torch.Tensor:
    """Mean loss of a batch.

    - `ce`: cross-entropy.
    - `label-smoothing`: cross-entropy against targets that keep `smoothing` of their mass
      spread over all classes, so the network is not pushed to infinite logits on the clean,
      easy majority of EuroSAT (Szegedy et al. 2016).
    - `bahri`: the improved cross-entropy of Bahri et al. (IEEE GRSL 17(6), 2020): cross-entropy
      plus a penalty on the probability by which the strongest wrong class beats the true one,
      `penalty · max(0, max_{j≠y} p_j − p_y)`, which is zero for patches already right and
      puts the extra gradient on the hard, misclassified ones.
    """
    logits = logits.float()
    if kind == "ce":
        return nn.functional.cross_entropy(logits, target)
    if kind == "label-smoothing":
        return nn.functional.cross_entropy(logits, target, label_smoothing=smoothing)
    if kind == "bahri":
        probs = logits.softmax(1)
        true = probs.gather(1, target[:, None]).squeeze(1)
        wrong = probs.scatter(1, target[:, None], 0.0).amax(1)
        return nn.functional.cross_entropy(logits, target) + penalty * (wrong - true).clamp(
            min=0).mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                      temperature: float = 2.0) -> torch.Tensor:
    """KL divergence from the teacher's probabilities softened at temperature T (Hinton et al. 2015).

    Both are given as logits; the loss is scaled by T² so that its gradient keeps the size of the
    hard-label loss's.
    """
    t = temperature
    log_student = nn.functional.log_softmax(student.float() / t, dim=1)
    soft_teacher = nn.functional.softmax(teacher.float() / t, dim=1)
    return nn.functional.kl_div(log_student, soft_teacher, reduction="batchmean") * t * t
