# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL algorithm: six-view loss, three predictors, EMA target."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import cribo_mm  # noqa: F401
from cribo_mm.registry import MODELS
from tests.engine.tiny_config import ROOT


def _tiny_cfg():
    cfg = Config.fromfile(ROOT / 'configs/orl/orl_resnet18-tiny_demo.py')
    model = copy.deepcopy(cfg.model)
    model.backbone.update(stem_channels=8, base_channels=8)
    model.neck.update(in_channels=64, hid_channels=16, out_channels=8)
    for h in ('head', 'intra_head', 'inter_head'):
        model[h].predictor.update(
            in_channels=8, hid_channels=16, out_channels=8)
    model.data_preprocessor = cfg.data_preprocessor
    return model


def _batch(b=2, img=64, roi=32):
    sizes = [img, img, roi, roi, roi, roi]
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 255, (b, 3, s, s), generator=g).float() for s in sizes
    ]
    return dict(inputs=inputs, data_samples=[DataSample() for _ in range(b)])


def test_orl_builds_with_three_predictors_and_one_target():
    model = MODELS.build(_tiny_cfg())
    assert model.head is not model.intra_head
    assert model.intra_head is not model.inter_head
    assert model.head.loss_module.shift_factor == 2.
    assert model.target_net.momentum == pytest.approx(0.01)
    assert model.target_net.end_momentum == 0.
    # the target covers backbone + projector only
    n_target = sum(p.numel() for p in model.target_net.module.parameters())
    n_online = sum(p.numel() for p in model.backbone.parameters()) + sum(
        p.numel() for p in model.neck.parameters())
    assert n_target == n_online


def test_orl_loss_step_updates_target():
    MessageHub.get_instance('orl_test').update_info('max_iters', 10)
    model = MODELS.build(_tiny_cfg())
    model.init_weights()
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_image', 'loss_intra_roi', 'loss_inter_roi'}
    for v in losses.values():
        # each term: two directions of 2 - 2 cos, so in [0, 8]
        assert torch.isfinite(v) and 0 < v.item() <= 8
    # the first update copies the online network into the target
    online = dict(model.backbone.named_parameters())
    for k, v in model.target_net.module[0].named_parameters():
        assert torch.equal(v, online[k])
    total = sum(losses.values())
    total.backward()
    for head in (model.head, model.intra_head, model.inter_head):
        grads = [p.grad for p in head.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
    before = copy.deepcopy(model.target_net.module.state_dict())
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.1)
    model(**data, mode='loss')
    after = model.target_net.module.state_dict()
    changed = [
        k for k in before if before[k].dtype.is_floating_point
        and not torch.equal(before[k], after[k])
    ]
    assert any(k.startswith('0.') for k in changed)


def test_orl_rejects_wrong_number_of_views():
    model = MODELS.build(_tiny_cfg())
    batch = _batch()
    batch['inputs'] = batch['inputs'][:2]
    data = model.data_preprocessor(batch, True)
    with pytest.raises(ValueError, match='six input views'):
        model(**data, mode='loss')
