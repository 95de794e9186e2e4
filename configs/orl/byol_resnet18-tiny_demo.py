# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 1 on the embedded demo scenes (CPU): BYOL with a tiny
# ResNet-18 and ORL's view pipelines. Run the whole pipeline with
# `python tools/orl/run_pipeline.py`.
_base_ = [
    '../_base_/models/orl_resnet18-tiny.py',
    '../_base_/datasets/coco_byol_orl.py',
    '../_base_/schedules/orl_sgd_demo.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CrIBoDemoScenes',
        split='train',
        seed=0,
        num_train=256,
        num_val=64,
        image_size=(256, 256),
        pipeline={{_base_.train_pipeline}}))
default_hooks = dict(
    logger=dict(interval=4), checkpoint=dict(interval=1, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
