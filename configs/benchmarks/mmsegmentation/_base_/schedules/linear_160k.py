# Copyright (c) cribo-mm contributors. All rights reserved.
# Linear segmentation schedule of the CrIBo authors over 160k iterations
# (ADE20K): Adam, lr 1e-3, no weight decay, poly decay to 1e-4.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optimizer = dict(
    _delete_=True, type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
