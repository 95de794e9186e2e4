# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL ResNet-50, UperNet fine-tuning, CamVid (11 classes), 352x352 crops,
# 10k iterations on 1 GPU x 8 images with MMSegmentation's ResNet UperNet
# schedule (SGD lr 0.01, poly to 1e-4). The data root defaults to
# data/camvid/.
_base_ = [
    './_base_/models/upernet_r50.py',
    '../../_base_/datasets/camvid_seg.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'cribo_mm'], allow_failed_imports=False)

crop_size = (352, 352)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=11),
    auxiliary_head=dict(num_classes=11))
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
