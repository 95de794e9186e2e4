# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 1: two-view BYOL data on COCO train2017 (64 images per GPU).
# The stage-2 tools index images in this data set's order.
_base_ = ['./orl_views.py']

train_pipeline = [
    dict(type='CrIBoLoadImageFromFile'),
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[{{_base_.view_pipeline1}}, {{_base_.view_pipeline2}}]),
    dict(type='PackInputs'),
]
data_root = 'data/coco/'
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CrIBoCocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img_path='train2017/'),
        pipeline=train_pipeline))
