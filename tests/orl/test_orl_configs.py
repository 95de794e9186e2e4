# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL configs: settings of the paper and that they build."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from cribo_mm.registry import MODELS
from tests.engine.tiny_config import ROOT

ORL_CONFIGS = sorted((ROOT / 'configs' / 'orl').glob('*.py'))
STAGE1 = ROOT / 'configs/orl/byol_resnet50_8xb64-coslr-800e_coco.py'
STAGE3 = ROOT / 'configs/orl/orl_resnet50_8xb64-coslr-800e_coco.py'


def _check_schedule(cfg):
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.4,
                                                                  0.9, 1e-4)
    assert 'paramwise_cfg' not in cfg.optim_wrapper  # decay on everything
    assert cfg.train_dataloader.batch_size * 8 == 512
    assert cfg.auto_scale_lr.base_batch_size == 512
    assert cfg.train_cfg.max_epochs == 800
    warm, cos = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end) == ('LinearLR', 1e-4, 4)
    assert (cos.type, cos.eta_min, cos.begin, cos.end) == ('CosineAnnealingLR',
                                                           0., 4, 800)


def _check_views(v1, v2):
    crop = v1[0]
    assert crop.type == 'RandomResizedCrop' and crop.scale == 224
    assert crop.crop_ratio_range == (0.08, 1.0)
    assert crop.interpolation == 'bilinear'
    by_type = [{t.type: t for t in v[1:]} for v in (v1, v2)]
    assert [b['GaussianBlur'].prob for b in by_type] == [1.0, 0.1]
    assert [b['Solarize'].prob for b in by_type] == [0.0, 0.2]
    assert [b['RandomGrayscale'].prob for b in by_type] == [0.2, 0.2]
    jitter = by_type[0]['RandomApply']
    assert jitter.prob == 0.8
    j = jitter.transforms[0]
    assert (j.brightness, j.contrast, j.saturation, j.hue) == (0.4, 0.4, 0.2,
                                                               0.1)


@pytest.mark.parametrize('path', ORL_CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_pipeline_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type in ('BYOL', 'ORL')
    Compose(copy.deepcopy(cfg.train_dataloader.dataset.pipeline))


def test_stage1_config_is_orl_byol():
    cfg = Config.fromfile(STAGE1)
    _check_schedule(cfg)
    m = cfg.model
    assert m.type == 'BYOL' and m.base_momentum == 0.01  # tau 0.99 -> 1
    assert m.backbone.depth == 50 and m.backbone.norm_cfg.type == 'SyncBN'
    assert not m.backbone.zero_init_residual
    # Kaiming fan_in for convs and MLP linears, BN weight 1
    assert m.backbone.init_cfg[0].mode == 'fan_in'
    assert m.neck.init_cfg[0].layer == ['Linear']
    assert m.head.predictor.init_cfg[0].mode == 'fan_in'
    assert (m.neck.in_channels, m.neck.hid_channels,
            m.neck.out_channels) == (2048, 4096, 256)
    assert m.neck.with_bias and not m.neck.with_last_bn
    views = cfg.train_dataloader.dataset.pipeline[1].transforms
    _check_views(*views)
    model = MODELS.build(m)
    assert model.target_net.end_momentum == 0.
    assert isinstance(model.neck.bn0, torch.nn.SyncBatchNorm)


def test_stage3_config_builds_and_runs_on_cpu():
    cfg = Config.fromfile(STAGE3)
    _check_schedule(cfg)
    branch = cfg.train_dataloader.dataset.pipeline[3]
    assert branch.type == 'ORLMultiBranch' and branch.roi_size == 96
    _check_views(*branch.img_pipelines)
    jitter = cfg.train_dataloader.dataset.pipeline[1]
    assert (jitter.area_range, jitter.ratio_range, jitter.shift,
            jitter.min_iou, jitter.max_attempts) == ((0.5, 2.), (0.5, 2.), 0.5,
                                                     0.5, 200)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(model_cfg)
    assert type(model).__name__ == 'ORL'
    assert model.loss_weights == (1., 1., 1.)
    for h in ('head', 'intra_head', 'inter_head'):
        assert cfg.model[h].predictor.init_cfg[0].mode == 'fan_in'
        assert cfg.model[h].loss.shift_factor == 2.
    # single process: SyncBN behaves as BatchNorm on the CPU (one online
    # forward; the six-view loss is covered with a tiny network elsewhere)
    model.train()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = model.neck(model.backbone(x))[0]
    assert z.shape == (2, 256)
    loss = model.inter_head.loss(z, z.detach().flip(0))
    assert torch.isfinite(loss) and 0 <= loss.item() <= 4
