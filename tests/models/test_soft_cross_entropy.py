# Copyright (c) cribo-mm contributors. All rights reserved.
"""The blockwise soft-target cross-entropy against the plain autograd
formula of the reference (softmax, log-softmax, product, sum)."""
import pytest
import torch
import torch.nn.functional as F

from cribo_mm.models.losses.collapse_stats import teacher_collapse_stats
from cribo_mm.models.losses.soft_cross_entropy import (
    PairedTerm, paired_soft_cross_entropy)


def _plain(student, student_temp, teachers, center, teacher_temp, terms):
    """Per-term sums with every (N, out) intermediate, as the reference."""
    log_q = F.log_softmax(student.float() / student_temp, dim=-1)
    sums = []
    for term in terms:
        p = F.softmax(
            (teachers[term.teacher][term.teacher_rows].float() - center) /
            teacher_temp,
            dim=-1)
        sums.append(-(p * log_q[term.student_rows]).sum())
    return torch.stack(sums)


def _case(seed=0, rows=11, width=37, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(rows, width, generator=g).to(dtype)
    teachers = (torch.randn(rows, width, generator=g).to(dtype),
                torch.randn(5, width, generator=g).to(dtype))
    center = torch.randn(1, width, generator=g) * 0.1
    half = rows // 2
    terms = (
        # every student row, teachers from a shuffled order
        PairedTerm(0, torch.arange(rows), torch.randperm(rows, generator=g)),
        # a few rows (not contiguous) taught by the second teacher
        PairedTerm(1, torch.tensor([1, 4, half, rows - 1]),
                   torch.tensor([3, 0, 4, 2])),
        # no pair at all
        PairedTerm(1, torch.zeros(0, dtype=torch.long),
                   torch.zeros(0, dtype=torch.long)),
    )
    return student, teachers, center, terms


@pytest.mark.parametrize('block_rows', [1, 3, 4, None])
def test_sums_and_gradients_match_the_plain_formula(block_rows):
    student, teachers, center, terms = _case()
    weights = torch.tensor([0.7, -1.3, 2.0])
    ours = student.clone().requires_grad_()
    sums, _, _ = paired_soft_cross_entropy(ours, 0.1, teachers, center, 0.04,
                                           terms, block_rows=block_rows)
    (sums * weights).sum().backward()
    ref = student.clone().requires_grad_()
    ref_sums = _plain(ref, 0.1, teachers, center, 0.04, terms)
    (ref_sums * weights).sum().backward()
    torch.testing.assert_close(sums, ref_sums, rtol=1e-5, atol=1e-5)
    assert sums[2].item() == 0
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-5, atol=1e-6)
    # the input is not changed (float32 blocks are not scaled in place)
    assert torch.equal(ours.detach(), student)


def test_low_precision_inputs_get_a_gradient_of_their_dtype():
    student, teachers, center, terms = _case(seed=1, dtype=torch.bfloat16)
    ours = student.clone().requires_grad_()
    sums, _, _ = paired_soft_cross_entropy(ours, 0.1, teachers, center, 0.07,
                                           terms[:2], block_rows=2)
    sums.sum().backward()
    assert sums.dtype == torch.float32
    assert ours.grad.dtype == torch.bfloat16
    ref = student.float().requires_grad_()
    _plain(ref, 0.1, [t.float() for t in teachers], center, 0.07,
           terms[:2]).sum().backward()
    torch.testing.assert_close(ours.grad.float(), ref.grad, rtol=1e-2,
                               atol=1e-3)


def test_centre_moved_after_forward_does_not_change_the_gradient():
    student, teachers, center, terms = _case(seed=2)
    grads = []
    for move in (False, True):
        x = student.clone().requires_grad_()
        c = center.clone()
        sums, _, _ = paired_soft_cross_entropy(x, 0.1, teachers, c, 0.04,
                                               terms[:1])
        if move:
            c.add_(5.)  # as CrIBoLoss.update_center does before backward
        sums.sum().backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])


def test_statistics_of_the_stats_term_equal_teacher_collapse_stats():
    student, teachers, center, _ = _case(seed=3)
    rows = student.shape[0]
    swap = PairedTerm(0, torch.arange(rows), torch.arange(rows).roll(3))
    _, entropy_sum, prob_sum = paired_soft_cross_entropy(
        student, 0.1, teachers, center, 0.04, [swap], stats_term=0,
        block_rows=2)
    ref = teacher_collapse_stats(teachers[0], center, 0.04)
    torch.testing.assert_close(entropy_sum / rows, ref['entropy'])
    p = F.softmax((teachers[0] - center) / 0.04, dim=-1)
    torch.testing.assert_close(prob_sum, p.sum(dim=0))
    assert not entropy_sum.requires_grad and not prob_sum.requires_grad


def test_bad_terms_are_refused_with_the_term_named():
    student, teachers, center, _ = _case()
    unsorted = PairedTerm(0, torch.tensor([3, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='term 0.*strictly increasing'):
        paired_soft_cross_entropy(student, 0.1, teachers, center, 0.04,
                                  [unsorted])
    uneven = PairedTerm(0, torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match='term 0.*same length'):
        paired_soft_cross_entropy(student, 0.1, teachers, center, 0.04,
                                  [uneven])
    with pytest.raises(ValueError, match=r'teachers\[1\]'):
        paired_soft_cross_entropy(student, 0.1,
                                  (teachers[0], teachers[1][:, :5]), center,
                                  0.04, [uneven])
