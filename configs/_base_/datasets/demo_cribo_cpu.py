# Copyright (c) cribo-mm contributors. All rights reserved.
# The embedded demo scenes for the CPU recipe (`make demo`): 128 px scenes,
# two 96 px views. Generated on first use into $CRIBO_DEMO_ROOT or
# ~/.cache/cribo_mm/demo_scenes (no download); configs/_base_/datasets/
# demo_seg.py reads the same files (same seed, sizes and counts).
# Differences from the paper pipeline (cribo_pipeline.py), and why:
# - views of 96 px instead of 224 (12 x 12 tokens of 8 px): a CPU budget of
#   minutes; the scenes are 128 px, so a view rescales its crop 0.75-1.5x
#   and the 5-10 px textures that tell the classes apart stay resolved
#   (64 px views learned less: 14.5 vs 14.0 mIoU for random init);
# - blur sigma 0.1-0.9 instead of 0.1-2.0: the same blur relative to the
#   view size (2.0 x 96 / 224), else it wipes out those textures.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

view_size = 96
blur_sigma = (0.1, 0.9)
spatial_pipeline = [
    dict(
        type='CrIBoRandomResizedCrop',
        size=view_size,
        scale=(0.25, 1.0),
        ratio=(3. / 4., 4. / 3.),
        interpolation='bicubic',
        backend='cv2'),
    dict(type='CrIBoRandomFlip', prob=0.5),
]
color_pipeline = [
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='CrIBoColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1,
                backend='cv2')
        ],
        prob=0.8),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.299)),
]
view_pipeline1 = spatial_pipeline + color_pipeline + [
    dict(
        type='GaussianBlur',
        magnitude_range=blur_sigma,
        magnitude_std='inf',
        prob=1.0),
]
view_pipeline2 = spatial_pipeline + color_pipeline + [
    dict(
        type='GaussianBlur',
        magnitude_range=blur_sigma,
        magnitude_std='inf',
        prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
train_pipeline = [
    dict(type='CrIBoLoadImageFromFile', skip_unreadable=False),
    dict(type='CrIBoMultiView', transforms=[view_pipeline1, view_pipeline2]),
    dict(
        type='PackInputs',
        algorithm_keys=('crop_bbox', 'crop_flip'),
        meta_keys=('sample_idx', 'img_path', 'ori_shape', 'img_shape')),
]

train_dataloader = dict(
    batch_size=32,  # paper 256 (8 x 32): one CPU process
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CrIBoDemoScenes',
        split='train',
        seed=0,
        num_train=512,
        num_val=128,
        image_size=(128, 128),
        pipeline=train_pipeline))
