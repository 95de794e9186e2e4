# Copyright (c) cribo-mm contributors. All rights reserved.
"""CrIBo loss: global (CLS), cross-view object and cross-image object terms.

Every term is a cross-entropy ``H(p_t, p_s) = -sum p_t log p_s`` between a
centred, sharpened teacher distribution ``softmax((t - center) / tau_t)`` and
a student distribution ``softmax(s / tau_s)``. The functions below reproduce
the reference implementation number for number (see
``shared/fixtures/cribo_reference/README.md``, section 6: losses to
``rtol=1e-5``, gradients to ``1e-6``; only the summation order differs).
They are computed in one blockwise pass per head
(:mod:`~cribo_mm.models.losses.soft_cross_entropy`) instead of the
reference's full-matrix softmaxes; :class:`CrIBoLoss` adds the centres,
their all-reduced EMA update and the temperatures.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine import dist
from torch import Tensor, nn

from cribo_mm.models.utils.precision import fp32_region
from cribo_mm.registry import MODELS
from .collapse_stats import summarize, teacher_collapse_stats
from .soft_cross_entropy import PairedTerm, paired_soft_cross_entropy

__all__ = [
    'teacher_temperature_table', 'teacher_temperature_schedule', 'global_loss',
    'object_crossview_loss', 'object_crossimage_loss', 'CrIBoLoss'
]

CROSSIMAGE_NORMALIZATIONS = ('reference', 'per_mask')


def teacher_temperature_table(warmup_temp: float, final_temp: float,
                              warmup_epochs: int,
                              max_epochs: int) -> List[float]:
    """Per-epoch teacher temperatures of the reference.

    A linear ramp of ``warmup_epochs`` points from ``warmup_temp`` to
    ``final_temp`` (both ends included, as ``numpy.linspace``), then
    ``final_temp`` until ``max_epochs``. With 0.04 -> 0.07 over 3 epochs:
    0.04, 0.055, 0.07, 0.07, ...

    Args:
        warmup_temp (float): Temperature of epoch 0.
        final_temp (float): Temperature after the warm-up.
        warmup_epochs (int): Number of ramp points.
        max_epochs (int): Length of the table.

    Returns:
        list[float]: ``max(max_epochs, warmup_epochs)`` temperatures.
    """
    warmup_epochs = int(warmup_epochs)
    if warmup_epochs == 1:
        ramp = [float(warmup_temp)]
    elif warmup_epochs > 1:
        step = (final_temp - warmup_temp) / (warmup_epochs - 1)
        ramp = [warmup_temp + i * step for i in range(warmup_epochs)]
        ramp[-1] = float(final_temp)
    else:
        ramp = []
    return ramp + [float(final_temp)] * max(0, max_epochs - warmup_epochs)


def teacher_temperature_schedule(epoch: int, warmup_temp: float,
                                 final_temp: float,
                                 warmup_epochs: int) -> float:
    """Teacher temperature of one epoch (see
    :func:`teacher_temperature_table`).

    Args:
        epoch (int): 0-based epoch.
        warmup_temp (float): Temperature of epoch 0.
        final_temp (float): Temperature after the warm-up.
        warmup_epochs (int): Number of ramp points.

    Returns:
        float: The temperature; ``final_temp`` from ``warmup_epochs`` on.
    """
    table = teacher_temperature_table(warmup_temp, final_temp, warmup_epochs,
                                      0)
    return table[epoch] if epoch < len(table) else float(final_temp)


def _swap_term(rows_per_view: int, device: torch.device) -> PairedTerm:
    """Each view's row k teaches the other view's row k: student row i is
    taught by teacher row ``(i + n) mod 2n`` (view-major rows)."""
    rows = torch.arange(2 * rows_per_view)
    return PairedTerm(0, rows,
                      rows.roll(rows_per_view).to(device))


def _swapped_views_sum(student_views: Tensor, student_temp: float,
                       teacher: Tensor, center: Tensor, teacher_temp: float,
                       extra_teachers: Sequence[Tensor] = (),
                       extra_terms: Sequence[PairedTerm] = (),
                       stats: bool = False):
    """The swapped-views cross-entropy sum (term 0) and any extra terms.

    Args:
        student_views (Tensor): (2n, out) student outputs, view-major.
        student_temp (float): Student temperature.
        teacher (Tensor): (2n, out) teacher outputs (teacher 0).
        center (Tensor): (1, out) teacher centre.
        teacher_temp (float): Teacher temperature.
        extra_teachers (Sequence[Tensor]): Teachers 1, 2, ... of the extra
            terms.
        extra_terms (Sequence[PairedTerm]): Further terms on the same
            student rows.
        stats (bool): Also return the collapse statistics of ``teacher``.

    Returns:
        tuple: ``sums`` (1 + len(extra_terms),) and, with ``stats``, the
        statistics dict of :func:`collapse_stats.summarize`.
    """
    rows_per_view = teacher.shape[0] // 2
    sums, entropy_sum, prob_sum = paired_soft_cross_entropy(
        student_views, student_temp, (teacher, *extra_teachers), center,
        teacher_temp, (_swap_term(rows_per_view, teacher.device),
                       *extra_terms),
        stats_term=0 if stats else -1)
    if not stats:
        return sums, None
    return sums, summarize(entropy_sum, prob_sum, teacher.shape[0])


def global_loss(student_global: Tensor,
                teacher_global: Tensor,
                center: Tensor,
                teacher_temp: float,
                student_temp: float = 0.1) -> Tensor:
    """DINO loss between the CLS projections of the two views: the mean of
    the row-averaged cross-entropies (teacher view 1, student view 2) and
    (teacher view 2, student view 1).

    Args:
        student_global (Tensor): (2B, out_dim) student head outputs,
            view-major.
        teacher_global (Tensor): (2B, out_dim) teacher head outputs.
        center (Tensor): (1, out_dim) centre of the teacher outputs.
        teacher_temp (float): Teacher temperature.
        student_temp (float): Student temperature. Defaults to 0.1.

    Returns:
        Tensor: 0-dim loss.
    """
    sums, _ = _swapped_views_sum(student_global, student_temp,
                                 teacher_global, center, teacher_temp)
    return sums[0] / teacher_global.shape[0]


def object_crossview_loss(student_objects: Tensor,
                          teacher_objects: Tensor,
                          center_c: Tensor,
                          teacher_temp_c: float,
                          student_temp_c: float = 0.1) -> Tensor:
    """Cross-view object loss: object k of one view teaches object k of the
    other view, averaged over objects and both directions.

    Args:
        student_objects (Tensor): (2C, out_dim_c) projected student objects,
            view-1 rows then view-2 rows.
        teacher_objects (Tensor): (2C, out_dim_c) projected teacher objects.
        center_c (Tensor): (1, out_dim_c) centre of the teacher objects.
        teacher_temp_c (float): Teacher temperature.
        student_temp_c (float): Student temperature. Defaults to 0.1.

    Returns:
        Tensor: 0-dim loss; 0 when there is no object (C = 0), where the
        reference would give NaN.
    """
    return _object_losses(student_objects, student_temp_c, teacher_objects,
                          center_c, teacher_temp_c)[0]['crossview']


def object_crossimage_loss(student_objects: Tensor,
                           teacher_nn_v1: Tensor,
                           mask_v1: Tensor,
                           teacher_nn_v2: Tensor,
                           mask_v2: Tensor,
                           center_c: Tensor,
                           teacher_temp_c: float,
                           student_temp_c: float = 0.1,
                           normalization: str = 'reference') -> Tensor:
    """Cross-image object loss with the retrieved neighbours as teachers.

    Term 1: the view-1 entry of the neighbour of view-1 object k teaches the
    student's view-2 object k, for k in M1. Term 2: the view-2 entry of the
    neighbour of view-2 object k teaches the student's view-1 object k, for
    k in M2. The result is the mean of the two normalised sums.

    Args:
        student_objects (Tensor): (2C, out_dim_c) projected student objects,
            view-1 rows then view-2 rows.
        teacher_nn_v1 (Tensor): (C, out_dim_c) teacher projections of the
            view-1 entries of the view-1 neighbours, or (2, C, out_dim_c)
            with both stored views (as the reference), of which ``[0]`` is
            used, or only the rows in M1, (|M1|, out_dim_c).
        mask_v1 (Tensor): (C,) bool cycle-consistency mask M1.
        teacher_nn_v2 (Tensor): (C, out_dim_c) projections of the view-2
            entries of the view-2 neighbours, or (2, C, out_dim_c) of which
            ``[1]`` is used, or only the rows in M2, (|M2|, out_dim_c).
        mask_v2 (Tensor): (C,) bool mask M2.
        center_c (Tensor): (1, out_dim_c) object centre.
        teacher_temp_c (float): Teacher temperature.
        student_temp_c (float): Student temperature. Defaults to 0.1.
        normalization (str): ``'reference'`` divides BOTH sums by |M1| and
            gives 0 when |M1| = 0 even if M2 is not empty (the reference's
            behaviour); ``'per_mask'`` divides term 2 by |M2| instead (an
            empty mask contributes 0).

    Returns:
        Tensor: 0-dim loss.
    """
    _check_normalization(normalization)
    teachers, terms = _neighbour_terms(
        student_objects.shape[0] // 2,
        (teacher_nn_v1, mask_v1, teacher_nn_v2, mask_v2))
    # teacher 0 of the pass is unused here: the terms name teachers 1, 2
    sums, _, _ = paired_soft_cross_entropy(
        student_objects, student_temp_c, (teachers[1][:0], *teachers[1:]),
        center_c, teacher_temp_c, terms)
    return _crossimage_value(sums, terms, normalization,
                             student_objects[:0].sum())


def _check_normalization(normalization: str) -> None:
    if normalization not in CROSSIMAGE_NORMALIZATIONS:
        raise ValueError(f'normalization must be one of '
                         f'{CROSSIMAGE_NORMALIZATIONS}, got {normalization!r}')


def _neighbour_terms(rows_per_view: int, neighbours: tuple) -> tuple:
    """Teachers and pairs of the two cross-image terms.

    Args:
        rows_per_view (int): C, the objects per view.
        neighbours (tuple): ``(teacher_nn_v1, mask_v1, teacher_nn_v2,
            mask_v2)`` as :func:`object_crossimage_loss` takes them.

    Returns:
        tuple[list, list]: ``[None, nn_v1, nn_v2]`` (teacher ids 1 and 2)
        and the two :class:`PairedTerm`: neighbours of view-1 objects in M1
        teach view-2 student rows, those of view-2 objects in M2 view-1
        rows.
    """
    nn_v1, mask_v1, nn_v2, mask_v2 = neighbours
    if nn_v1.dim() == 3:
        nn_v1 = nn_v1[0]
    if nn_v2.dim() == 3:
        nn_v2 = nn_v2[1]
    terms = [
        _neighbour_term(1, nn_v1, mask_v1.bool(), rows_per_view,
                        'teacher_nn_v1'),
        _neighbour_term(2, nn_v2, mask_v2.bool(), 0, 'teacher_nn_v2')
    ]
    return [None, nn_v1, nn_v2], terms


def _crossimage_value(sums: Tensor, terms: Sequence[PairedTerm],
                      normalization: str, zero: Tensor) -> Tensor:
    """The cross-image loss from the sums of its two terms (the last two
    entries of ``sums``)."""
    count1, count2 = (term.student_rows.numel() for term in terms)
    sum1, sum2 = sums[-2], sums[-1]
    if normalization == 'reference':
        # Reference quirk, kept on purpose: |M1| normalises the M2 sum too,
        # and an empty M1 switches the whole term off.
        return (sum1 / count1 + sum2 / count1) / 2 if count1 else zero
    loss1 = sum1 / count1 if count1 else zero
    loss2 = sum2 / count2 if count2 else zero
    return (loss1 + loss2) / 2


def _neighbour_term(teacher_id: int, rows: Tensor, mask: Tensor,
                    student_offset: int, name: str) -> PairedTerm:
    """Pairs of a cross-image term: neighbour rows of the objects in
    ``mask`` teach the student rows ``student_offset + k``.

    ``rows`` holds one row per object (C, out) or only the |M| masked rows.
    """
    objects = torch.nonzero(mask.cpu(), as_tuple=True)[0]
    if rows.shape[0] == mask.shape[0]:
        teacher_rows = objects
    elif rows.shape[0] == objects.numel():
        teacher_rows = torch.arange(objects.numel())
    else:
        raise ValueError(
            f'{name} has {rows.shape[0]} rows; expected one per object '
            f'({mask.shape[0]}) or one per object in the mask '
            f'({objects.numel()})')
    return PairedTerm(teacher_id, objects + student_offset,
                      teacher_rows.to(rows.device))


def _object_losses(student_objects: Tensor, student_temp: float,
                   teacher_objects: Tensor, center_c: Tensor,
                   teacher_temp: float, neighbours: Optional[tuple] = None,
                   normalization: str = 'reference', stats: bool = False):
    """Cross-view and cross-image object losses from one blockwise pass.

    Args:
        student_objects (Tensor): (2C, out) student objects, view-major.
        student_temp (float): Student temperature.
        teacher_objects (Tensor): (2C, out) teacher objects.
        center_c (Tensor): (1, out) object centre.
        teacher_temp (float): Teacher temperature.
        neighbours (tuple, optional): ``(teacher_nn_v1, mask_v1,
            teacher_nn_v2, mask_v2)`` as :func:`object_crossimage_loss`;
            None leaves the cross-image loss at 0.
        normalization (str): See :func:`object_crossimage_loss`.
        stats (bool): Also return the teacher objects' collapse statistics.

    Returns:
        tuple[dict, dict | None]: ``{'crossview', 'crossimage'}`` 0-dim
        losses, and the statistics (None without ``stats`` or objects).
    """
    _check_normalization(normalization)
    zero = student_objects[:0].sum()
    if teacher_objects.shape[0] == 0:
        return dict(crossview=zero, crossimage=zero), None
    extra_teachers, extra_terms = [], []
    if neighbours is not None:
        teachers, extra_terms = _neighbour_terms(
            teacher_objects.shape[0] // 2, neighbours)
        extra_teachers = teachers[1:]
    sums, statistics = _swapped_views_sum(
        student_objects, student_temp, teacher_objects, center_c,
        teacher_temp, extra_teachers, extra_terms, stats)
    losses = dict(crossview=sums[0] / teacher_objects.shape[0],
                  crossimage=zero)
    if extra_terms:
        losses['crossimage'] = _crossimage_value(sums, extra_terms,
                                                 normalization, zero)
    return losses, statistics


def _named_stats(head: str, stats: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The logged names of one head's collapse statistics."""
    return {
        f'teacher_entropy_{head}': stats['entropy'],
        f'teacher_batch_entropy_{head}': stats['batch_entropy'],
        f'log_out_dim_{head}': stats['max_entropy'],
    }


@MODELS.register_module()
class CrIBoLoss(nn.Module):
    """The three CrIBo loss terms with centring of the teacher outputs.

    Centres are buffers (``center (1, out_dim)``, ``center_c
    (1, out_dim_c)``), updated after the loss by an EMA toward the batch mean
    of the teacher CLS outputs and of all projected teacher objects (not the
    neighbours). Sums and counts are all-reduced, so ranks with different
    object counts are weighted by their counts and every rank holds the same
    centres.

    ``teacher_temp``, ``teacher_temp_c`` and ``crossimage_enabled`` are plain
    attributes meant to be driven per epoch by a hook (``CrIBoHook``, with
    :func:`teacher_temperature_schedule`; the reference starts the
    cross-image term at epoch 1).

    Args:
        out_dim (int): Dimension of the CLS head output.
        out_dim_c (int): Dimension of the object head output.
        teacher_temp (float): Initial teacher temperature of the CLS term.
            Defaults to 0.04.
        teacher_temp_c (float, optional): Initial teacher temperature of the
            object terms; None uses ``teacher_temp``.
        student_temp (float): Student temperature of the CLS term. Defaults
            to 0.1. The reference's ``--student_temp`` argument never reaches
            its loss (it goes to the clustering, which ignores it), so the
            reference always trains with 0.1.
        student_temp_c (float): Student temperature of the object terms.
            Defaults to 0.1.
        center_momentum (float): EMA momentum of ``center``. Defaults to 0.9.
        center_momentum_c (float): EMA momentum of ``center_c``. Defaults to
            0.9.
        crossimage_enabled (bool): Compute the cross-image term; when False
            ``loss_object_crossimage`` is 0. Defaults to True (the hook
            turns it off for epoch 0).
        crossimage_normalization (str): ``'reference'`` (default, divides
            both cross-image sums by |M1|) or ``'per_mask'`` (second sum by
            |M2|). See :func:`object_crossimage_loss`.
    """

    def __init__(self,
                 out_dim: int,
                 out_dim_c: int,
                 teacher_temp: float = 0.04,
                 teacher_temp_c: Optional[float] = None,
                 student_temp: float = 0.1,
                 student_temp_c: float = 0.1,
                 center_momentum: float = 0.9,
                 center_momentum_c: float = 0.9,
                 crossimage_enabled: bool = True,
                 crossimage_normalization: str = 'reference') -> None:
        super().__init__()
        if crossimage_normalization not in CROSSIMAGE_NORMALIZATIONS:
            raise ValueError(
                f'crossimage_normalization must be one of '
                f'{CROSSIMAGE_NORMALIZATIONS}, got '
                f'{crossimage_normalization!r}')
        self.out_dim = out_dim
        self.out_dim_c = out_dim_c
        self.teacher_temp = float(teacher_temp)
        self.teacher_temp_c = float(
            teacher_temp if teacher_temp_c is None else teacher_temp_c)
        self.student_temp = student_temp
        self.student_temp_c = student_temp_c
        self.center_momentum = center_momentum
        self.center_momentum_c = center_momentum_c
        self.crossimage_enabled = crossimage_enabled
        self.crossimage_normalization = crossimage_normalization
        self.register_buffer('center', torch.zeros(1, out_dim))
        self.register_buffer('center_c', torch.zeros(1, out_dim_c))

    def forward(self,
                student_global: Tensor,
                teacher_global: Tensor,
                student_objects: Tensor,
                teacher_objects: Tensor,
                teacher_nn_v1: Optional[Tensor] = None,
                teacher_nn_v2: Optional[Tensor] = None,
                mask_v1: Optional[Tensor] = None,
                mask_v2: Optional[Tensor] = None,
                update_center: bool = True,
                collapse_stats: bool = False) -> Dict[str, Tensor]:
        """Compute the losses (with the current centres), then update the
        centres.

        Arithmetic is float32 whatever the input dtype, with autocast
        disabled; gradients reach the student inputs in their own dtype.
        Teacher inputs are detached. The object terms share one blockwise
        pass (:mod:`~cribo_mm.models.losses.soft_cross_entropy`), so the
        gradients of the cross-view and cross-image terms reach each student
        object together, as in the reference.

        Args:
            student_global (Tensor): (2B, out_dim) student CLS head outputs,
                view-major.
            teacher_global (Tensor): (2B, out_dim) teacher CLS head outputs.
            student_objects (Tensor): (2C, out_dim_c) projected student
                objects, view-1 rows then view-2 rows.
            teacher_objects (Tensor): (2C, out_dim_c) projected teacher
                objects.
            teacher_nn_v1 (Tensor, optional): (C, out_dim_c) teacher
                projections of the view-1 entries of the view-1 neighbours
                (or (2, C, out_dim_c), or the (|M1|, out_dim_c) rows in M1
                only, see :func:`object_crossimage_loss`).
            teacher_nn_v2 (Tensor, optional): (C, out_dim_c) projections of
                the view-2 entries of the view-2 neighbours (or the rows in
                M2 only).
            mask_v1 (Tensor, optional): (C,) bool mask M1.
            mask_v2 (Tensor, optional): (C,) bool mask M2.
            update_center (bool): Update the centres. Defaults to True.
            collapse_stats (bool): Also return the statistics of
                :meth:`collapse_stats`, taken in the same pass. Defaults to
                False.

        Returns:
            dict[str, Tensor]: 0-dim float32 ``loss_global``,
            ``loss_object_crossview`` and ``loss_object_crossimage`` (0 when
            ``crossimage_enabled`` is False or no neighbours are given);
            with ``collapse_stats`` also the keys of :meth:`collapse_stats`.
        """
        with fp32_region(student_global.device):
            sums, global_stats = _swapped_views_sum(
                student_global, self.student_temp, teacher_global,
                self.center, self.teacher_temp, stats=collapse_stats)
            neighbours = (teacher_nn_v1, mask_v1, teacher_nn_v2, mask_v2)
            if not (self.crossimage_enabled
                    and all(t is not None for t in neighbours)):
                neighbours = None
            objects, object_stats = _object_losses(
                student_objects, self.student_temp_c, teacher_objects,
                self.center_c, self.teacher_temp_c, neighbours,
                self.crossimage_normalization, stats=collapse_stats)
            losses = dict(
                loss_global=sums[0] / teacher_global.shape[0],
                loss_object_crossview=objects['crossview'].float(),
                loss_object_crossimage=objects['crossimage'].float())
            if collapse_stats:
                losses.update(_named_stats('global', global_stats))
                if object_stats is not None:
                    losses.update(_named_stats('object', object_stats))
            if update_center:
                self.update_center(teacher_global, teacher_objects)
        return losses

    @torch.no_grad()
    def collapse_stats(self, teacher_global: Tensor,
                       teacher_objects: Tensor) -> Dict[str, Tensor]:
        """Collapse diagnostics of the teacher distributions of the loss.

        Call before :meth:`forward` (which moves the centres) to describe
        the distributions that this step's loss uses: ``softmax((t - c) /
        tau)`` with the current centres and teacher temperatures. See
        :mod:`cribo_mm.models.losses.collapse_stats` for the quantities.

        Args:
            teacher_global (Tensor): (2B, out_dim) teacher CLS outputs.
            teacher_objects (Tensor): (2C, out_dim_c) projected teacher
                objects; with C = 0 the object statistics are left out.

        Returns:
            dict[str, Tensor]: 0-dim float32 ``teacher_entropy_global``,
            ``teacher_batch_entropy_global``, ``log_out_dim_global`` and,
            with objects, the same three with the ``_object`` suffix.
        """
        out = {}
        heads = [('global', teacher_global, self.center, self.teacher_temp)]
        if teacher_objects.shape[0] > 0:
            heads.append(('object', teacher_objects, self.center_c,
                          self.teacher_temp_c))
        for name, teacher, center, temp in heads:
            out.update(
                _named_stats(name,
                             teacher_collapse_stats(teacher, center, temp)))
        return out

    @torch.no_grad()
    def update_center(self, teacher_global: Tensor,
                      teacher_objects: Tensor) -> None:
        """EMA update of both centres from the all-reduced batch means.

        One all-reduce carries the sums of the CLS outputs and of the object
        outputs and both counts.

        Args:
            teacher_global (Tensor): (2B, out_dim) teacher CLS outputs.
            teacher_objects (Tensor): (2C, out_dim_c) projected teacher
                objects (C may differ across ranks).
        """
        # float32 sums without a float32 copy of low-precision outputs
        stats = torch.cat([
            teacher_global.sum(dim=0, dtype=torch.float32),
            teacher_objects.sum(dim=0, dtype=torch.float32),
            torch.tensor([teacher_global.shape[0], teacher_objects.shape[0]],
                         dtype=torch.float32, device=teacher_global.device)
        ])
        if dist.get_world_size() > 1:
            dist.all_reduce(stats, op='sum')
        sums_cls, sums_obj = stats[:-2].unsqueeze(0).split(
            [self.out_dim, self.out_dim_c], dim=1)
        self.center.copy_(
            self._ema(self.center, sums_cls, stats[-2], self.center_momentum))
        # The reference divides by zero (NaN centre) when no rank has an
        # object; the centre is kept unchanged instead.
        self.center_c.copy_(
            self._ema(self.center_c, sums_obj, stats[-1],
                      self.center_momentum_c))

    @staticmethod
    def _ema(center: Tensor, total: Tensor, count: Tensor,
             momentum: float) -> Tensor:
        """``center * m + (total / count) * (1 - m)``, or ``center`` when
        ``count`` is 0 (no host sync)."""
        new = center * momentum + (total / count.clamp(min=1)) * (1 - momentum)
        return torch.where(count > 0, new, center)

    def extra_repr(self) -> str:
        return (f'out_dim={self.out_dim}, out_dim_c={self.out_dim_c}, '
                f'teacher_temp={self.teacher_temp}, '
                f'teacher_temp_c={self.teacher_temp_c}, '
                f'student_temp={self.student_temp}, '
                f'student_temp_c={self.student_temp_c}, '
                f'crossimage_enabled={self.crossimage_enabled}, '
                f'crossimage_normalization={self.crossimage_normalization!r}')
