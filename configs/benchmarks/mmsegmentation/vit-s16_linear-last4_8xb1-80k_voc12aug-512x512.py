# Copyright (c) cribo-mm contributors. All rights reserved.
# CrIBo ViT-S/16, linear segmentation on the concatenated patch tokens of
# the last 4 blocks (frozen backbone), Pascal VOC 2012 + aug. Blocks 9-11 are
# taken before any norm; block 12 after the final LayerNorm.
_base_ = './vit-s16_linear_8xb1-80k_voc12aug-512x512.py'

model = dict(
    backbone=dict(out_indices=(8, 9, 10, 11)),
    decode_head=dict(
        in_channels=[384, 384, 384, 384], in_index=[0, 1, 2, 3],
        channels=1536))
