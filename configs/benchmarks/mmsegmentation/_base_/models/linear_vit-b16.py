# Copyright (c) cribo-mm contributors. All rights reserved.
# Linear segmentation on a frozen CrIBo ViT-B/16 (see linear_vit-s16.py).
_base_ = './linear_vit-s16.py'

model = dict(
    backbone=dict(
        arch='base',  # 768 dims, 12 blocks, 12 heads
        init_cfg=dict(checkpoint='checkpoints/cribo_vit-b16_backbone.pth')),
    decode_head=dict(in_channels=[768], channels=768))
