# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL's view pipelines (docs: orl_method.md), shared by stage 1 (BYOL) and
# stage 3 (ORL). Images stay uint8 BGR until the data preprocessor converts
# them to RGB and normalises them (ImageNet mean/std); grayscale weights
# are in BGR order.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# photometric part; blur p 1.0 / 0.1 and solarize p 0.0 / 0.2 per view
photometric1 = [
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[
            # mmpretrain's ColorJitter with a hue step that runs on numpy 2
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
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=1.0),
    dict(type='Solarize', thr=128, prob=0.0),
]
photometric2 = [
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[
            # mmpretrain's ColorJitter with a hue step that runs on numpy 2
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
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
# image views: random resized crop 224, scale 0.08-1, bilinear
crop = dict(
    type='RandomResizedCrop',
    scale=224,
    crop_ratio_range=(0.08, 1.0),
    interpolation='bilinear',
    backend='cv2')
view_pipeline1 = [crop] + photometric1
view_pipeline2 = [crop] + photometric2
