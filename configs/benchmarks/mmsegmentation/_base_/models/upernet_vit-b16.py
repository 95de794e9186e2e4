# Copyright (c) cribo-mm contributors. All rights reserved.
# UperNet fine-tuning of a CrIBo ViT-B/16 (see upernet_vit-s16.py).
_base_ = './upernet_vit-s16.py'

model = dict(
    backbone=dict(
        arch='base',  # 768 dims, 12 blocks, 12 heads
        init_cfg=dict(checkpoint='checkpoints/cribo_vit-b16_backbone.pth')),
    neck=dict(in_channels=[768, 768, 768, 768], out_channels=768),
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
