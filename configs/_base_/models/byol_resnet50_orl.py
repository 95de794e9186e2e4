# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL's network (docs: orl_method.md): ResNet-50 (SyncBN, res5, no
# zero-init residual), projector 2048-4096-256 and predictor 256-4096-256
# (bias, SyncBN, no last BN). Target: EMA with tau 0.99 -> 1 on a cosine,
# i.e. mmengine/mmpretrain momentum 0.01 -> 0.
# Kaiming fan_in (normal, bias 0) for the MLPs' linear layers, BN weight 1
kaiming_mlp = [
    dict(type='Kaiming', layer=['Linear'], mode='fan_in', nonlinearity='relu'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]
model = dict(
    type='BYOL',
    base_momentum=0.01,
    backbone=dict(
        type='ResNet',
        depth=50,
        norm_cfg=dict(type='SyncBN'),
        zero_init_residual=False,
        init_cfg=[
            dict(
                type='Kaiming',
                layer=['Conv2d'],
                mode='fan_in',
                nonlinearity='relu'),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
        ]),
    neck=dict(
        type='NonLinearNeck',
        in_channels=2048,
        hid_channels=4096,
        out_channels=256,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_avg_pool=True,
        init_cfg=kaiming_mlp),
    head=dict(
        type='LatentPredictHead',
        predictor=dict(
            type='NonLinearNeck',
            in_channels=256,
            hid_channels=4096,
            out_channels=256,
            num_layers=2,
            with_bias=True,
            with_last_bn=False,
            with_avg_pool=False,
            init_cfg=kaiming_mlp),
        # mmpretrain's BYOL returns 2 (l12 + l21) with l = -cos: the same
        # gradient as ORL's (2 - 2 cos) summed over both directions
        loss=dict(type='CosineSimilarityLoss')),
)
