# CrIBo demo: a tiny ViT/16 on the embedded procedurally generated scenes,
# CPU, a few minutes (`make demo`). Same algorithm and 224 px two-view
# geometry as the paper settings, scaled-down network, heads and bank.
_base_ = [
    '../_base_/models/cribo_vit-s16.py',
    '../_base_/datasets/demo_cribo.py',
    '../_base_/schedules/cribo_adamw_coslr.py',
    '../_base_/default_runtime.py',
]

embed_dims = 96
num_clusters = 16
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=4 * embed_dims),
        drop_path_rate=0.1),
    neck=dict(
        in_channels=embed_dims,
        out_channels=1024,
        out_channels_objects=1024,
        hidden_channels=512,
        bottleneck_channels=128),
    head=dict(out_dim=1024, out_dim_c=1024),
    object_pooling=dict(num_clusters=num_clusters),
    memory_bank=dict(
        num_images=256, num_objects=num_clusters, embed_dim=embed_dims))

train_dataloader = dict(batch_size=16, num_workers=2)

max_epochs = 10
warmup_epochs = 1
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10., T_max=max_epochs, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

custom_hooks = [
    dict(
        type='CrIBoHook',
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=2,
        crossimage_start_epoch=1,
        pos_alpha=(1.0, 1.0),
        freeze_last_layer_epochs=1),
]
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# the lr above is used as is: a short run needs more than 5e-4 * 16 / 256
auto_scale_lr = dict(base_batch_size=16, enable=False)
