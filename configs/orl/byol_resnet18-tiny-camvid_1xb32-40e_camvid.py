# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 1 on the 367 CamVid training images (labels unused), sized for
# a CPU like configs/cribo/cribo_vit-t16-camvid_1xb32-40e_camvid.py: BYOL
# with the tiny ResNet-18 of the demo (128-d res5), ORL's 224 px view
# pipelines, batch 32, 40 epochs of 11 iterations. The whole pipeline:
#   python tools/orl/run_pipeline.py \
#       --stage1 configs/orl/byol_resnet18-tiny-camvid_1xb32-40e_camvid.py \
#       --stage3 configs/orl/orl_resnet18-tiny-camvid_1xb32-40e_camvid.py \
#       --view-size 224 --roi-size 96 --work-dir work_dirs/camvid/orl
# data_root is relative to the project root:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/camvid
_base_ = ['./byol_resnet18-tiny_demo.py']

train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        _delete_=True,
        type='CrIBoImageFolder',
        data_root='data/camvid/',
        data_prefix='train/images/',
        recursive=True,
        pipeline={{_base_.train_pipeline}}))
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
