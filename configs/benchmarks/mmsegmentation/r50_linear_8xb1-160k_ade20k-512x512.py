# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL ResNet-50 (d8), linear segmentation on the frozen backbone, ADE20K (150 classes),
# 512x512 crops, 160k iterations at 8 GPUs x 1 image: the protocol and
# schedule of the ViT linear configs. Weights: --cfg-options
# model.backbone.init_cfg.checkpoint=PATH with PATH written by
# tools/model_converters/orl2mmseg.py.
_base_ = [
    './_base_/models/linear_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/linear_160k.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'cribo_mm'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor, decode_head=dict(num_classes=150))
train_dataloader = dict(batch_size=1)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
