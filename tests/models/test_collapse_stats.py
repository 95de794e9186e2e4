# Copyright (c) cribo-mm contributors. All rights reserved.
"""Collapse diagnostics: teacher entropies against closed forms, and their
logging by CrIBoLoss / CrIBo."""
import math

import pytest
import torch
from mmengine.logging import MessageHub

from cribo_mm.models.losses import CrIBoLoss
from cribo_mm.models.losses.collapse_stats import (entropy,
                                                   teacher_collapse_stats)
from tests.models.test_cribo_algorithm import fake_batch, tiny_cribo


def test_uniform_teacher_has_entropy_log_k():
    k = 37
    center = torch.randn(1, k)
    # every row is the centre plus a per-row constant: uniform after centring
    teacher = center + torch.randn(5, 1) * 3.
    stats = teacher_collapse_stats(teacher, center, temp=0.04)
    assert stats['entropy'].item() == pytest.approx(math.log(k), rel=1e-5)
    assert stats['batch_entropy'].item() == pytest.approx(math.log(k),
                                                          rel=1e-5)
    assert stats['max_entropy'].item() == pytest.approx(math.log(k), rel=0,
                                                        abs=1e-6)
    for value in stats.values():
        assert value.dtype == torch.float32 and value.dim() == 0


@pytest.mark.parametrize('logit,temp', [(0.1, 0.04), (0.3, 0.1), (2., 1.)])
def test_peaked_teacher_matches_closed_form(logit, temp):
    k = 10
    teacher = torch.zeros(3, k, dtype=torch.float64)
    teacher[:, 4] = logit  # all rows peaked on prototype 4
    stats = teacher_collapse_stats(teacher, torch.zeros(1, k), temp)
    e = math.exp(logit / temp)
    p = e / (e + k - 1)
    q = 1. / (e + k - 1)
    closed = -p * math.log(p) - (k - 1) * q * math.log(q)
    assert stats['entropy'].item() == pytest.approx(closed, rel=1e-5)
    # identical rows: the batch mean is the row itself
    assert stats['batch_entropy'].item() == pytest.approx(closed, rel=1e-5)
    assert closed < math.log(k)


def test_batch_entropy_separates_the_two_collapses():
    k = 8
    # rows one-hot (very peaked) on 4 different prototypes
    teacher = torch.zeros(4, k)
    teacher[torch.arange(4), torch.tensor([0, 2, 5, 7])] = 10.
    stats = teacher_collapse_stats(teacher, torch.zeros(1, k), temp=0.02)
    assert stats['entropy'].item() == pytest.approx(0., abs=1e-6)
    assert stats['batch_entropy'].item() == pytest.approx(math.log(4),
                                                          rel=1e-5)
    # the same prototype for every row: both entropies vanish
    teacher = torch.zeros(4, k)
    teacher[:, 3] = 10.
    stats = teacher_collapse_stats(teacher, torch.zeros(1, k), temp=0.02)
    assert stats['batch_entropy'].item() == pytest.approx(0., abs=1e-6)


def test_centre_and_temperature_are_the_loss_ones():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 16, generator=g)
    center = torch.randn(1, 16, generator=g)
    a = teacher_collapse_stats(teacher, center, 0.07)
    b = teacher_collapse_stats(teacher - center, torch.zeros(1, 16), 0.07)
    c = teacher_collapse_stats((teacher - center) * 2, torch.zeros(1, 16),
                               0.14)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
        torch.testing.assert_close(a[key], c[key])
    # a lower temperature sharpens: lower entropy
    d = teacher_collapse_stats(teacher, center, 0.02)
    assert d['entropy'] < a['entropy']
    # entropy() on explicit probabilities, with exact zeros
    probs = torch.tensor([[0.5, 0.5, 0., 0.], [1., 0., 0., 0.]])
    torch.testing.assert_close(entropy(probs),
                               torch.tensor([math.log(2), 0.]))
    with pytest.raises(ValueError, match='N >= 1'):
        teacher_collapse_stats(torch.zeros(0, 16), center, 0.04)


def test_loss_reports_stats_before_moving_the_centres():
    loss = CrIBoLoss(16, 12, teacher_temp=0.04, teacher_temp_c=0.05)
    g = torch.Generator().manual_seed(1)
    loss.center.copy_(torch.randn(1, 16, generator=g))
    teacher_global = torch.randn(6, 16, generator=g)
    teacher_objects = torch.randn(4, 12, generator=g)
    center_before = loss.center.clone()
    stats = loss.collapse_stats(teacher_global, teacher_objects)
    assert torch.equal(loss.center, center_before)
    ref = teacher_collapse_stats(teacher_global, center_before, 0.04)
    ref_c = teacher_collapse_stats(teacher_objects, loss.center_c, 0.05)
    assert stats['teacher_entropy_global'] == ref['entropy']
    assert stats['teacher_batch_entropy_global'] == ref['batch_entropy']
    assert stats['teacher_entropy_object'] == ref_c['entropy']
    assert stats['teacher_batch_entropy_object'] == ref_c['batch_entropy']
    assert stats['log_out_dim_global'].item() == pytest.approx(math.log(16))
    assert stats['log_out_dim_object'].item() == pytest.approx(math.log(12))
    # no object (DINO baseline): only the global head
    stats = loss.collapse_stats(teacher_global, torch.zeros(0, 12))
    assert set(stats) == {
        'teacher_entropy_global', 'teacher_batch_entropy_global',
        'log_out_dim_global'
    }
    # no key contains 'loss', so mmengine logs them without summing them
    assert not any('loss' in key for key in stats)


@pytest.mark.parametrize('object_terms', [True, False])
def test_model_logs_entropies_of_its_teacher(object_terms):
    MessageHub.get_instance('cribo_test').update_info('max_iters', 10)
    model = tiny_cribo(object_terms=object_terms)
    model.train()  # teacher in eval mode: deterministic
    data = model.data_preprocessor(fake_batch(), True)
    center = model.head.center.clone()
    with torch.no_grad():
        images = torch.cat(data['inputs'])
        teacher = model.teacher_neck(model.teacher_backbone(images)[0][:, 0])
    losses = model(**data, mode='loss')
    # the teacher equals the student at init, so its first update is exact
    ref = teacher_collapse_stats(teacher, center, model.head.teacher_temp)
    torch.testing.assert_close(losses['teacher_entropy_global'],
                               ref['entropy'])
    assert 0 < losses['teacher_entropy_global'].item() <= math.log(16) + 1e-5
    assert losses['teacher_entropy_global'] <= \
        losses['teacher_batch_entropy_global'] + 1e-6
    assert ('teacher_entropy_object' in losses) == object_terms
    if object_terms:
        assert 0 < losses['teacher_entropy_object'].item() <= math.log(12) \
            + 1e-5
        assert losses['log_out_dim_object'].item() == pytest.approx(
            math.log(12))
