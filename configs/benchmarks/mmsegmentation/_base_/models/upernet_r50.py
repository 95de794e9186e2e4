# Copyright (c) cribo-mm contributors. All rights reserved.
# UperNet fine-tuning of an ORL (or BYOL) ResNet-50: MMSegmentation's
# upernet_r50 recipe (UPerHead on the four stages, FCN auxiliary head on
# stage 3, SyncBN) with its ResNetV1c (deep stem) replaced by mmpretrain's
# ResNet (plain stem, pytorch style), whose keys are ORL's.
_base_ = 'mmseg::_base_/models/upernet_r50.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        style='pytorch',
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        zero_init_residual=False,
        init_cfg=dict(
            type='Pretrained',
            # output of tools/model_converters/orl2mmseg.py; override with
            # --cfg-options model.backbone.init_cfg.checkpoint=PATH
            checkpoint='checkpoints/orl_r50_backbone.pth',
            prefix='backbone.')),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
