# Copyright (c) cribo-mm contributors. All rights reserved.
# UperNet fine-tuning schedule, as MMSegmentation's MAE/BEiT UperNet recipes:
# AdamW (lr 1e-4, weight decay 0.05, none on biases, norms, position
# embedding and CLS token), 1500 linear warm-up iterations, then linear
# decay to 0 at 160k iterations, with layer-wise lr decay 0.65.
#
# Layer-wise lr decay for a 12-block mmpretrain ViT, written as custom_keys
# of mmengine's default optimizer constructor: the embeddings get
# lr * rate ** 13, block i gets lr * rate ** (12 - i), and the final norm,
# the neck and the heads get lr. (MMSegmentation's
# LayerDecayOptimizerConstructor only accepts its own BEiT/MAE backbones,
# and mmpretrain's LearningRateDecayOptimWrapperConstructor needs a
# get_layer_depth() on the whole model, which EncoderDecoder lacks.)
# mmengine applies the custom key that is the longest substring of a
# parameter name, and a custom key replaces the other rules, hence the
# per-block keys for the biases and norms without weight decay.
# To change the rate or the depth, copy this file: the keys are computed
# here, when the config is read.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

layer_decay_rate = 0.65
layer_decay_num_layers = 12
# yapf: disable
layer_decay_custom_keys = {
    # depth 0: embeddings (no weight decay but on the patch projection)
    key: dict(lr_mult=layer_decay_rate**(layer_decay_num_layers + 1),
              decay_mult=decay)
    for key, decay in (('backbone.cls_token', 0.),
                       ('backbone.pos_embed', 0.),
                       ('backbone.patch_embed.projection.weight', 1.),
                       ('backbone.patch_embed.projection.bias', 0.))
}
# depth i + 1: block i
layer_decay_custom_keys.update({
    f'backbone.layers.{i}.':
        dict(lr_mult=layer_decay_rate**(layer_decay_num_layers - i))
    for i in range(layer_decay_num_layers)
})
# ... without weight decay on its biases and LayerNorms
layer_decay_custom_keys.update({
    f'backbone.layers.{i}.{name}':
        dict(lr_mult=layer_decay_rate**(layer_decay_num_layers - i),
             decay_mult=0.)
    for i in range(layer_decay_num_layers)
    for name in ('ln1.', 'ln2.', 'attn.qkv.bias', 'attn.proj.bias',
                 'ffn.layers.0.0.bias', 'ffn.layers.1.bias')
})
# last depth: final norm (and, without a key, the neck and the heads)
layer_decay_custom_keys['backbone.ln1.'] = dict(lr_mult=1., decay_mult=0.)
# yapf: enable

optimizer = None  # the SGD of the mmseg base; optim_wrapper is what counts
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # flat_decay_mult: no weight decay on the 1-D parameters of the neck
    # and heads (biases, BatchNorm) either
    paramwise_cfg=dict(
        flat_decay_mult=0., custom_keys=layer_decay_custom_keys))
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
