# Copyright (c) cribo-mm contributors. All rights reserved.
"""Optimizer constructor with one parameter group per distinct setting."""
from typing import Any, Dict, Hashable, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from cribo_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = [
    'merge_param_groups', 'regroup_optimizer_state',
    'CrIBoOptimWrapperConstructor'
]


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


def regroup_optimizer_state(state_dict: dict, optimizer: torch.optim.Optimizer,
                            model: nn.Module) -> dict:
    """An optimizer state saved with one group per parameter tensor, laid
    out for ``optimizer``'s merged groups.

    mmengine's default constructor with ``paramwise_cfg`` (and cribo-mm
    before :class:`CrIBoOptimWrapperConstructor`) saves one group per
    trainable parameter of ``model.named_parameters()``, in that order; the
    merged optimizer has a few groups, and
    ``torch.optim.Optimizer.load_state_dict`` refuses such a state. The
    per-parameter state (AdamW moments, step) moves to the parameter's
    place in the merged groups; a merged group takes the settings (lr,
    weight decay, ``initial_lr``, ...) its members were saved with, which
    must agree.

    Args:
        state_dict (dict): The saved optimizer (or optim wrapper) state,
            with ``state`` and ``param_groups``; other keys (e.g.
            ``loss_scaler``) are kept.
        optimizer (Optimizer): The optimizer to load it into.
        model (nn.Module): The model whose parameters ``optimizer`` holds.

    Returns:
        dict: ``state_dict`` itself when its groups already match the
        optimizer's count or it is not a one-group-per-parameter state;
        else the regrouped copy.

    Raises:
        ValueError: When the members of a merged group were saved with
            different settings, or a saved moment has another shape than
            its parameter (the state belongs to another model).
    """
    saved_groups = state_dict.get('param_groups', [])
    if len(saved_groups) == len(optimizer.param_groups):
        return state_dict
    # the default constructor's order: trainable parameters only
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if len(saved_groups) != len(params) or any(
            len(group['params']) != 1 for group in saved_groups):
        return state_dict  # another layout: the optimizer's check speaks
    position = {id(p): i for i, p in enumerate(params)}
    if any(id(p) not in position for group in optimizer.param_groups
           for p in group['params']):
        return state_dict  # not this model's optimizer
    names = [n for n, _ in named]
    new_state, new_groups, next_id = {}, [], 0
    for number, group in enumerate(optimizer.param_groups):
        members = [saved_groups[position[id(p)]] for p in group['params']]
        settings = {k: v for k, v in members[0].items() if k != 'params'}
        ids = []
        for param, member in zip(group['params'], members):
            name = names[position[id(param)]]
            other = {k: v for k, v in member.items() if k != 'params'}
            if other != settings:
                raise ValueError(
                    f'optimizer state: {name} was saved with {other}, '
                    f'another setting than the rest of merged group {number} '
                    f'({settings}); it cannot be loaded into the merged '
                    'groups (use mmengine\'s DefaultOptimWrapperConstructor '
                    'to resume this checkpoint)')
            state = state_dict['state'].get(member['params'][0])
            if state is not None:
                for key, value in state.items():
                    if torch.is_tensor(value) and value.dim() > 0 and \
                            value.shape != param.shape:
                        raise ValueError(
                            f'optimizer state: {key} of {name} has shape '
                            f'{tuple(value.shape)}, the parameter '
                            f'{tuple(param.shape)}: the state is not this '
                            'model\'s')
                new_state[next_id] = state
            ids.append(next_id)
            next_id += 1
        new_groups.append(dict(settings, params=ids))
    regrouped = dict(state_dict)
    regrouped.update(state=new_state, param_groups=new_groups)
    return regrouped


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
