# Copyright (c) cribo-mm contributors. All rights reserved.
# CrIBo ViT-S/16, linear segmentation on the frozen backbone, CamVid (11
# classes, 367 training and 101 validation images of 480x360), 352x352 crops,
# 10k iterations on 1 GPU x 8 images. The data root defaults to
# data/camvid/; change it with
# --cfg-options train_dataloader.dataset.data_root=DIR
#               val_dataloader.dataset.data_root=DIR
#               test_dataloader.dataset.data_root=DIR
_base_ = [
    './_base_/models/linear_vit-s16.py',
    '../../_base_/datasets/camvid_seg.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/linear_80k.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'cribo_mm'], allow_failed_imports=False)

crop_size = (352, 352)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(img_size=352),
    decode_head=dict(num_classes=11),
    test_cfg=dict(crop_size=crop_size, stride=(234, 234)))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=10000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=10000, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
