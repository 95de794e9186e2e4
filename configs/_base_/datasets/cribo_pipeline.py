# Copyright (c) cribo-mm contributors. All rights reserved.
# The CrIBo two-view pipeline (docs: cribo_method.md, section 1), shared by
# every pretraining data set config. Images stay uint8 BGR (mmcv convention)
# until the model's data preprocessor converts them to RGB and normalises
# them with the ImageNet mean/std. Each sample reaches the model as
#   inputs: [view1 (3, 224, 224) uint8, view2 (3, 224, 224) uint8]
#   data_sample.crop_bbox (2, 4) float32 [x1, y1, x2, y2], original pixels
#   data_sample.crop_flip (2,) bool, data_sample.ori_shape (H, W)

data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

crop_size = 224
# spatial part, drawn independently per view; records the geometry
spatial_pipeline = [
    dict(
        type='CrIBoRandomResizedCrop',
        size=crop_size,
        scale=(0.25, 1.0),
        ratio=(3. / 4., 4. / 3.),
        interpolation='bicubic',
        backend='cv2'),
    dict(type='CrIBoRandomFlip', prob=0.5),
]
# photometric part common to both views (weights of the grayscale: BGR)
color_pipeline = [
    dict(
        type='RandomApply',
        transforms=[
            # mmpretrain's ColorJitter with a hue step that works on numpy 2
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
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=1.0),
]
view_pipeline2 = spatial_pipeline + color_pipeline + [
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
train_pipeline = [
    # skip_unreadable=True drops unreadable files (counted in a warning)
    dict(type='CrIBoLoadImageFromFile', skip_unreadable=False),
    dict(type='CrIBoMultiView', transforms=[view_pipeline1, view_pipeline2]),
    dict(
        type='PackInputs',
        algorithm_keys=('crop_bbox', 'crop_flip'),
        meta_keys=('sample_idx', 'img_path', 'ori_shape', 'img_shape')),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(pipeline=train_pipeline))
