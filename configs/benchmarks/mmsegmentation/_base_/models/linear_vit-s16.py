# Copyright (c) cribo-mm contributors. All rights reserved.
# Linear segmentation on a frozen CrIBo ViT-S/16 (the authors' protocol): a
# 1x1 convolution (FCNHead with no conv layer, no norm, no dropout) on the
# patch tokens of the last block, after the final LayerNorm. The backbone is
# frozen and kept in eval mode; only the 1x1 convolution trains.
#
# To classify the concatenated patch tokens of the last n blocks instead,
# set backbone.out_indices to those blocks and list them in the head, e.g.
# n = 4: out_indices=(8, 9, 10, 11), in_index=[0, 1, 2, 3],
# in_channels=[384] * 4, channels=1536 (see *_linear-last4_* configs).
# Blocks other than the last are taken before any norm (mmpretrain's ViT
# normalises the last block only).
_base_ = 'mmseg::_base_/models/fcn_r50-d8.py'

model = dict(
    # EncoderDecoder would pass `pretrained` to the backbone, which mmpretrain
    # backbones do not accept: weights come through backbone.init_cfg.
    pretrained=None,
    backbone=dict(
        _delete_=True,
        # mmpretrain's VisionTransformer keys are the pretraining keys.
        # MoCoV3ViT is that VisionTransformer (same keys, same forward) with
        # a train() that keeps the frozen stages in eval mode; the plain
        # class puts them back in train mode with the rest of the model.
        type='mmpretrain.MoCoV3ViT',
        arch='deit-small',  # 384 dims, 12 blocks, 6 heads
        img_size=512,
        patch_size=16,
        out_indices=(11, ),
        out_type='featmap',
        final_norm=True,
        drop_rate=0.,
        drop_path_rate=0.,
        frozen_stages=12,  # everything: embeddings, 12 blocks, final norm
        init_cfg=dict(
            type='Pretrained',
            # output of tools/model_converters/cribo2mmseg.py; override with
            # --cfg-options model.backbone.init_cfg.checkpoint=PATH
            checkpoint='checkpoints/cribo_vit-s16_backbone.pth',
            prefix='backbone.')),
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=[384],
        in_index=[0],
        input_transform='resize_concat',
        channels=384,
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
