# Copyright (c) cribo-mm contributors. All rights reserved.
"""Collapse diagnostics of a DINO-style teacher distribution.

Two failure modes stop self-distillation from learning, and both show in the
teacher's centred, sharpened distribution ``p_i = softmax((t_i - c) / tau)``
over the ``K = out_dim`` prototypes:

* **uniform plateau**: every ``p_i`` is (close to) uniform, so the mean
  per-row entropy is (close to) ``log K`` and the loss is stuck at
  ``log K`` too. This is where training starts from a random teacher whose
  logits differ by much less than ``tau``.
* **one-hot collapse**: every row puts its mass on the same prototype; the
  per-row entropy is small but so is the entropy of the batch mean.

The two quantities below separate them. ``entropy`` is the mean over rows of
``H(p_i)``; ``batch_entropy`` is ``H(mean_i p_i)``, the entropy of the
batch-mean distribution (how many prototypes the batch uses). Their
difference ``batch_entropy - entropy >= 0`` (concavity of H) is the
generalised Jensen-Shannon divergence of the rows, i.e. how much the rows
differ from each other: 0 under both collapses, up to ``log K`` when the
rows are one-hot on different prototypes. Healthy training has a low
``entropy`` and a high ``batch_entropy``.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from cribo_mm.models.utils.precision import fp32_region

__all__ = ['entropy', 'teacher_collapse_stats']


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    """Shannon entropy in nats, ``-sum p log p`` with ``0 log 0 = 0``.

    Args:
        probs (Tensor): Probabilities summing to 1 along ``dim``.
        dim (int): The distribution dimension. Defaults to -1.

    Returns:
        Tensor: ``probs.shape`` without ``dim``.
    """
    logp = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    return -(probs * logp).sum(dim=dim)


@torch.no_grad()
def teacher_collapse_stats(teacher: Tensor, center: Tensor,
                           temp: float) -> Dict[str, Tensor]:
    """Entropy statistics of the teacher distribution used by the loss.

    Args:
        teacher (Tensor): (N, K) teacher head outputs (N >= 1).
        center (Tensor): (1, K) centre subtracted before sharpening.
        temp (float): Teacher temperature.

    Returns:
        dict[str, Tensor]: 0-dim float32 ``entropy`` (mean row entropy),
        ``batch_entropy`` (entropy of the mean row) and ``max_entropy``
        (``log K``, the value of a uniform distribution).

    Raises:
        ValueError: If ``teacher`` is not a non-empty (N, K) tensor.
    """
    if teacher.dim() != 2 or teacher.shape[0] == 0:
        raise ValueError('teacher_collapse_stats needs (N, K) teacher '
                         f'outputs with N >= 1, got {tuple(teacher.shape)}')
    # log-softmax keeps the per-row entropy exact for very peaked rows
    with fp32_region(teacher.device):  # float32 also under autocast
        # (N, K) temporaries: the centred logits (scaled in place), logp,
        # probs
        logp = F.log_softmax(
            torch.sub(teacher.float(), center.float()).div_(temp), dim=-1)
        probs = logp.exp()
        row_entropy = -torch.linalg.vecdot(probs, logp).mean()
        return dict(
            entropy=row_entropy,
            batch_entropy=entropy(probs.mean(dim=0)),
            max_entropy=row_entropy.new_tensor(math.log(teacher.shape[1])))
