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
from torch import Tensor

from cribo_mm.models.utils.precision import fp32_region
from cribo_mm.models.utils.row_blocks import block_rows_for

__all__ = ['entropy', 'row_entropy', 'summarize', 'teacher_collapse_stats']


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


def row_entropy(logits: Tensor, probs: Tensor) -> Tensor:
    """Entropies of ``probs = softmax(logits)``, row-wise, in nats.

    ``H(p) = logsumexp(z) - p . z``: exact algebra that needs no
    ``log p`` (rows with underflowed probabilities stay exact).

    Args:
        logits (Tensor): (N, K) float logits ``z``.
        probs (Tensor): (N, K) ``softmax(z)``.

    Returns:
        Tensor: (N,) entropies, rounding below 0 clamped to 0.
    """
    return (torch.logsumexp(logits, dim=-1) -
            torch.linalg.vecdot(probs, logits)).clamp_min(0)


def summarize(entropy_sum: Tensor, prob_sum: Tensor,
              rows: int) -> Dict[str, Tensor]:
    """The statistics from running sums over ``rows`` teacher rows.

    Args:
        entropy_sum (Tensor): 0-dim sum of the row entropies.
        prob_sum (Tensor): (K,) sum of the rows' probabilities.
        rows (int): Number of rows summed (>= 1).

    Returns:
        dict[str, Tensor]: See :func:`teacher_collapse_stats`.
    """
    return dict(
        entropy=(entropy_sum / rows).float(),
        batch_entropy=entropy(prob_sum.float() / rows),
        max_entropy=prob_sum.new_tensor(math.log(prob_sum.shape[0]),
                                        dtype=torch.float32))


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
    width = teacher.shape[1]
    with fp32_region(teacher.device):  # float32 also under autocast
        entropy_sum = teacher.new_zeros((), dtype=torch.float64)
        prob_sum = teacher.new_zeros(width, dtype=torch.float32)
        step = block_rows_for(width, teacher.device)
        # blocks of cache-sized (rows, K) temporaries: see soft_cross_entropy
        for start in range(0, teacher.shape[0], step):
            logits = torch.sub(teacher[start:start + step].float(),
                               center.float()).div_(temp)
            probs = torch.softmax(logits, dim=-1)
            entropy_sum += row_entropy(logits, probs).sum(dtype=torch.float64)
            prob_sum += probs.sum(dim=0)
        return summarize(entropy_sum, prob_sum, teacher.shape[0])
