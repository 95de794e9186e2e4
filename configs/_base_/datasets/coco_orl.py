# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 3: COCO train2017 with the stage-2 correspondence file
# (tools/orl/roi_pairs.py). Six views per sample: two 224 px image views,
# the intra-RoI pair and the inter-RoI pair (96 px).
_base_ = ['./orl_views.py']

train_pipeline = [
    dict(type='ORLLoadImagePair'),
    dict(
        type='ORLRoIJitter',
        area_range=(0.5, 2.),
        ratio_range=(0.5, 2.),
        shift=0.5,
        min_iou=0.5,
        max_attempts=200),
    dict(type='ORLSelectRoIPair'),
    dict(
        type='ORLMultiBranch',
        img_pipelines=[{{_base_.view_pipeline1}}, {{_base_.view_pipeline2}}],
        roi_pipelines=[{{_base_.photometric1}}, {{_base_.photometric2}}],
        roi_size=96),
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
        type='ORLPairDataset',
        data_root=data_root,
        ann_file='orl/train2017_knn10_correspondence.json',
        data_prefix=dict(img_path='train2017/'),
        pipeline=train_pipeline))
