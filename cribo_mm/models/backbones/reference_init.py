# Copyright (c) cribo-mm contributors. All rights reserved.
"""The reference ViT's weight initialisation, as a function of a backbone.

``CrIBo.init_weights`` applies it to the student (and copies it to the
teacher); the dense-NN tool applies it to evaluate a backbone "as training
starts", which is a different network from mmpretrain's default
``init_weights`` (PyTorch's uniform fan-in init for the linear layers, about
3x the spread of the reference's truncated normal for a 96-d ViT).
"""
import torch
from torch import nn

__all__ = ['reference_vit_init']


@torch.no_grad()
def reference_vit_init(backbone: nn.Module) -> nn.Module:
    """Initialise a ViT like the reference, in place.

    Linear layers: truncated normal (std 0.02) weights, zero biases;
    LayerNorms: 1 / 0; the patch-embedding convolution: PyTorch's default;
    ``pos_embed`` and ``cls_token``: truncated normal (std 0.02).

    Args:
        backbone (nn.Module): The ViT.

    Returns:
        nn.Module: ``backbone``.
    """
    for m in backbone.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            m.reset_parameters()  # the patch embedding: PyTorch default
    for name in ('pos_embed', 'cls_token'):
        param = getattr(backbone, name, None)
        if isinstance(param, nn.Parameter):
            nn.init.trunc_normal_(param, std=.02)
    return backbone
