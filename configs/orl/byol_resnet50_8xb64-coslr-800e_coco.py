# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL stage 1: image-level BYOL on COCO train2017 (ResNet-50 SyncBN,
# 800 epochs, 8 GPUs x 64 = 512, SGD lr 0.4). Its checkpoint feeds the
# stage-2 tools (tools/orl/knn_images.py, tools/orl/roi_pairs.py).
_base_ = [
    '../_base_/models/byol_resnet50_orl.py',
    '../_base_/datasets/coco_byol_orl.py',
    '../_base_/schedules/orl_sgd_coslr-800e.py',
    '../_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
