# CrIBo ViT-S/16 on COCO train2017: the reference COCO setting
# (300 epochs, 8 GPUs x 32 images, K = 64, lambda_pos = 2, fp16).
_base_ = [
    '../_base_/models/cribo_vit-s16.py',
    '../_base_/datasets/coco_cribo.py',
    '../_base_/schedules/cribo_adamw_coslr.py',
    '../_base_/default_runtime.py',
]

num_clusters = 64
model = dict(
    object_pooling=dict(num_clusters=num_clusters),
    memory_bank=dict(num_images=25000, num_objects=num_clusters))

train_dataloader = dict(batch_size=32, num_workers=10)

# fp16 as the reference; clustering and losses run in fp32 inside.
optim_wrapper = dict(type='AmpOptimWrapper')  # dynamic loss scale

custom_hooks = [
    dict(
        type='CrIBoHook',
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=30,
        crossimage_start_epoch=1,
        pos_alpha=(2.0, 2.0),
        freeze_last_layer_epochs=1),
]
# global batch 256 = 8 x 32: lr = 5e-4 x 256 / 256
auto_scale_lr = dict(base_batch_size=256, enable=True)
