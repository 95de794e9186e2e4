# Copyright (c) cribo-mm contributors. All rights reserved.
# Any folder of images, scanned recursively (override data_root).
_base_ = ['./cribo_pipeline.py']

data_root = 'data/images/'
train_dataloader = dict(
    dataset=dict(
        type='CrIBoImageFolder',
        data_root=data_root,
        data_prefix='',
        recursive=True))
