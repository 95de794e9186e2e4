# Copyright (c) cribo-mm contributors. All rights reserved.
"""One optimizer group per distinct setting, same per-parameter settings."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import (CosineAnnealingParamScheduler,
                            DefaultOptimWrapperConstructor)

import cribo_mm  # noqa: F401
from cribo_mm.engine.hooks import CrIBoHook
from cribo_mm.engine.optimizers import (
    CrIBoLayerDecayOptimWrapperConstructor, CrIBoOptimWrapperConstructor,
    merge_param_groups, regroup_optimizer_state)
from cribo_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS
from tests.models.test_cribo_algorithm import TINY_VIT, tiny_cribo

WRAPPER = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.04))
PARAMWISE = dict(norm_decay_mult=0., bias_decay_mult=0.)


@pytest.fixture(autouse=True)
def _max_iters():
    MessageHub.get_instance('cribo_groups_test').update_info('max_iters', 10)


def settings_per_param(model, optimizer):
    """``name -> every setting of its group`` (all but ``params``)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        settings = {k: v for k, v in group.items() if k != 'params'}
        for p in group['params']:
            assert names[id(p)] not in out, 'parameter in two groups'
            out[names[id(p)]] = settings
    return out


def test_merge_param_groups_by_effective_settings():
    a, b, c, d = (nn.Parameter(torch.zeros(1)) for _ in range(4))
    groups = [
        dict(params=[a]),
        dict(params=[b], weight_decay=0.),
        dict(params=[c], lr=0.1),  # equal to the default: same as a
        dict(params=[d], weight_decay=0., custom=[1, 2]),  # unhashable
        dict(params=[], lr=3.),  # empty groups vanish
    ]
    merged = merge_param_groups(groups, dict(type='SGD', lr=0.1,
                                             weight_decay=1e-4))
    assert [g['params'] for g in merged] == [[a, c], [b], [d]]
    assert merged[0].get('lr', 0.1) == 0.1 and 'weight_decay' not in merged[0]
    assert merged[1]['weight_decay'] == 0.
    assert merged[2]['custom'] == [1, 2]


def test_two_groups_with_the_default_settings_per_parameter():
    model = tiny_cribo()
    old = DefaultOptimWrapperConstructor(copy.deepcopy(WRAPPER),
                                         PARAMWISE)(model)
    new = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='CrIBoOptimWrapperConstructor',
             optim_wrapper_cfg=copy.deepcopy(WRAPPER),
             paramwise_cfg=PARAMWISE))(model)
    assert isinstance(new.optimizer, torch.optim.AdamW)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert len(old.optimizer.param_groups) == len(trainable)
    assert len(new.optimizer.param_groups) == 2
    decays = sorted(g['weight_decay'] for g in new.optimizer.param_groups)
    assert decays == [0., 0.04]
    before = settings_per_param(model, old.optimizer)
    after = settings_per_param(model, new.optimizer)
    assert set(before) == set(after) == trainable
    for name in before:
        assert after[name] == before[name], name
    assert after['backbone.layers.0.ln1.weight']['weight_decay'] == 0.
    assert after['backbone.layers.0.attn.qkv.bias']['weight_decay'] == 0.
    assert after['backbone.layers.0.attn.qkv.weight']['weight_decay'] == 0.04
    assert after['backbone.cls_token']['weight_decay'] == 0.04


def test_without_paramwise_cfg_one_group():
    model = tiny_cribo()
    new = CrIBoOptimWrapperConstructor(copy.deepcopy(WRAPPER))(model)
    assert len(new.optimizer.param_groups) == 1


def test_steps_and_weight_decay_schedule_identical():
    """AdamW steps under the weight-decay cosine (eta_min_ratio) move every
    parameter exactly as with one group per tensor; no-decay stays 0."""
    model_old = tiny_cribo()
    model_new = copy.deepcopy(model_old)
    old = DefaultOptimWrapperConstructor(copy.deepcopy(WRAPPER),
                                         PARAMWISE)(model_old)
    new = CrIBoOptimWrapperConstructor(copy.deepcopy(WRAPPER),
                                       PARAMWISE)(model_new)
    scheds = [
        CosineAnnealingParamScheduler(
            w, param_name='weight_decay', eta_min_ratio=10., T_max=6,
            by_epoch=False) for w in (old, new)
    ]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        for (_, p_old), (_, p_new) in zip(model_old.named_parameters(),
                                          model_new.named_parameters()):
            if p_old.requires_grad:
                grad = torch.randn(p_old.shape, generator=g)
                p_old.grad, p_new.grad = grad.clone(), grad.clone()
        old.step()
        new.step()
        for s in scheds:
            s.step()
    decays = sorted(g['weight_decay'] for g in new.optimizer.param_groups)
    assert decays[0] == 0.
    assert 0.04 < decays[1] < 0.4
    before = settings_per_param(model_old, old.optimizer)
    after = settings_per_param(model_new, new.optimizer)
    for name in before:
        assert after[name] == before[name], name
    for (name, p_old), (_, p_new) in zip(model_old.named_parameters(),
                                         model_new.named_parameters()):
        assert torch.equal(p_old, p_new), name


def test_cribo_hook_edits_grads_of_grouped_params():
    """Per-parameter clipping and last-layer freezing act on every
    parameter of the merged groups."""
    model = tiny_cribo()
    wrapper = CrIBoOptimWrapperConstructor(copy.deepcopy(WRAPPER),
                                           PARAMWISE)(model)
    hook = CrIBoHook(clip_grad_per_param=0.5)
    hook._last_layer_frozen = True
    last = {id(p) for p in model.neck.last_layer_parameters()}
    student = {id(p) for n, p in model.named_parameters()
               if not n.startswith('teacher.')}
    editor = hook._make_grad_editor(last, student)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, 3.)
    editor(wrapper.optimizer, (), {})
    for name, p in model.named_parameters():
        if id(p) in last:
            assert p.grad is None, name
        elif p.requires_grad:
            assert float(p.grad.norm()) == pytest.approx(0.5, rel=1e-4), name


class _SegLike(nn.Module):
    """A ViT backbone plus a head, as an mmseg EncoderDecoder."""

    def __init__(self):
        super().__init__()
        from cribo_mm.registry import MODELS
        self.backbone = MODELS.build(TINY_VIT)
        self.decode_head = nn.Sequential(nn.Linear(32, 8), nn.LayerNorm(8))


def test_layer_decay_one_group_per_lr_and_decay():
    model = _SegLike()
    cfg = dict(type='OptimWrapper',
               optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
    paramwise = dict(layer_decay_rate=0.65, flat_decay_mult=0.)
    constructor = CrIBoLayerDecayOptimWrapperConstructor(
        copy.deepcopy(cfg), paramwise)
    new = constructor(model)
    # the per-tensor groups, as before the merge
    groups = []
    DefaultOptimWrapperConstructor.add_params(constructor, groups, model)
    assert len(groups) == len(list(model.parameters()))
    old = torch.optim.AdamW(groups, lr=1e-4, weight_decay=0.05)
    before = settings_per_param(model, old)
    after = settings_per_param(model, new.optimizer)
    for name in before:
        assert after[name] == before[name], name
    combos = {(s['lr'], s['weight_decay']) for s in before.values()}
    assert len(new.optimizer.param_groups) == len(combos)
    # decayed and not, at 4 lrs: embeddings, 2 blocks, the rest (final norm
    # and head at the base lr)
    assert len(combos) == 8


def test_per_parameter_state_resumes_into_merged_groups():
    """A state saved by the default constructor (one group per parameter)
    loads into the merged groups and the next steps are identical."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    model[1].weight.requires_grad_(False)  # frozen: in no group
    per_tensor = DefaultOptimWrapperConstructor(copy.deepcopy(WRAPPER),
                                                PARAMWISE)(model).optimizer
    assert len(per_tensor.param_groups) == 5

    def steps(optimizer, n, seed):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n):
            optimizer.zero_grad()
            loss = model(torch.randn(5, 4, generator=g)).square().sum()
            loss.backward()
            optimizer.step()

    steps(per_tensor, 3, 1)
    for group in per_tensor.param_groups:  # as a scheduler leaves them
        group['lr'] *= 0.5
    saved = copy.deepcopy(per_tensor.state_dict())
    before = copy.deepcopy(model.state_dict())
    steps(per_tensor, 2, 2)
    expected = copy.deepcopy(model.state_dict())

    model.load_state_dict(before)
    merged = CrIBoOptimWrapperConstructor(copy.deepcopy(WRAPPER),
                                          PARAMWISE)(model).optimizer
    assert len(merged.param_groups) == 2
    with pytest.raises(ValueError, match='parameter groups'):
        copy.deepcopy(merged).load_state_dict(saved)  # torch refuses as is
    regrouped = regroup_optimizer_state(dict(saved, loss_scaler={}), merged,
                                        model)
    assert regrouped['loss_scaler'] == {}
    del regrouped['loss_scaler']
    merged.load_state_dict(regrouped)
    assert [g['lr'] for g in merged.param_groups] == [2.5e-4, 2.5e-4]
    steps(merged, 2, 2)
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    # already merged: unchanged; a state of another model: refused
    assert regroup_optimizer_state(merged.state_dict(), merged,
                                   model) is not None
    other = copy.deepcopy(saved)
    first = other['param_groups'][0]['params'][0]
    other['state'][first]['exp_avg'] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r'exp_avg of 0.weight has shape'):
        regroup_optimizer_state(other, merged, model)
    mixed = copy.deepcopy(saved)
    mixed['param_groups'][0]['lr'] = 1.
    with pytest.raises(ValueError, match='another setting'):
        regroup_optimizer_state(mixed, merged, model)
