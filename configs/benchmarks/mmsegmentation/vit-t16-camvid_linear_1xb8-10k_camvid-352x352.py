# Copyright (c) cribo-mm contributors. All rights reserved.
# The CPU ViT of configs/cribo/cribo_vit-t16-camvid_1xb32-40e_camvid.py
# (ViT/16, 128 dims, 6 blocks, 4 heads), linear segmentation on the frozen
# backbone, CamVid: vit-s16_linear_1xb8-10k_camvid-352x352.py with the
# backbone and head widths changed (what cribo2mmseg.py --config-out --head
# linear --dataset camvid writes for this backbone). The weights:
#   python tools/model_converters/cribo2mmseg.py \
#       work_dirs/camvid/cribo/epoch_40.pth \
#       work_dirs/camvid/cribo_camvid_teacher_backbone.pth
# elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH. The
# data root defaults to data/camvid/ (see the vit-s16 config).
_base_ = ['./vit-s16_linear_1xb8-10k_camvid-352x352.py']

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=128,
            num_layers=6,
            num_heads=4,
            feedforward_channels=512),
        patch_size=16,
        qkv_bias=True,
        final_norm=True,
        out_indices=[5],
        frozen_stages=6,  # everything: embeddings, 6 blocks, final norm
        init_cfg=dict(
            checkpoint='work_dirs/camvid/cribo_camvid_teacher_backbone.pth')),
    decode_head=dict(in_channels=[128], channels=128))
