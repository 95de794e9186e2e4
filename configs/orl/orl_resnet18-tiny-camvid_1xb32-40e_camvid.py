# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 3 on the CamVid training images with the stage-2 file of
# byol_resnet18-tiny-camvid_1xb32-40e_camvid.py (see there for the one
# command that runs all three stages): ORL from scratch, tiny ResNet-18,
# 224 px image views and 96 px RoIs, batch 32, 40 epochs of 11 iterations.
_base_ = ['./orl_resnet18-tiny_demo.py']

train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        ann_file='work_dirs/camvid/orl/stage2/correspondence.json'))
max_epochs = 40
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=4,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 4,
        eta_min=0.,
        by_epoch=True,
        begin=4,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(
    logger=dict(interval=11),
    checkpoint=dict(interval=10, max_keep_ckpts=1, save_last=True))
randomness = dict(seed=0)
