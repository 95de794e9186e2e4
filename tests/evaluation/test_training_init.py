# Copyright (c) cribo-mm contributors. All rights reserved.
"""Random weights "as training starts": the dense-NN baseline of a CrIBo
config is initialised like CrIBo.init_weights, not by mmpretrain."""
import torch
from torch import nn

from cribo_mm.evaluation.dense_nn import build_backbone, training_init
from cribo_mm.models.backbones import reference_vit_init

DEMO = 'configs/cribo/vit-t16_demo.py'


def test_cribo_config_starts_from_the_reference_init():
    init = training_init(DEMO)
    assert init is reference_vit_init
    assert training_init(DEMO, {'model.reference_init': False}) is None
    assert training_init('vit:deit-tiny') is None
    assert training_init('configs/benchmarks/mmsegmentation/'
                         'vit-b16_linear_8xb1-80k_voc12aug-512x512.py') is None
    assert training_init('configs/dino/dino_vit-t16_demo.py') is init


def test_reference_init_is_the_one_cribo_trains_from():
    from mmengine.config import Config

    from cribo_mm.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DEMO).model)
    model.init_weights()
    torch.manual_seed(0)
    backbone = reference_vit_init(build_backbone(DEMO))
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    stds = torch.tensor([float(m.weight.std()) for m in linears])
    assert torch.allclose(stds, torch.full_like(stds, 0.02), rtol=0.1)
    trained_from = [
        m for m in model.backbone.modules() if isinstance(m, nn.Linear)
    ]
    for ours, theirs in zip(linears, trained_from):
        assert abs(float(ours.weight.std()) -
                   float(theirs.weight.std())) < 0.002
    # mmpretrain's own init is another network: ~3x the spread here
    default = build_backbone(DEMO)
    fc = [m for m in default.modules() if isinstance(m, nn.Linear)][0]
    assert float(fc.weight.std()) > 0.04
