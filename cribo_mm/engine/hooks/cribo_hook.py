# Copyright (c) cribo-mm contributors. All rights reserved.
import glob
import os
import os.path as osp
import random
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from cribo_mm.engine.optimizers.grouped_constructor import \
    regroup_optimizer_state
from cribo_mm.models.losses.cribo_loss import teacher_temperature_schedule
from cribo_mm.models.utils.clustering import pos_alpha_schedule
from cribo_mm.registry import HOOKS
from cribo_mm.utils.checkpoint_io import load_checkpoint_file

#: Heads whose teacher entropy the model logs (``teacher_entropy_<head>``
#: next to ``log_out_dim_<head>``).
COLLAPSE_HEADS = ('global', 'object')


def on_uniform_plateau(entropy: float, max_entropy: float,
                       rtol: float) -> bool:
    """Whether a teacher distribution is (nearly) uniform.

    Args:
        entropy (float): Mean entropy of the teacher rows, in nats.
        max_entropy (float): ``log(out_dim)``, the entropy of the uniform
            distribution.
        rtol (float): Relative tolerance.

    Returns:
        bool: ``entropy >= (1 - rtol) * max_entropy``.
    """
    return entropy >= (1. - rtol) * max_entropy


@HOOKS.register_module()
class CrIBoHook(Hook):
    """Everything epoch-dependent in CrIBo training, set before each epoch.

    * teacher temperature of both heads: linear warm-up
      ``warmup_teacher_temp`` -> ``teacher_temp`` over
      ``warmup_teacher_temp_epochs`` epochs (endpoints included), then
      constant; the object head follows the same schedule unless its own
      ``*_c`` values are given (the reference allows separate ones);
    * the cross-image object term: off before ``crossimage_start_epoch``
      (reference: 1, since the bank holds only its random initial state
      during epoch 0);
    * lambda_pos of the clustering: ``linspace(pos_alpha[1], pos_alpha[0],
      max_epochs)[epoch]`` (the reference's reversed tuple order);
    * gradients of both last layers of the student head are dropped (set to
      ``None``, so AdamW neither moves nor decays them) during the first
      ``freeze_last_layer_epochs`` epochs;
    * optional per-parameter gradient clipping as in the reference
      (``clip_grad_per_param``); mmengine's ``optim_wrapper.clip_grad``
      clips the global norm instead.

    The hook also watches the teacher entropies that the model logs every
    iteration (``teacher_entropy_global`` / ``_object`` next to
    ``log_out_dim_global`` / ``_object``): when a head's entropy stays within
    ``plateau_rtol`` of ``log(out_dim)`` for every iteration of an epoch from
    ``plateau_start_epoch`` on, the teacher is uniform (the plateau where
    the loss equals ``log(out_dim)`` and nothing is learned) and a warning
    names the settings that move it: a lower teacher temperature, a faster
    EMA (larger ``model.base_momentum``), a smaller ``out_dim``, no
    last-layer freezing.

    Checkpoints additionally carry the random-number states of the main
    process (``meta.cribo_rng_state``: torch, CUDA, numpy, python), so that
    a resumed run draws the same clustering initialisations (and, with
    ``num_workers=0``, the same augmentations) as an uninterrupted one.
    With ``bank_in_checkpoint=False`` the memory bank is written to a side
    file ``memory_bank_iter_<iter>.pth`` next to the checkpoint instead of
    into it (``meta.memory_bank_file``), so released checkpoints stay small;
    resuming reads it back.

    The two gradient edits run in an optimizer step pre-hook, i.e. after the
    backward pass, the all-reduce of DDP and the AMP unscaling, right before
    the update. Values are recomputed from ``runner.epoch`` at every epoch
    start, so they are right after ``--resume``. They are logged as
    ``train/teacher_temp``, ``train/teacher_temp_c``, ``train/pos_alpha``,
    ``train/crossimage_enabled`` and ``train/last_layer_frozen``.

    Args:
        warmup_teacher_temp (float): Initial teacher temperature.
            Defaults to 0.04.
        teacher_temp (float): Final teacher temperature. Defaults to 0.07.
        warmup_teacher_temp_epochs (int): Warm-up length. Defaults to 30.
        warmup_teacher_temp_c (float, optional): Initial teacher temperature
            of the object head. Defaults to None (``warmup_teacher_temp``).
        teacher_temp_c (float, optional): Final teacher temperature of the
            object head. Defaults to None (``teacher_temp``).
        warmup_teacher_temp_epochs_c (int, optional): Warm-up length of the
            object head. Defaults to None (``warmup_teacher_temp_epochs``).
        crossimage_start_epoch (int): First epoch of the cross-image term.
            Defaults to 1.
        pos_alpha (Sequence[float]): (final, initial) lambda_pos.
            Defaults to (1.0, 1.0).
        freeze_last_layer_epochs (int): Defaults to 1.
        clip_grad_per_param (float, optional): Per-parameter gradient norm
            cap. Defaults to None (off).
        bank_in_checkpoint (bool): Keep the memory bank inside the model
            checkpoint. Defaults to True.
        bank_files_to_keep (int): Newest bank side files kept (match the
            CheckpointHook's ``max_keep_ckpts``). Defaults to 3.
        plateau_rtol (float): Relative distance to ``log(out_dim)`` under
            which an iteration counts as on the uniform plateau. Defaults to
            0.01.
        plateau_start_epoch (int): First epoch checked for the plateau (the
            ones before are warm-up). Defaults to 1.
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp_epochs: int = 30,
                 crossimage_start_epoch: int = 1,
                 pos_alpha: Sequence[float] = (1.0, 1.0),
                 freeze_last_layer_epochs: int = 1,
                 clip_grad_per_param: Optional[float] = None,
                 bank_in_checkpoint: bool = True,
                 bank_files_to_keep: int = 3,
                 plateau_rtol: float = 0.01,
                 plateau_start_epoch: int = 1,
                 warmup_teacher_temp_c: Optional[float] = None,
                 teacher_temp_c: Optional[float] = None,
                 warmup_teacher_temp_epochs_c: Optional[int] = None) -> None:
        if len(pos_alpha) != 2:
            raise ValueError('pos_alpha must be (final, initial), got '
                             f'{pos_alpha!r}')
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.warmup_teacher_temp_c = (warmup_teacher_temp
                                      if warmup_teacher_temp_c is None else
                                      warmup_teacher_temp_c)
        self.teacher_temp_c = (teacher_temp
                               if teacher_temp_c is None else teacher_temp_c)
        self.warmup_teacher_temp_epochs_c = (
            warmup_teacher_temp_epochs if warmup_teacher_temp_epochs_c is None
            else warmup_teacher_temp_epochs_c)
        self.crossimage_start_epoch = crossimage_start_epoch
        self.pos_alpha = tuple(pos_alpha)
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self.clip_grad_per_param = clip_grad_per_param
        self.bank_in_checkpoint = bank_in_checkpoint
        self.bank_files_to_keep = bank_files_to_keep
        if not 0. < plateau_rtol < 1.:
            raise ValueError(
                f'plateau_rtol must be in (0, 1), got {plateau_rtol!r}')
        self.plateau_rtol = plateau_rtol
        self.plateau_start_epoch = plateau_start_epoch
        # per head: [iterations seen, iterations on the plateau, log K]
        self._plateau_counts: Dict[str, list] = {}
        self._last_layer_frozen = False
        self._handles = []

    # -- values for an epoch ------------------------------------------------
    def values_at(self, epoch: int, max_epochs: int) -> dict:
        """All scheduled values at ``epoch`` of ``max_epochs``."""
        temp = teacher_temperature_schedule(
            epoch,
            warmup_temp=self.warmup_teacher_temp,
            final_temp=self.teacher_temp,
            warmup_epochs=self.warmup_teacher_temp_epochs)
        temp_c = teacher_temperature_schedule(
            epoch,
            warmup_temp=self.warmup_teacher_temp_c,
            final_temp=self.teacher_temp_c,
            warmup_epochs=self.warmup_teacher_temp_epochs_c)
        alpha = pos_alpha_schedule(self.pos_alpha, epoch, max_epochs)
        return dict(
            teacher_temp=temp,
            teacher_temp_c=temp_c,
            pos_alpha=alpha,
            crossimage_enabled=epoch >= self.crossimage_start_epoch,
            last_layer_frozen=epoch < self.freeze_last_layer_epochs)

    # -- hook points --------------------------------------------------------
    def before_train(self, runner) -> None:
        model = get_ori_model(runner.model)
        loader = runner.train_dataloader
        global_batch = (loader.batch_size or 0) * runner.world_size
        bank_images = model.memory_bank.num_images
        if getattr(model, 'object_terms', True) and \
                global_batch > bank_images:
            raise ValueError(
                f'the memory bank keeps {bank_images} images '
                '(model.memory_bank.num_images) but one step inserts '
                f'{global_batch} (batch size x {runner.world_size} ranks); '
                'the bank must hold at least one global batch')
        optim_wrapper = runner.optim_wrapper
        wrappers = (optim_wrapper.values() if hasattr(optim_wrapper, 'values')
                    else [optim_wrapper])
        last_layer = {id(p) for p in model.neck.last_layer_parameters()}
        student = {id(p) for n, p in model.named_parameters()
                   if not n.startswith('teacher.')}
        for wrapper in wrappers:
            self._handles.append(
                wrapper.optimizer.register_step_pre_hook(
                    self._make_grad_editor(last_layer, student)))

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def before_train_epoch(self, runner) -> None:
        values = self.values_at(runner.epoch, runner.max_epochs)
        model = get_ori_model(runner.model)
        model.head.teacher_temp = values['teacher_temp']
        model.head.teacher_temp_c = values['teacher_temp_c']
        model.head.crossimage_enabled = values['crossimage_enabled']
        model.object_pooling.pos_alpha = values['pos_alpha']
        self._last_layer_frozen = values['last_layer_frozen']
        for key, value in values.items():
            runner.message_hub.update_scalar(f'train/{key}', float(value))
        self._plateau_counts = {}

    # -- uniform-plateau watch ----------------------------------------------
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        for head in COLLAPSE_HEADS:
            ent = outputs.get(f'teacher_entropy_{head}')
            top = outputs.get(f'log_out_dim_{head}')
            if ent is None or top is None:
                continue
            counts = self._plateau_counts.setdefault(head, [0, 0, 0.])
            counts[0] += 1
            counts[1] += on_uniform_plateau(
                float(ent), float(top), self.plateau_rtol)
            counts[2] = float(top)

    def after_train_epoch(self, runner) -> None:
        if runner.epoch < self.plateau_start_epoch:
            return
        stuck = [(head, counts) for head, counts in
                 self._plateau_counts.items()
                 if counts[0] > 0 and counts[1] == counts[0]]
        if not stuck:
            return
        heads = ', '.join(
            f'{head} head (log(out_dim) = {top:.3f})'
            for head, (_, _, top) in stuck)
        iters = stuck[0][1][0]
        runner.logger.warning(
            f'epoch {runner.epoch + 1}: the teacher entropy of the {heads} '
            f'stayed within {100 * self.plateau_rtol:g}% of log(out_dim) '
            f'in all {iters} iterations: the teacher is uniform and the '
            'loss sits at its plateau, nothing is being learned. Settings '
            'that leave it: a lower teacher temperature (CrIBoHook '
            'teacher_temp / warmup_teacher_temp, e.g. 0.02), a faster EMA '
            'teacher (model.base_momentum, e.g. 0.01 = momentum 0.99), a '
            'smaller out_dim (model.head.out_dim / out_dim_c with '
            'model.neck.out_channels / out_channels_objects, e.g. 256), '
            'no last-layer freezing (CrIBoHook freeze_last_layer_epochs=0)')

    # -- checkpoints --------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta['cribo_rng_state'] = dict(
            torch=torch.get_rng_state(),
            cuda=(torch.cuda.get_rng_state_all()
                  if torch.cuda.is_available() else None),
            numpy=np.random.get_state(),
            python=random.getstate())
        if self.bank_in_checkpoint:
            return
        state = checkpoint['state_dict']
        bank = {k: state.pop(k) for k in list(state)
                if k.startswith('memory_bank.')}
        name = f'memory_bank_iter_{runner.iter}.pth'
        path = osp.join(runner.work_dir, name)
        tmp = path + '.tmp'
        torch.save(bank, tmp)
        os.replace(tmp, path)  # never leaves a half-written bank behind
        meta['memory_bank_file'] = name
        files = sorted(
            glob.glob(osp.join(runner.work_dir, 'memory_bank_iter_*.pth')),
            key=osp.getmtime)
        for old in files[:-self.bank_files_to_keep]:
            os.remove(old)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        name = meta.get('memory_bank_file')
        if name is not None:
            path = osp.join(runner.work_dir, name)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'the checkpoint keeps its memory bank in the side file '
                    f'{name}, which is not in {runner.work_dir}; copy it '
                    'next to the checkpoint into the work dir')
            bank = load_checkpoint_file(path)  # the project's policy
            checkpoint['state_dict'].update(bank)
        self._regroup_optimizer_state(runner, checkpoint)
        rng = meta.get('cribo_rng_state')
        if rng is not None and getattr(runner, '_resume', False):
            torch.set_rng_state(rng['torch'])
            if rng['cuda'] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng['cuda'])
            np.random.set_state(rng['numpy'])
            random.setstate(rng['python'])

    @staticmethod
    def _regroup_optimizer_state(runner, checkpoint: dict) -> None:
        """Let a checkpoint saved with one optimizer group per parameter
        (mmengine's default constructor, cribo-mm before the merged groups)
        resume into the merged groups (:func:`regroup_optimizer_state`).
        """
        wrapper = getattr(runner, 'optim_wrapper', None)
        optimizer = getattr(wrapper, 'optimizer', None)
        if not (getattr(runner, '_resume', False) and 'optimizer' in
                checkpoint and isinstance(optimizer, torch.optim.Optimizer)):
            return
        model = get_ori_model(runner.model)
        saved = checkpoint['optimizer']
        checkpoint['optimizer'] = regroup_optimizer_state(
            saved, optimizer, model)
        if checkpoint['optimizer'] is not saved:
            runner.logger.info(
                f'optimizer state: {len(saved["param_groups"])} saved groups '
                f'(one per parameter) regrouped into the '
                f'{len(optimizer.param_groups)} merged groups')

    # -- gradient edits -----------------------------------------------------
    def _make_grad_editor(self, last_layer_ids, student_ids):

        def edit_gradients(optimizer, args, kwargs):
            params = [p for group in optimizer.param_groups
                      for p in group['params'] if p.grad is not None]
            if self.clip_grad_per_param is not None:
                for p in params:
                    if id(p) in student_ids:
                        norm = p.grad.detach().norm(2)
                        coef = self.clip_grad_per_param / (norm + 1e-6)
                        p.grad.mul_(torch.clamp(coef, max=1.0))
            if self._last_layer_frozen:
                for p in params:
                    if id(p) in last_layer_ids:
                        p.grad = None

        return edit_gradients
