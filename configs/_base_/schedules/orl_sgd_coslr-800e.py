# Copyright (c) cribo-mm contributors. All rights reserved.
# ORL's optimisation (stages 1 and 3): SGD lr 0.4 for batch 512, momentum
# 0.9, weight decay 1e-4 on all parameters, 4-epoch linear warm-up from
# 1e-4 x lr, cosine to 0 over 800 epochs, mixed precision.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, weight_decay=1e-4))

max_epochs = 800
warmup_epochs = 4
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
