# Copyright (c) cribo-mm contributors. All rights reserved.
# ImageNet-1k train split through mmpretrain's ImageNet data set (labels
# unused), the CrIBo ImageNet setting (128 images per GPU).
_base_ = ['./cribo_pipeline.py']

data_root = 'data/imagenet/'
train_dataloader = dict(
    batch_size=128,
    dataset=dict(type='ImageNet', data_root=data_root, split='train'))
