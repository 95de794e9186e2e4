# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 3: object-level pretraining on COCO train2017 from random
# initialisation, with the stage-2 correspondence file. One online network
# and one EMA target for all branches, three predictors (image, intra-RoI,
# inter-RoI), loss weights 1. Optimisation as stage 1.
_base_ = [
    '../_base_/models/byol_resnet50_orl.py',
    '../_base_/datasets/coco_orl.py',
    '../_base_/schedules/orl_sgd_coslr-800e.py',
    '../_base_/default_runtime.py',
]
predictor = dict(
    type='NonLinearNeck',
    in_channels=256,
    hid_channels=4096,
    out_channels=256,
    num_layers=2,
    with_bias=True,
    with_last_bn=False,
    with_avg_pool=False,
    init_cfg={{_base_.kaiming_mlp}})
orl_head = dict(
    type='LatentPredictHead',
    predictor=predictor,
    loss=dict(type='CosineSimilarityLoss', shift_factor=2., scale_factor=2.))
model = dict(
    type='ORL',
    base_momentum=0.01,
    end_momentum=0.,
    loss_weights=(1., 1., 1.),
    head=orl_head,
    intra_head=orl_head,
    inter_head=orl_head)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
