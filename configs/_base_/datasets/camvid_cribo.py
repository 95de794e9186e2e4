# Copyright (c) cribo-mm contributors. All rights reserved.
# Pretraining on the CamVid training images (367, labels unused). The path
# is relative to the project root; override data_root when it lives
# elsewhere.
_base_ = ['./cribo_pipeline.py']

data_root = '../shared/data/camvid/'
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='CrIBoImageFolder',
        data_root=data_root,
        data_prefix='train/images/',
        recursive=True))
