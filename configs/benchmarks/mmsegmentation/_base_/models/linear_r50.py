# Copyright (c) cribo-mm contributors. All rights reserved.
# Linear segmentation on a frozen ORL (or BYOL) ResNet-50: a 1x1 convolution
# (FCNHead with no conv layer, no norm, no dropout) on the last stage
# (2048 channels), dilated to output stride 8 as MMSegmentation's -d8
# recipes (strides 1, 2, 1, 1; dilations 1, 1, 2, 4). The backbone is
# frozen (stem and the four stages) with its BatchNorm in eval mode; only
# the 1x1 convolution trains.
_base_ = 'mmseg::_base_/models/fcn_r50-d8.py'

model = dict(
    # EncoderDecoder would pass `pretrained` to the backbone, which mmpretrain
    # backbones do not accept: weights come through backbone.init_cfg.
    pretrained=None,
    backbone=dict(
        _delete_=True,
        # mmpretrain's ResNet: the pretraining keys (pytorch style, plain
        # stem), and a train() that keeps frozen stages in eval mode.
        type='mmpretrain.ResNet',
        depth=50,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, ),
        style='pytorch',
        frozen_stages=4,
        norm_cfg=dict(type='SyncBN', requires_grad=False),
        norm_eval=True,
        zero_init_residual=False,
        init_cfg=dict(
            type='Pretrained',
            # output of tools/model_converters/orl2mmseg.py; override with
            # --cfg-options model.backbone.init_cfg.checkpoint=PATH
            checkpoint='checkpoints/orl_r50_backbone.pth',
            prefix='backbone.')),
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=[2048],
        in_index=[0],
        input_transform='resize_concat',
        channels=2048,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.,
        num_classes=21,
        norm_cfg=None,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None,
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
