# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL ResNet-50, UperNet fine-tuning (UPerHead + FCN auxiliary head, SyncBN),
# Pascal VOC 2012 +
# SBD aug (21 classes), 512x512 crops, 40k iterations at 8 GPUs x 2
# images, MMSegmentation's ResNet UperNet schedule (SGD lr 0.01, momentum
# 0.9, weight decay 5e-4, poly to 1e-4). Weights: --cfg-options
# model.backbone.init_cfg.checkpoint=PATH with PATH written by
# tools/model_converters/orl2mmseg.py.
_base_ = [
    './_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'cribo_mm'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=21),
    auxiliary_head=dict(num_classes=21))
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
