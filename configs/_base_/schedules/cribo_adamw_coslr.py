# Reference optimisation: AdamW; lr = base_lr * global_batch / 256 with a
# linear warm-up then cosine decay to min_lr (per iteration); weight decay
# on a cosine from 0.04 to 0.4; no decay on biases and norm parameters.
max_epochs = 300
warmup_epochs = 10
base_lr = 5e-4  # for a global batch of 256 (auto_scale_lr below)
min_lr = 1e-5

# CrIBoOptimWrapperConstructor: the default per-parameter rules, with the
# parameters of equal settings in one group (2 groups: decay / no decay).
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='CrIBoOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.04),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=min_lr,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
    # eta_min_ratio (not eta_min) keeps the no-decay groups at 0.
    dict(
        type='CosineAnnealingParamScheduler',
        param_name='weight_decay',
        eta_min_ratio=10.,
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=256, enable=True)
