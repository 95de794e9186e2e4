# Copyright (c) cribo-mm contributors. All rights reserved.
# COCO train2017 (118 287 images, labels unused), the CrIBo COCO setting
# (32 images per GPU). For unlabeled2017 use
# ann_file='annotations/image_info_unlabeled2017.json' and
# data_prefix=dict(img_path='unlabeled2017/').
_base_ = ['./cribo_pipeline.py']

data_root = 'data/coco/'
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        type='CrIBoCocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img_path='train2017/'),
        missing='error'))
