# Copyright (c) cribo-mm contributors. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA
from mmpretrain.structures import DataSample

from cribo_mm.registry import MODELS

__all__ = ['ORL']

ORL_LOSS_TERMS = ('loss_image', 'loss_intra_roi', 'loss_inter_roi')


@MODELS.register_module()
class ORL(BaseSelfSupervisor):
    """ORL stage 3: image-level plus intra- and inter-RoI BYOL.

    Implementation of `Unsupervised Object-Level Representation Learning
    from Scene Images <https://arxiv.org/abs/2106.11952>`_ (object-level
    pretraining; the pseudo labels come from the stage-2 tools).

    ``inputs`` holds six views (see :class:`ORLMultiBranch`): the two image
    views, the intra-RoI pair and the inter-RoI pair. One online network
    (backbone + projector ``neck``) and one EMA target encode every view in
    its own forward pass (per-view BatchNorm statistics); three predictors
    (``head``, ``intra_head``, ``inter_head``, each a ``LatentPredictHead``)
    give the three symmetrised BYOL terms

    .. math::

        \\mathcal{L} = \\sum_{b \\in \\{image, intra, inter\\}}
        \\ell_b(q_b(z_1), \\bar z_2) + \\ell_b(q_b(z_2), \\bar z_1),
        \\qquad \\ell(p, t) = 2 - 2 \\cos(p, t),

    all weights 1 by default.

    Args:
        backbone (dict): Backbone config (ResNet-50 in the paper).
        neck (dict): Projector config (``NonLinearNeck``).
        head (dict): Image-level ``LatentPredictHead`` config.
        intra_head (dict, optional): Intra-RoI head. Defaults to a copy of
            ``head`` (with its own weights).
        inter_head (dict, optional): Inter-RoI head. Defaults to a copy of
            ``head``.
        loss_weights (tuple[float, float, float]): Weights of the image,
            intra-RoI and inter-RoI terms. Defaults to (1, 1, 1).
        base_momentum (float): Start of the target's EMA momentum in
            mmengine's convention (``x_ema = (1 - m) x_ema + m x``): 0.01 is
            BYOL's tau = 0.99. Defaults to 0.01.
        end_momentum (float): End of the cosine schedule (tau = 1).
            Defaults to 0.
        pretrained (str, optional): Checkpoint to load. Defaults to None.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): mmengine init config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 intra_head: Optional[dict] = None,
                 inter_head: Optional[dict] = None,
                 loss_weights: Tuple[float, float, float] = (1., 1., 1.),
                 base_momentum: float = 0.01,
                 end_momentum: float = 0.,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if len(loss_weights) != 3:
            raise ValueError('loss_weights needs three numbers (image, '
                             f'intra-RoI, inter-RoI), got {loss_weights!r}')
        self.intra_head = MODELS.build(intra_head or head)
        self.inter_head = MODELS.build(inter_head or head)
        self.loss_weights = tuple(float(w) for w in loss_weights)
        self.target_net = CosineEMA(
            nn.Sequential(self.backbone, self.neck),
            momentum=base_momentum,
            end_momentum=end_momentum)

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(x))[0]

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """The three symmetrised BYOL terms.

        Args:
            inputs (list[Tensor]): Six batches: image views (B, 3, H, W) x 2,
                intra-RoI views (B, 3, h, w) x 2, inter-RoI views x 2.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss_image``, ``loss_intra_roi`` and
            ``loss_inter_roi`` (scalars; mmengine sums them).
        """
        num = len(inputs) if isinstance(inputs, (list, tuple)) else None
        if num != 6:
            raise ValueError('ORL expects a list of six input views (2 image, '
                             f'2 intra-RoI, 2 inter-RoI), got {num} views')
        online = [self._online(x) for x in inputs]
        with torch.no_grad():
            self.target_net.update_parameters(
                nn.Sequential(self.backbone, self.neck))
            target = [self.target_net(x)[0] for x in inputs]
        heads = (self.head, self.intra_head, self.inter_head)
        losses = {}
        for b, (name, head,
                w) in enumerate(zip(ORL_LOSS_TERMS, heads, self.loss_weights)):
            o1, o2 = online[2 * b], online[2 * b + 1]
            t1, t2 = target[2 * b], target[2 * b + 1]
            losses[name] = w * (head.loss(o1, t2) + head.loss(o2, t1))
        return losses
