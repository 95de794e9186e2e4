# CrIBo ViT-B/16 on ImageNet-1k: the reference setting (400 epochs,
# 64 images per GPU, K = 32, lambda_pos = 1, fp32, per-parameter gradient
# clipping 0.3, last layers frozen for 3 epochs, weight-norm gains frozen).
_base_ = [
    '../_base_/models/cribo_vit-s16.py',
    '../_base_/datasets/imagenet_cribo.py',
    '../_base_/schedules/cribo_adamw_coslr.py',
    '../_base_/default_runtime.py',
]

num_clusters = 32
model = dict(
    backbone=dict(arch='deit-base'),
    neck=dict(in_channels=768, norm_last_layer=True),
    object_pooling=dict(num_clusters=num_clusters),
    memory_bank=dict(
        num_images=25000, num_objects=num_clusters, embed_dim=768))

train_dataloader = dict(batch_size=64, num_workers=10)

max_epochs = 400
warmup_epochs = 10
optim_wrapper = dict(optimizer=dict(lr=7.5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=2e-6, by_epoch=True, begin=warmup_epochs, end=max_epochs,
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
        warmup_teacher_temp_epochs=50,
        crossimage_start_epoch=1,
        pos_alpha=(1.0, 1.0),
        freeze_last_layer_epochs=3,
        clip_grad_per_param=0.3),
]
auto_scale_lr = dict(base_batch_size=256, enable=True)
