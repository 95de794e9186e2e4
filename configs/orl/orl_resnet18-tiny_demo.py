# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 3 on the embedded demo scenes (CPU), tiny ResNet-18. The
# correspondence file and image folder come from the stage-2 tools;
# `python tools/orl/run_pipeline.py` sets both.
_base_ = [
    '../_base_/models/orl_resnet18-tiny.py',
    '../_base_/datasets/coco_orl.py',
    '../_base_/schedules/orl_sgd_demo.py',
    '../_base_/default_runtime.py',
]
orl_head = dict(
    type='LatentPredictHead',
    predictor=dict(
        type='NonLinearNeck',
        in_channels=64,
        hid_channels=256,
        out_channels=64,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d'),
        init_cfg={{_base_.kaiming_mlp}}),
    loss=dict(type='CosineSimilarityLoss', shift_factor=2., scale_factor=2.))
model = dict(
    type='ORL',
    end_momentum=0.,
    head=orl_head,
    intra_head=orl_head,
    inter_head=orl_head)
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        data_root='',
        ann_file='work_dirs/orl_demo/stage2/correspondence.json',
        data_prefix=dict(img_path='')))
default_hooks = dict(
    logger=dict(interval=4), checkpoint=dict(interval=1, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
