# Copyright (c) cribo-mm contributors. All rights reserved.
"""Optimizer constructor with one parameter group per distinct setting."""
from typing import Any, Dict, Hashable, List, Optional, Union

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from cribo_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['merge_param_groups', 'CrIBoOptimWrapperConstructor']


def _hashable(value: Any) -> Hashable:
    """A hashable stand-in of a group setting (lists and dicts included)."""
    if isinstance(value, dict):
        return ('dict', tuple(sorted(
            (k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_hashable(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ('repr', repr(value))
    return (type(value).__name__, value)


def merge_param_groups(groups: List[dict],
                       defaults: Optional[Dict[str, Any]] = None
                       ) -> List[dict]:
    """Merge parameter groups whose effective settings are identical.

    A group's effective settings are ``defaults`` updated with the group's
    own keys (everything but ``params``), i.e. what the optimizer will use:
    a group without ``lr`` and a group with ``lr`` equal to the default are
    the same. Groups are emitted in the order of their first member, and
    parameters keep their order within a group (a parameter listed twice
    stays listed twice, for the optimizer to reject as before).

    Args:
        groups (list[dict]): Parameter groups, each with a ``params`` list
            and optional settings (``lr``, ``weight_decay``, ...).
        defaults (dict, optional): The optimizer's settings for keys a group
            does not set (the optimizer config without ``type``/``params``).

    Returns:
        list[dict]: One group per distinct effective setting, holding the
        explicit keys of its first member and all the member parameters.
    """
    defaults = dict(defaults or {})
    defaults.pop('params', None)
    defaults.pop('type', None)
    merged: Dict[Hashable, dict] = {}
    for group in groups:
        settings = {k: v for k, v in group.items() if k != 'params'}
        effective = dict(defaults, **settings)
        key = _hashable(effective)
        target = merged.get(key)
        if target is None:
            target = merged[key] = dict(settings, params=[])
        target['params'].extend(group['params'])
    return [group for group in merged.values() if group['params']]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CrIBoOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor with the parameter groups merged.

    ``paramwise_cfg`` (``norm_decay_mult``, ``bias_decay_mult``,
    ``custom_keys``, ...) gives every parameter tensor its own group in
    :class:`DefaultOptimWrapperConstructor` (about 150 for a ViT-S/16 with
    its heads), and the optimizer pays a per-group cost at every step. Here
    the parameters with the same learning rate, weight decay and other
    settings share one group (e.g. two for CrIBo: decayed and not decayed);
    every parameter keeps exactly the settings the default constructor
    gives it, and parameter schedulers act on the groups as before
    (``CosineAnnealingParamScheduler`` with ``eta_min_ratio`` leaves the
    no-decay group at 0).

    Without ``paramwise_cfg`` it builds the same single group as the
    default constructor.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config, with the
            ``optimizer``.
        paramwise_cfg (dict, optional): The default constructor's options.
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """Add the parameters of ``module`` to ``params``, merged.

        The top-level call collects the per-parameter groups of the
        constructor's rules (recursive calls, ``prefix`` not empty, add them
        as they are), then merges them with :func:`merge_param_groups`.

        Args:
            params (list[dict]): The parameter groups, extended in place.
            module (nn.Module): The module whose parameters to add.
            prefix (str): The module's name in the model. Defaults to ''.
            is_dcn_module (int | float, optional): As for the default
                constructor. Defaults to None.
        """
        if prefix:
            super().add_params(params, module, prefix, is_dcn_module)
            return
        groups: List[dict] = []
        super().add_params(groups, module, prefix, is_dcn_module)
        params.extend(merge_param_groups(groups, self.optimizer_cfg))
