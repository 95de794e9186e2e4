# Copyright (c) cribo-mm contributors. All rights reserved.
# Demo scenes as an MMSegmentation data set (7 classes, 0 = background is a
# class) for dense evaluation (`make demo`: dense NN retrieval, memory from
# train, queries from val). Use under default_scope='mmseg'. The data are
# the same files as demo_cribo_cpu.py, the CPU recipe's pretraining set
# (same seed, sizes and counts -> same cache folder); set data_root to use
# an explicit folder instead.
custom_imports = dict(
    imports=['cribo_mm.datasets'], allow_failed_imports=False)

dataset_type = 'DemoScenesSegDataset'
demo_args = dict(
    data_root=None, seed=0, num_train=512, num_val=128, image_size=(128, 128))
crop_size = (112, 112)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(128, 128),
        ratio_range=(0.875, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, split='train', pipeline=train_pipeline,
        **demo_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, split='val', pipeline=test_pipeline, **demo_args))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
