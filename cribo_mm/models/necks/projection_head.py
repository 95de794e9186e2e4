# Copyright (c) cribo-mm contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch.nn.utils.parametrizations import weight_norm

from cribo_mm.registry import MODELS


def _weight_normed_linear(in_features: int, out_features: int,
                          freeze_gain: bool) -> nn.Linear:
    """A bias-free linear layer with weight normalisation, gain 1.

    ``parametrizations.weight_norm`` is used rather than the legacy
    ``nn.utils.weight_norm`` because the teacher is a deep copy of the
    student and the legacy form cannot be deep-copied. Its ``original0`` is
    the legacy ``weight_g`` (gain, shape (out, 1)) and ``original1`` is
    ``weight_v`` (direction, shape (out, in)).
    """
    layer = weight_norm(nn.Linear(in_features, out_features, bias=False))
    gain = layer.parametrizations.weight.original0
    with torch.no_grad():
        gain.fill_(1.)
    gain.requires_grad_(not freeze_gain)
    return layer


@MODELS.register_module()
class CrIBoProjectionHead(BaseModule):
    """DINO-style projection head with a global and an object last layer.

    A shared MLP (``num_layers`` linear layers with GELU in between) maps a
    token to a ``bottleneck_channels`` vector, which is L2-normalised and sent
    through one of two weight-normalised, bias-free last layers:
    ``last_layer`` for the CLS token (global term) and ``last_layer_c`` for
    object representations (both object terms), as in `CrIBo
    <https://arxiv.org/abs/2310.07855>`_.

    Args:
        in_channels (int): Token dimension of the backbone.
        out_channels (int): Output dimension of the global last layer.
            Defaults to 65536.
        out_channels_objects (int): Output dimension of the object last
            layer. Defaults to 65536.
        hidden_channels (int): Hidden width of the MLP. Defaults to 2048.
        bottleneck_channels (int): Output width of the MLP. Defaults to 256.
        num_layers (int): Linear layers in the MLP. Defaults to 3.
        use_bn (bool): BatchNorm after each hidden linear layer.
            Defaults to False.
        norm_last_layer (bool): Freeze the weight-norm gains at 1 (the
            reference does this for ViT-B). Defaults to False.
        init_cfg (dict, optional): mmengine init config. The default
            (None) keeps the reference initialisation done here: truncated
            normal (std 0.02) MLP weights with zero biases, PyTorch's default
            init for the direction of the last layers, gains 1.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 65536,
                 out_channels_objects: int = 65536,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 num_layers: int = 3,
                 use_bn: bool = False,
                 norm_last_layer: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        if num_layers == 1:
            self.mlp = nn.Linear(in_channels, bottleneck_channels)
        else:
            layers = []
            width = in_channels
            for _ in range(num_layers - 1):
                layers.append(nn.Linear(width, hidden_channels))
                if use_bn:
                    layers.append(nn.BatchNorm1d(hidden_channels))
                layers.append(nn.GELU())
                width = hidden_channels
            layers.append(nn.Linear(width, bottleneck_channels))
            self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
        self.last_layer = _weight_normed_linear(bottleneck_channels,
                                                out_channels, norm_last_layer)
        self.last_layer_c = _weight_normed_linear(bottleneck_channels,
                                                  out_channels_objects,
                                                  norm_last_layer)

    def last_layer_parameters(self):
        """Parameters of both last layers (frozen early in training)."""
        yield from self.last_layer.parameters()
        yield from self.last_layer_c.parameters()

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1, p=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project CLS tokens with the global last layer.

        Args:
            x (Tensor): Tokens of shape (N, in_channels).

        Returns:
            Tensor: Logits of shape (N, out_channels).
        """
        return self.last_layer(self._embed(x))

    def forward_objects(self, x: torch.Tensor) -> torch.Tensor:
        """Project object representations with the object last layer.

        Args:
            x (Tensor): Object representations of shape (N, in_channels).

        Returns:
            Tensor: Logits of shape (N, out_channels_objects).
        """
        return self.last_layer_c(self._embed(x))
