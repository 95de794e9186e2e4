# Copyright (c) cribo-mm contributors. All rights reserved.
# Pretraining on the CamVid training images (367, labels unused), in the
# layout written by tools/dataset_converters/camvid.py. data_root follows
# the OpenMMLab convention (data/<dataset>, relative to the project root);
# elsewhere: --cfg-options train_dataloader.dataset.data_root=DIR
_base_ = ['./cribo_pipeline.py']

data_root = 'data/camvid/'
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='CrIBoImageFolder',
        data_root=data_root,
        data_prefix='train/images/',
        recursive=True))
