# Copyright (c) cribo-mm contributors. All rights reserved.
"""Layer-wise learning-rate decay for a ViT backbone inside any model."""
import logging
from typing import List, Optional, Tuple, Union

import torch.nn as nn
from mmengine.logging import print_log

from cribo_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS
from .grouped_constructor import CrIBoOptimWrapperConstructor

# Backbone parameters that sit before the first block (depth 0) and are not
# in ``patch_embed``; they never get weight decay.
EMBEDDING_PARAMS = ('cls_token', 'pos_embed', 'dist_token', 'mask_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CrIBoLayerDecayOptimWrapperConstructor(CrIBoOptimWrapperConstructor):
    """Layer-wise lr decay for the ViT ``backbone`` of a model.

    The model (an MMSegmentation ``EncoderDecoder``, say) needs a ``backbone``
    attribute laid out as mmpretrain's ``VisionTransformer``: ``cls_token``,
    ``pos_embed`` and ``patch_embed`` before the blocks ``layers.0`` to
    ``layers.{n-1}``, then a final norm. With ``rate`` the decay rate and
    ``n`` the number of blocks, the backbone parameters get

    * embeddings (``cls_token``, ``pos_embed``, ``patch_embed.*``):
      ``lr * rate ** (n + 1)``;
    * block ``i`` (``layers.{i}.*``): ``lr * rate ** (n - i)``;
    * everything else in the backbone (the final norm): ``lr``;

    and no weight decay on the 1-D parameters (biases, LayerNorms) nor on
    ``cls_token`` and ``pos_embed``; the other backbone parameters get the
    full weight decay. This is the depth numbering of mmpretrain's
    ``VisionTransformer.get_layer_depth()``, applied to the backbone alone,
    so the model itself needs no ``get_layer_depth()``.

    Parameters with the same resulting settings share one group (one per
    (lr scale, weight decay) combination, see
    :class:`CrIBoOptimWrapperConstructor`).

    The parameters outside the backbone (neck, heads) follow the rules of
    mmengine's :class:`DefaultOptimWrapperConstructor` (``custom_keys``,
    ``flat_decay_mult``, ``bias_decay_mult``, ...) at the base lr. Inside the
    backbone those rules are replaced by the ones above, except
    ``custom_keys``: the ``lr_mult`` and ``decay_mult`` of the longest
    matching key multiply the layer-wise values.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config, with the
            ``optimizer``, as for the default constructor.
        paramwise_cfg (dict, optional): The default constructor's options,
            plus:

            - ``layer_decay_rate`` (float): The decay rate per block;
              required.
            - ``num_layers`` (int, optional): The number of blocks ``n``.
              Defaults to None: ``len(model.backbone.layers)``.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if 'layer_decay_rate' not in self.paramwise_cfg:
            raise ValueError(
                f'{type(self).__name__} needs '
                'paramwise_cfg.layer_decay_rate')
        self.layer_decay_rate = float(self.paramwise_cfg['layer_decay_rate'])
        num_layers = self.paramwise_cfg.get('num_layers', None)
        self.num_layers = None if num_layers is None else int(num_layers)
        self._num_layers = self.num_layers
        self._backbone_prefix = 'backbone'

    def __call__(self, model: nn.Module):
        """Build the optimizer wrapper of ``model``.

        Args:
            model (nn.Module): The model to optimize (possibly wrapped, with
                the model in ``model.module``); it needs a ``backbone``.

        Returns:
            OptimWrapper: The optimizer wrapper.
        """
        inner = model.module if hasattr(model, 'module') else model
        backbone = getattr(inner, 'backbone', None)
        if not isinstance(backbone, nn.Module):
            raise TypeError(f'{type(self).__name__} needs a model with a '
                            f'backbone; {type(inner).__name__} has none')
        if self.num_layers is None:
            if not hasattr(backbone, 'layers'):
                raise TypeError(
                    f'{type(backbone).__name__} has no `layers`; set '
                    'paramwise_cfg.num_layers')
            self._num_layers = len(backbone.layers)
        else:
            self._num_layers = self.num_layers
        return super().__call__(model)

    def layer_depth(self, name: str) -> Tuple[int, int]:
        """The depth of a backbone parameter and the number of depths.

        Args:
            name (str): The parameter name inside the backbone
                (``'layers.3.ln1.weight'``), without the ``backbone.``
                prefix.

        Returns:
            tuple[int, int]: The depth, 0 for the embeddings, ``i + 1`` for
            block ``i`` and ``n + 1`` for the rest, and the number of depths
            ``n + 2``.
        """
        num_depths = self._num_layers + 2
        parts = name.split('.')
        if parts[0] in EMBEDDING_PARAMS or parts[0] == 'patch_embed':
            return 0, num_depths
        if parts[0] == 'layers' and len(parts) > 1:
            block = int(parts[1])
            if not 0 <= block < self._num_layers:
                raise ValueError(
                    f'backbone.{name} is in block {block}, but num_layers '
                    f'is {self._num_layers}')
            return block + 1, num_depths
        return num_depths - 1, num_depths

    def _custom_mults(self, full_name: str) -> Tuple[float, float]:
        """``lr_mult`` and ``decay_mult`` of the longest matching custom key.

        Args:
            full_name (str): The parameter name in the model.

        Returns:
            tuple[float, float]: The two multipliers, 1 without a match.
        """
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        for key in sorted(sorted(custom_keys), key=len, reverse=True):
            if key in full_name:
                return (custom_keys[key].get('lr_mult', 1.),
                        custom_keys[key].get('decay_mult', 1.))
        return 1., 1.

    def _add_backbone_params(self, params: List[dict], backbone: nn.Module,
                             prefix: str) -> None:
        """Add the backbone parameters with their layer-wise settings.

        Args:
            params (list[dict]): The parameter groups, extended in place.
            backbone (nn.Module): The backbone.
            prefix (str): The backbone's name in the model.
        """
        seen = set()
        for name, param in backbone.named_parameters():
            full_name = f'{prefix}.{name}'
            if not param.requires_grad:
                print_log(
                    f'{full_name} is skipped since its requires_grad=False',
                    logger='current',
                    level=logging.WARNING)
                continue
            if (self.paramwise_cfg.get('bypass_duplicate', False)
                    and id(param) in seen):
                continue
            seen.add(id(param))
            depth, num_depths = self.layer_depth(name)
            lr_mult, decay_mult = self._custom_mults(full_name)
            lr_mult *= self.layer_decay_rate**(num_depths - 1 - depth)
            if param.ndim <= 1 or name.split('.')[0] in EMBEDDING_PARAMS:
                decay_mult = 0.
            group = dict(params=[param], lr=self.base_lr * lr_mult)
            if self.base_wd is not None:
                group['weight_decay'] = self.base_wd * decay_mult
            params.append(group)
            print_log(
                f'paramwise_options -- {full_name}: depth={depth}, '
                f'lr={group["lr"]}, '
                f'weight_decay={group.get("weight_decay")}',
                logger='current',
                level=logging.DEBUG)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """Add the parameters of ``module`` to ``params``.

        The backbone gets the layer-wise settings; every other module goes
        through the default constructor's rules (which call this method
        again for each child module).

        Args:
            params (list[dict]): The parameter groups, extended in place.
            module (nn.Module): The module whose parameters to add.
            prefix (str): The module's name in the model. Defaults to ''.
            is_dcn_module (int | float, optional): As for the default
                constructor. Defaults to None.
        """
        if prefix == self._backbone_prefix:
            self._add_backbone_params(params, module, prefix)
        else:  # the top-level call merges the groups
            super().add_params(params, module, prefix, is_dcn_module)
