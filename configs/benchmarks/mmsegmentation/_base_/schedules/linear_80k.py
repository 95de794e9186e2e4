# Copyright (c) cribo-mm contributors. All rights reserved.
# Linear segmentation schedule of the CrIBo authors: Adam, lr 1e-3, no
# weight decay, poly decay (power 0.9) to 1e-4 over 80k iterations at a
# batch of 8 (8 GPUs x 1 image).
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optimizer = dict(
    _delete_=True, type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
