# CrIBo ViT-S/16 on ImageNet-1k: the reference setting
# (800 epochs, 8 GPUs x 128 images, K = 32, lambda_pos = 1, fp16).
_base_ = [
    '../_base_/models/cribo_vit-s16.py',
    '../_base_/datasets/imagenet_cribo.py',
    '../_base_/schedules/cribo_adamw_coslr.py',
    '../_base_/default_runtime.py',
]

num_clusters = 32
model = dict(
    object_pooling=dict(num_clusters=num_clusters),
    memory_bank=dict(num_images=25000, num_objects=num_clusters))

train_dataloader = dict(batch_size=128, num_workers=10)
optim_wrapper = dict(type='AmpOptimWrapper')  # dynamic loss scale

max_epochs = 800
warmup_epochs = 10
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
        warmup_teacher_temp_epochs=30,
        crossimage_start_epoch=1,
        pos_alpha=(1.0, 1.0),
        freeze_last_layer_epochs=1),
]
auto_scale_lr = dict(base_batch_size=256, enable=True)
