# Copyright (c) cribo-mm contributors. All rights reserved.
import io

import pytest
import torch
import torch.nn.functional as F

from cribo_mm.models.losses import cribo_loss as cl
from cribo_mm.models.losses.cribo_loss import (CrIBoLoss, global_loss,
                                               object_crossimage_loss,
                                               object_crossview_loss,
                                               teacher_temperature_schedule,
                                               teacher_temperature_table)
from tests.fixtures import fixture_cases

LOSS_KEYS = (('loss_global', 'loss_d'), ('loss_object_crossview', 'loss_c'),
             ('loss_object_crossimage', 'loss_nn'))


LOSS_CASES = fixture_cases('loss.pt')


def _loss_from_case(case, **kwargs):
    hp, inputs = case['hparams'], case['inputs']
    epoch = inputs['epoch']
    loss = CrIBoLoss(
        hp['out_dim'],
        hp['out_dim_c'],
        teacher_temp=teacher_temperature_schedule(
            epoch, hp['warmup_teacher_temp'], hp['teacher_temp'],
            hp['warmup_teacher_temp_epochs']),
        teacher_temp_c=teacher_temperature_schedule(
            epoch, hp['warmup_teacher_temp_c'], hp['teacher_temp_c'],
            hp['warmup_teacher_temp_epochs']),
        student_temp_c=hp['student_temp_c'],
        center_momentum=hp['center_momentum'],
        center_momentum_c=hp['center_momentum_c'],
        **kwargs)
    loss.crossimage_enabled = epoch >= 1
    loss.center.copy_(inputs['center'])
    loss.center_c.copy_(inputs['center_c'])
    return loss


def _run(loss, inputs):
    student = inputs['student_output'].clone().requires_grad_()
    student_c = inputs['student_centroids'].clone().requires_grad_()
    out = loss(
        student_global=student,
        teacher_global=inputs['teacher_output'],
        student_objects=student_c,
        teacher_objects=inputs['teacher_centroids'],
        teacher_nn_v1=inputs['teacher_nn_centroids'],
        teacher_nn_v2=inputs['teacher_nn2_centroids'],
        mask_v1=inputs['bootstrap_centroid_mask'],
        mask_v2=inputs['bootstrap_centroid_mask2'])
    return out, student, student_c


@pytest.mark.parametrize('case', LOSS_CASES)
def test_teacher_temperature_schedule_matches_reference(case):
    hp = case['hparams']
    schedule = teacher_temperature_table(hp['warmup_teacher_temp'],
                                         hp['teacher_temp'],
                                         hp['warmup_teacher_temp_epochs'],
                                         hp['nepochs'])
    assert len(schedule) == hp['nepochs']
    epoch = case['inputs']['epoch']
    assert schedule[epoch] == pytest.approx(hp['teacher_temp_used'], abs=0,
                                            rel=1e-15)
    assert teacher_temperature_schedule(
        epoch, hp['warmup_teacher_temp_c'], hp['teacher_temp_c'],
        hp['warmup_teacher_temp_epochs']) == pytest.approx(
            hp['teacher_temp_c_used'], abs=0, rel=1e-15)


@pytest.mark.parametrize('case', LOSS_CASES)
def test_module_matches_reference(case):
    inputs, outputs = case['inputs'], case['outputs']
    loss = _loss_from_case(case)
    out, student, student_c = _run(loss, inputs)
    assert set(out) == {k for k, _ in LOSS_KEYS}
    for ours, ref in LOSS_KEYS:
        assert out[ours].dtype == torch.float32 and out[ours].dim() == 0
        torch.testing.assert_close(
            out[ours].detach(), outputs[ref], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(
        loss.center, outputs['center_after'], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        loss.center_c, outputs['center_c_after'], atol=1e-6, rtol=0)
    assert inputs['teacher_centroids'].shape[0] == outputs[
        'centroids_counter_after']

    sum(out.values()).backward()
    torch.testing.assert_close(
        student.grad,
        outputs['grad_total_wrt_student_output'],
        atol=1e-6,
        rtol=0)
    torch.testing.assert_close(
        student_c.grad,
        outputs['grad_total_wrt_student_centroids'],
        atol=1e-6,
        rtol=0)


@pytest.mark.parametrize('case', LOSS_CASES)
def test_pure_functions_match_reference(case):
    inputs, outputs, hp = case['inputs'], case['outputs'], case['hparams']
    temp, temp_c = hp['teacher_temp_used'], hp['teacher_temp_c_used']
    loss_d = global_loss(inputs['student_output'], inputs['teacher_output'],
                         inputs['center'], temp, hp['student_temp'])
    loss_c = object_crossview_loss(inputs['student_centroids'],
                                   inputs['teacher_centroids'],
                                   inputs['center_c'], temp_c,
                                   hp['student_temp_c'])
    torch.testing.assert_close(loss_d, outputs['loss_d'], rtol=1e-5, atol=0)
    torch.testing.assert_close(loss_c, outputs['loss_c'], rtol=1e-5, atol=0)
    if inputs['epoch'] >= 1:
        loss_nn = object_crossimage_loss(
            inputs['student_centroids'], inputs['teacher_nn_centroids'],
            inputs['bootstrap_centroid_mask'],
            inputs['teacher_nn2_centroids'],
            inputs['bootstrap_centroid_mask2'], inputs['center_c'], temp_c,
            hp['student_temp_c'])
        torch.testing.assert_close(
            loss_nn, outputs['loss_nn'], rtol=1e-5, atol=1e-7)


def test_schedule_values():
    assert teacher_temperature_table(0.04, 0.07, 3, 5) == pytest.approx(
        [0.04, 0.055, 0.07, 0.07, 0.07])
    assert teacher_temperature_table(0.04, 0.07, 0, 2) == [0.07, 0.07]
    assert teacher_temperature_table(0.04, 0.07, 1, 2) == [0.04, 0.07]
    schedule = teacher_temperature_table(0.04, 0.07, 30, 300)
    assert len(schedule) == 300 and schedule[29] == 0.07
    assert teacher_temperature_schedule(1000, 0.04, 0.07, 30) == 0.07
    assert teacher_temperature_schedule(0, 0.04, 0.07, 30) == 0.04


def _random_inputs(num_images=3, num_objects=5, out_dim=16, out_dim_c=12,
                   seed=0):
    """Random forward kwargs (neighbours given as the used view only)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    return dict(
        student_global=rand(2 * num_images, out_dim),
        teacher_global=rand(2 * num_images, out_dim),
        student_objects=rand(2 * num_objects, out_dim_c),
        teacher_objects=rand(2 * num_objects, out_dim_c),
        teacher_nn_v1=rand(num_objects, out_dim_c),
        teacher_nn_v2=rand(num_objects, out_dim_c))


def _global_args(inp):
    return {k: inp[k] for k in ('student_global', 'teacher_global',
                                'student_objects', 'teacher_objects')}


def _manual_crossimage(inp, mask1, mask2, center_c, temp_c, per_mask):
    s1, s2 = (inp['student_objects'] / 0.1).chunk(2)

    def term(teacher, student, mask):
        probs = F.softmax((teacher - center_c) / temp_c, dim=-1)
        return -(probs * F.log_softmax(student, -1)).sum(-1)[mask].sum()

    t1 = term(inp['teacher_nn_v1'], s2, mask1)
    t2 = term(inp['teacher_nn_v2'], s1, mask2)
    n1, n2 = int(mask1.sum()), int(mask2.sum())
    if per_mask:
        return ((t1 / n1 if n1 else 0.) + (t2 / n2 if n2 else 0.)) / 2
    return (t1 + t2) / n1 / 2 if n1 else torch.tensor(0.)


@pytest.mark.parametrize('mask1,mask2', [
    ([1, 0, 1, 0, 0], [1, 1, 1, 0, 1]),
    ([0, 0, 0, 0, 0], [1, 1, 0, 0, 0]),
    ([1, 1, 0, 0, 0], [0, 0, 0, 0, 0]),
])
def test_crossimage_normalization_switch(mask1, mask2):
    inp = _random_inputs()
    mask1, mask2 = torch.tensor(mask1).bool(), torch.tensor(mask2).bool()
    center_c = torch.randn(1, 12, generator=torch.Generator().manual_seed(1))
    results = {}
    for mode in ('reference', 'per_mask'):
        loss = CrIBoLoss(
            16, 12, teacher_temp=0.05, crossimage_normalization=mode)
        loss.center_c.copy_(center_c)
        out = loss(**inp, mask_v1=mask1, mask_v2=mask2)
        expected = _manual_crossimage(inp, mask1, mask2, center_c, 0.05,
                                      mode == 'per_mask')
        torch.testing.assert_close(
            out['loss_object_crossimage'],
            torch.as_tensor(expected, dtype=torch.float32),
            rtol=1e-5,
            atol=1e-7)
        results[mode] = float(out['loss_object_crossimage'])
    if not mask1.any():
        assert results['reference'] == 0 and results['per_mask'] > 0
    if mask1.any() and not mask2.any():
        assert results['reference'] == pytest.approx(results['per_mask'])
    with pytest.raises(ValueError):
        CrIBoLoss(4, 4, crossimage_normalization='bogus')


def test_neighbours_with_both_views_equal_used_view():
    inp = _random_inputs()
    mask1 = torch.tensor([1, 0, 1, 1, 0]).bool()
    mask2 = torch.tensor([0, 1, 1, 1, 0]).bool()
    both_v1 = torch.stack([inp['teacher_nn_v1'], torch.randn(5, 12)])
    both_v2 = torch.stack([torch.randn(5, 12), inp['teacher_nn_v2']])
    center_c = torch.randn(1, 12)
    used = object_crossimage_loss(inp['student_objects'],
                                  inp['teacher_nn_v1'], mask1,
                                  inp['teacher_nn_v2'], mask2, center_c, 0.06)
    both = object_crossimage_loss(inp['student_objects'], both_v1, mask1,
                                  both_v2, mask2, center_c, 0.06)
    assert torch.equal(used, both)


def test_crossimage_disabled_and_missing_neighbours():
    inp = _random_inputs()
    mask = torch.ones(5, dtype=torch.bool)
    loss = CrIBoLoss(16, 12, crossimage_enabled=False)
    out = loss(**inp, mask_v1=mask, mask_v2=mask)
    assert float(out['loss_object_crossimage']) == 0
    loss.crossimage_enabled = True
    out = loss(**_global_args(inp))
    assert float(out['loss_object_crossimage']) == 0
    out = loss(**inp, mask_v1=mask, mask_v2=mask)
    assert float(out['loss_object_crossimage']) > 0


def test_temperatures_are_plain_attributes():
    inp = _random_inputs()
    loss = CrIBoLoss(16, 12, teacher_temp=0.04)
    assert loss.teacher_temp == loss.teacher_temp_c == 0.04
    assert loss.student_temp == loss.student_temp_c == 0.1
    cold = loss(**_global_args(inp), update_center=False)
    loss.teacher_temp = loss.teacher_temp_c = 0.07
    warm = loss(**_global_args(inp), update_center=False)
    assert not torch.equal(cold['loss_global'], warm['loss_global'])
    assert not torch.equal(cold['loss_object_crossview'],
                           warm['loss_object_crossview'])
    assert torch.count_nonzero(loss.center) == 0


def test_center_update_single_process():
    inp = _random_inputs()
    loss = CrIBoLoss(16, 12)
    loss.center.fill_(1.)
    loss.center_c.fill_(-1.)
    loss(**_global_args(inp))
    torch.testing.assert_close(
        loss.center, 0.9 + 0.1 * inp['teacher_global'].mean(0, True))
    torch.testing.assert_close(
        loss.center_c, -0.9 + 0.1 * inp['teacher_objects'].mean(0, True))


class _FakeTwoRanks:
    """``mmengine.dist`` stand-in: a second rank contributes ``other``."""

    def __init__(self, other):
        self.other = other

    def get_world_size(self, group=None):
        return 2

    def all_reduce(self, tensor, op='sum', group=None):
        assert op == 'sum'
        tensor.add_(self.other)


def test_center_update_is_count_weighted(monkeypatch):
    inp = _random_inputs(num_objects=5)
    other_global = torch.randn(6, 16)
    other_obj = torch.randn(2 * 9, 12)  # a rank with more objects
    other_stats = torch.cat([
        other_global.sum(0),
        other_obj.sum(0),
        torch.tensor([6., 18.])
    ])
    monkeypatch.setattr(cl, 'dist', _FakeTwoRanks(other_stats))
    loss = CrIBoLoss(16, 12)
    loss.update_center(inp['teacher_global'], inp['teacher_objects'])
    all_global = torch.cat([inp['teacher_global'], other_global])
    all_obj = torch.cat([inp['teacher_objects'], other_obj])
    torch.testing.assert_close(loss.center, 0.1 * all_global.mean(0, True))
    torch.testing.assert_close(loss.center_c, 0.1 * all_obj.mean(0, True))


def test_no_objects():
    inp = _random_inputs()
    loss = CrIBoLoss(16, 12)
    loss.center_c.fill_(0.5)
    empty = torch.zeros(0, 12, requires_grad=True)
    out = loss(
        student_global=inp['student_global'],
        teacher_global=inp['teacher_global'],
        student_objects=empty,
        teacher_objects=torch.zeros(0, 12),
        teacher_nn_v1=torch.zeros(0, 12),
        teacher_nn_v2=torch.zeros(0, 12),
        mask_v1=torch.zeros(0, dtype=torch.bool),
        mask_v2=torch.zeros(0, dtype=torch.bool))
    assert float(out['loss_object_crossview'].detach()) == 0
    assert float(out['loss_object_crossimage'].detach()) == 0
    assert torch.all(loss.center_c == 0.5)
    sum(out.values()).backward()
    assert empty.grad is not None


def test_float32_under_autocast():
    inp = _random_inputs()
    mask = torch.tensor([1, 0, 1, 1, 0]).bool()
    half = {k: v.bfloat16() for k, v in inp.items()}
    ref = CrIBoLoss(16, 12)(
        **{k: v.float() for k, v in half.items()}, mask_v1=mask, mask_v2=mask)
    loss = CrIBoLoss(16, 12)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(**half, mask_v1=mask, mask_v2=mask)
    for key in ref:
        assert out[key].dtype == torch.float32
        torch.testing.assert_close(out[key], ref[key], rtol=0, atol=0)
    assert loss.center.dtype == torch.float32


def test_state_dict_round_trip():
    loss = CrIBoLoss(16, 12)
    inp = _random_inputs()
    loss(**_global_args(inp))
    state = loss.state_dict()
    assert set(state) == {'center', 'center_c'}
    assert state['center'].shape == (1, 16)
    assert state['center_c'].shape == (1, 12)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = CrIBoLoss(16, 12)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh.center, loss.center)
    assert torch.equal(fresh.center_c, loss.center_c)


def test_registered_in_models():
    from cribo_mm.registry import MODELS
    loss = MODELS.build(
        dict(type='CrIBoLoss', out_dim=8, out_dim_c=4, teacher_temp=0.04,
             crossimage_normalization='per_mask'))
    assert isinstance(loss, CrIBoLoss)
    assert loss.crossimage_normalization == 'per_mask'
