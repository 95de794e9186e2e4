# Copyright (c) cribo-mm contributors. All rights reserved.
# UperNet fine-tuning schedule, as MMSegmentation's MAE/BEiT UperNet recipes:
# AdamW (lr 1e-4, weight decay 0.05, none on biases, norms, position
# embedding and CLS token), 1500 linear warm-up iterations, then linear
# decay to 0 at 160k iterations, with layer-wise lr decay 0.65.
#
# Layer-wise lr decay comes from cribo_mm's
# CrIBoLayerDecayOptimWrapperConstructor (registered in mmpretrain's
# registry, hence the prefix): for an n-block ViT backbone (n is read from
# the model) the embeddings get lr * rate ** (n + 1), block i gets
# lr * rate ** (n - i), and the final norm, the neck and the heads get lr.
# (MMSegmentation's LayerDecayOptimizerConstructor only accepts its own
# BEiT/MAE backbones, and mmpretrain's
# LearningRateDecayOptimWrapperConstructor needs a get_layer_depth() on the
# whole model, which EncoderDecoder lacks.) To change the rate:
#   --cfg-options optim_wrapper.paramwise_cfg.layer_decay_rate=0.75
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optimizer = None  # the SGD of the mmseg base; optim_wrapper is what counts
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmpretrain.CrIBoLayerDecayOptimWrapperConstructor',
    # layer_decay_rate, num_layers: see above (num_layers=None: the number
    # of backbone blocks). In the backbone the constructor leaves out weight
    # decay on biases, norms, pos_embed and cls_token; flat_decay_mult does
    # the same for the 1-D parameters of the neck and heads (biases,
    # BatchNorm).
    paramwise_cfg=dict(
        layer_decay_rate=0.65, num_layers=None, flat_decay_mult=0.))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]
