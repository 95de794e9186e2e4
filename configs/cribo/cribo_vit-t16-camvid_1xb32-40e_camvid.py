# CrIBo on the 367 CamVid training images (labels unused), sized for a CPU:
# ViT/16 with 128 dims and 6 blocks, 224 px views (14 x 14 tokens), K = 32
# clusters per image pair, a bank of 128 images (about a third of the data
# set, like 25 000 of COCO's 118 287), 40 epochs of 11 iterations.
# configs/dino/dino_vit-t16-camvid_1xb32-40e_camvid.py is the same run
# without the object terms. data_root is relative to the project root:
#   --cfg-options train_dataloader.dataset.data_root=/path/to/camvid
_base_ = [
    '../_base_/models/cribo_vit-s16.py',
    '../_base_/datasets/camvid_cribo.py',
    '../_base_/schedules/cribo_adamw_coslr.py',
    '../_base_/default_runtime.py',
]

embed_dims = 128
num_clusters = 32
out_dim = 4096
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=6,
            num_heads=4,
            feedforward_channels=4 * embed_dims),
        drop_path_rate=0.1),
    neck=dict(
        in_channels=embed_dims,
        out_channels=out_dim,
        out_channels_objects=out_dim,
        hidden_channels=1024,
        bottleneck_channels=256),
    head=dict(out_dim=out_dim, out_dim_c=out_dim),
    object_pooling=dict(num_clusters=num_clusters),
    memory_bank=dict(
        num_images=128, num_objects=num_clusters, embed_dim=embed_dims))

train_dataloader = dict(batch_size=32, num_workers=2)

max_epochs = 40
warmup_epochs = 5
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, end_factor=1.0, by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-6, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10., T_max=max_epochs, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
# the lr above is used as is (one process, batch 32)
auto_scale_lr = dict(base_batch_size=32, enable=False)

custom_hooks = [
    dict(
        type='CrIBoHook',
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=6,
        crossimage_start_epoch=1,
        pos_alpha=(1.0, 1.0),
        freeze_last_layer_epochs=1),
]
default_hooks = dict(
    logger=dict(interval=11),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_last=True))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
