# Copyright (c) cribo-mm contributors. All rights reserved.
# A scaled-down ORL network for the CPU demo: ResNet-18 with 16 base
# channels (128-d res5, BatchNorm; BN1d in the MLPs), projector 128-256-64,
# predictors 64-256-64. Stage 1 uses it as BYOL; stage 3 sets type='ORL'.
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
        depth=18,
        stem_channels=16,
        base_channels=16,
        norm_cfg=dict(type='BN'),
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
        in_channels=128,
        hid_channels=256,
        out_channels=64,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_avg_pool=True,
        init_cfg=kaiming_mlp,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        type='LatentPredictHead',
        predictor=dict(
            type='NonLinearNeck',
            in_channels=64,
            hid_channels=256,
            out_channels=64,
            num_layers=2,
            with_bias=True,
            with_last_bn=False,
            with_avg_pool=False,
            init_cfg=kaiming_mlp,
            norm_cfg=dict(type='BN1d')),
        loss=dict(type='CosineSimilarityLoss')),
)
