# Copyright (c) cribo-mm contributors. All rights reserved.
# UperNet fine-tuning of a CrIBo ViT-S/16: MMSegmentation's ViT + multi-level
# neck + UPerHead recipe (mmseg::vit/vit_deit-s16_mln_upernet_...) with the
# backbone replaced by mmpretrain's VisionTransformer, whose keys are the
# pretraining keys. Features of blocks 3, 6, 9 and 12 are rescaled by the
# MultiLevelNeck to 1/4, 1/8, 1/16 and 1/32 of the input.
_base_ = 'mmseg::_base_/models/upernet_vit-b16_ln_mln.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='deit-small',  # 384 dims, 12 blocks, 6 heads
        img_size=512,
        patch_size=16,
        out_indices=(2, 5, 8, 11),
        out_type='featmap',
        final_norm=True,
        drop_rate=0.,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            # output of tools/model_converters/cribo2mmseg.py; override with
            # --cfg-options model.backbone.init_cfg.checkpoint=PATH
            checkpoint='checkpoints/cribo_vit-s16_backbone.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
