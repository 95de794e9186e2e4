# Copyright (c) cribo-mm contributors. All rights reserved.
"""Soft-target cross-entropy of many (teacher row, student row) pairs, in
row blocks that stay in the CPU cache.

Every CrIBo term is a sum of ``H(p, q) = -sum_k p_k log q_k`` over pairs
of a teacher row ``p = softmax((t - c) / tau_t)`` and a student row
``q = softmax(s / tau_s)``. Written as the reference writes it (softmax,
log-softmax, product, sum, each a pass over an (N, out) matrix, and as many
again in backward, every intermediate kept for autograd) the object terms
at paper size (N ~ 2 500 rows of 65 536 prototypes, 660 MB per fp32 matrix)
are memory-bound: half of a bf16 CrIBo step on a CPU.

Here the same quantities are computed a few rows at a time: for a block of
student rows, ``H(p, q) = -p . log_softmax(z)`` with ``z = s / tau_s``;
backward recomputes ``p`` and ``q = exp(log_softmax(z))`` from the inputs
and writes ``dH/dz = q * sum_k p_k - p`` (autograd's log-softmax gradient). Each block's temporaries fit in the cache, so every (N, out) matrix
is read once in forward and once in backward, and no (N, out) intermediate
is stored. The teacher statistics of
:mod:`cribo_mm.models.losses.collapse_stats` are taken in the same pass.

The values equal the reference's formula up to float32 rounding (a few
units in the last place of the loss; the fixture tests hold them to
``rtol=1e-5``); the algebra is exact.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from cribo_mm.models.utils.row_blocks import block_rows_for
from .collapse_stats import row_entropy

__all__ = ['PairedTerm', 'paired_soft_cross_entropy']

class PairedTerm(NamedTuple):
    """One loss term: which teacher row teaches which student row.

    Attributes:
        teacher (int): Index of the teacher matrix in ``teachers``.
        student_rows (Tensor): (P,) long, strictly increasing student rows.
        teacher_rows (Tensor): (P,) long teacher rows, ``teacher_rows[i]``
            teaches ``student_rows[i]``.
    """
    teacher: int
    student_rows: Tensor
    teacher_rows: Tensor


def _scaled(block: Tensor, temp: float) -> Tensor:
    """``block / temp`` as a new float32 tensor (never in place on the
    input, which ``float()`` returns unchanged when it is float32)."""
    if block.dtype == torch.float32:
        return block / temp
    return block.float().div_(temp)


def _teacher_block(teacher: Tensor, rows: Tensor, center: Tensor,
                   temp: float, full: Optional[Tuple[int, int]]) -> Tensor:
    """Centred, sharpened float32 teacher logits of some rows, (m, out)."""
    if full is not None:
        block = teacher[full[0]:full[1]]
    else:
        block = teacher.index_select(0, rows)
    return torch.sub(block.float(), center).div_(temp)  # new tensor


def _contiguous_range(rows: Tensor) -> Optional[Tuple[int, int]]:
    """(first, last + 1) when ``rows`` is a run of consecutive integers."""
    if rows.numel() == 0:
        return None
    first, last = int(rows[0]), int(rows[-1])
    return (first, last + 1) if last - first + 1 == rows.numel() else None


class _Plan(NamedTuple):
    """Per block and term: the pairs of the block, precomputed once."""
    blocks: List[Tuple[int, int]]
    # pairs[b][t] = None or (local student rows, teacher rows, full student,
    # full teacher, pair slice)
    pairs: List[List[Optional[tuple]]]


def _plan(num_rows: int, terms: Sequence[PairedTerm], block_rows: int,
          device: torch.device) -> _Plan:
    blocks = [(a, min(a + block_rows, num_rows))
              for a in range(0, num_rows, block_rows)]
    starts = torch.tensor([a for a, _ in blocks] + [num_rows])
    bounds = [
        torch.searchsorted(term.student_rows, starts).tolist()
        for term in terms
    ]
    pairs = []
    for b, (a, end) in enumerate(blocks):
        row = []
        for t, term in enumerate(terms):
            lo, hi = bounds[t][b], bounds[t][b + 1]
            if lo == hi:
                row.append(None)
                continue
            local = (term.student_rows[lo:hi] - a).to(device)
            teacher_rows = term.teacher_rows[lo:hi]
            full_student = hi - lo == end - a
            row.append((local, teacher_rows, full_student,
                        _contiguous_range(teacher_rows), (lo, hi)))
        pairs.append(row)
    return _Plan(blocks, pairs)


class _PairedSoftCrossEntropy(torch.autograd.Function):
    """Sums of ``H(p, q)`` per term; see :func:`paired_soft_cross_entropy`.
    """

    @staticmethod
    def forward(ctx, student: Tensor, student_temp: float,
                teachers: Tuple[Tensor, ...], center: Tensor,
                teacher_temp: float, terms: Tuple[PairedTerm, ...],
                stats_term: int, block_rows: int):
        device = student.device
        plan = _plan(student.shape[0], terms, block_rows, device)
        sums = torch.zeros(len(terms), dtype=torch.float64, device=device)
        psums = [
            student.new_empty(term.student_rows.numel(),
                              dtype=torch.float32) for term in terms
        ]
        entropy_sum = torch.zeros((), dtype=torch.float64, device=device)
        prob_sum = student.new_zeros(student.shape[1], dtype=torch.float32)
        for (a, end), block_pairs in zip(plan.blocks, plan.pairs):
            log_q = torch.log_softmax(_scaled(student[a:end], student_temp),
                                      dim=-1)
            for t, pairs in enumerate(block_pairs):
                if pairs is None:
                    continue
                local, teacher_rows, full_student, full_teacher, (lo, hi) = \
                    pairs
                zt = _teacher_block(teachers[terms[t].teacher], teacher_rows,
                                    center, teacher_temp, full_teacher)
                p = torch.softmax(zt, dim=-1)
                psum = p.sum(dim=-1)
                psums[t][lo:hi] = psum
                rows = log_q if full_student else log_q.index_select(0, local)
                h = -torch.linalg.vecdot(p, rows)
                sums[t] += h.sum(dtype=torch.float64)
                if t == stats_term:
                    entropy_sum += row_entropy(zt, p).sum(
                        dtype=torch.float64)
                    prob_sum += p.sum(dim=0)
        ctx.save_for_backward(student, center, *teachers)
        ctx.num_teachers = len(teachers)
        ctx.student_temp = student_temp
        ctx.teacher_temp = teacher_temp
        ctx.terms = terms
        ctx.plan = plan
        ctx.psums = psums
        ctx.mark_non_differentiable(entropy_sum, prob_sum)
        return sums.float(), entropy_sum.float(), prob_sum

    @staticmethod
    def backward(ctx, grad_sums: Tensor, *unused):
        student, center, *teachers = ctx.saved_tensors
        terms, plan = ctx.terms, ctx.plan
        grad = torch.empty_like(student)
        weights = grad_sums.float().tolist()
        for (a, end), block_pairs in zip(plan.blocks, plan.pairs):
            # q = softmax(z), recomputed as forward's log-softmax to the bit
            dz = torch.log_softmax(_scaled(student[a:end], ctx.student_temp),
                                   dim=-1).exp_()
            # (sum_t g_t sum_k p_k) per row: the weight of q in dH/dz
            coef = dz.new_zeros(end - a)
            for t, pairs in enumerate(block_pairs):
                if pairs is not None and weights[t] != 0:
                    local, _, _, _, (lo, hi) = pairs
                    coef.index_add_(0, local,
                                    ctx.psums[t][lo:hi] * weights[t])
            # dz = q * coef - sum_t g_t p_t, in place
            dz.mul_(coef[:, None])
            for t, pairs in enumerate(block_pairs):
                if pairs is None or weights[t] == 0:
                    continue
                local, teacher_rows, full_student, full_teacher, _ = pairs
                zt = _teacher_block(teachers[terms[t].teacher], teacher_rows,
                                    center, ctx.teacher_temp, full_teacher)
                p = torch.softmax(zt, dim=-1)
                if full_student:
                    dz.sub_(p, alpha=weights[t])
                else:
                    dz.index_add_(0, local, p, alpha=-weights[t])
            grad[a:end] = dz.div_(ctx.student_temp)
        return grad, None, None, None, None, None, None, None


def paired_soft_cross_entropy(student: Tensor,
                              student_temp: float,
                              teachers: Sequence[Tensor],
                              center: Tensor,
                              teacher_temp: float,
                              terms: Sequence[PairedTerm],
                              stats_term: int = -1,
                              block_rows: Optional[int] = None
                              ) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-term sums of soft-target cross-entropies, blockwise.

    For each term ``t`` and each of its pairs (i, j), with
    ``z_i = student[i] / student_temp`` and
    ``p_j = softmax((teachers[term.teacher][j] - center) / teacher_temp)``:
    ``sums[t] = sum_(i, j) H(p_j, softmax(z_i))``. Gradients flow to
    ``student`` only (teachers and centre are constants).

    Args:
        student (Tensor): (N, out) student logits, any float dtype (float32
            arithmetic; the gradient has the student's dtype).
        student_temp (float): Student temperature.
        teachers (Sequence[Tensor]): (M_i, out) teacher outputs, any float
            dtype.
        center (Tensor): (1, out) float32 teacher centre.
        teacher_temp (float): Teacher temperature.
        terms (Sequence[PairedTerm]): The terms; each student row is used at
            most once per term.
        stats_term (int): Term whose teacher rows also give the collapse
            statistics (each teacher row should appear once in it); -1 for
            none. Defaults to -1.
        block_rows (int, optional): Student rows per block; None sizes the
            block to the device (:func:`block_rows_for`).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``sums`` (len(terms),) float32 with
        gradient; ``entropy_sum``, 0-dim float32, the sum over the stats
        term's teacher rows of ``H(p_j)``; ``prob_sum`` (out,) float32, the
        sum of those rows' ``p_j`` (no gradient for either).

    Raises:
        ValueError: If the shapes disagree or a term's student rows are not
            strictly increasing.
    """
    if student.dim() != 2:
        raise ValueError(f'student must be (N, out), got '
                         f'{tuple(student.shape)}')
    width = student.shape[1]
    for i, teacher in enumerate(teachers):
        if teacher.dim() != 2 or teacher.shape[1] != width:
            raise ValueError(f'teachers[{i}] must be (M, {width}), got '
                             f'{tuple(teacher.shape)}')
    for t, term in enumerate(terms):
        rows = term.student_rows
        if rows.shape != term.teacher_rows.shape or rows.dim() != 1:
            raise ValueError(f'term {t}: student_rows and teacher_rows must '
                             'be (P,) tensors of the same length')
        if rows.numel() > 1 and not bool((rows[1:] > rows[:-1]).all()):
            raise ValueError(f'term {t}: student_rows must be strictly '
                             'increasing')
    if block_rows is None:
        block_rows = block_rows_for(width, student.device)
    terms = tuple(
        PairedTerm(term.teacher, term.student_rows.long().cpu(),
                   term.teacher_rows.long().to(student.device))
        for term in terms)
    # a copy: the caller's centre moves (in place) before backward runs
    center = center.detach().float().reshape(1, width).clone()
    return _PairedSoftCrossEntropy.apply(
        student, float(student_temp),
        tuple(teacher.detach() for teacher in teachers), center,
        float(teacher_temp), terms, int(stats_term), int(block_rows))
