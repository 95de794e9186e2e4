# Copyright (c) cribo-mm contributors. All rights reserved.
"""Joint two-view object clustering of CrIBo (teacher side).

Pure tensor functions, no OpenMMLab dependency. They reproduce the behaviour
of the reference implementation number for number (see
``docs/cribo_method.md`` section 3 and the fixture README), including its
quirks, with one deliberate difference: the positional cost is computed from
the ``(B, T, T)`` distance matrix with a scatter minimum instead of building a
``(B, T, T, K)`` tensor (``T = 2N`` tokens of the two views, ``K`` clusters),
which is ``K`` times less memory and gives bit-identical values.

All computations run in float32 with autocast disabled; inputs of another
floating dtype are cast to float32. Gradients are not needed by anything in
the clustering itself: wrapping the teacher side in ``torch.no_grad()`` is the
caller's concern. :func:`pool_objects` is differentiable w.r.t. the pooled
tokens (the student's object representations carry gradients).

Layout conventions:

* ``B`` images, two global views each, ``N`` patches per view, ``T = 2N``.
* Joint per-image token order: the ``N`` view-1 patches, then the ``N``
  view-2 patches.
* Batched backbone outputs are view-major: ``(2B, ...)`` holds every image's
  view 1 first, then every image's view 2.
* Positions are original-image pixel coordinates, channel 0 = x (column),
  channel 1 = y (row).
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import fp32_region

__all__ = [
    'pos_alpha_schedule', 'sinkhorn_knopp', 'pairwise_distances',
    'nearest_member_distance', 'positional_cost', 'draw_init_index',
    'cluster_two_views', 'TeacherObjects', 'teacher_objects', 'pool_objects',
    'views_to_joint', 'positions_to_joint'
]

# Value that the reference substitutes for ignored (zero) products; the
# nearest-member distance can therefore never exceed it.
_ZERO_PRODUCT_FILL = 1e5


def pos_alpha_schedule(pos_alpha: Sequence[float], epoch: int,
                       max_epochs: int) -> float:
    """Weight of the positional cost at a given epoch.

    Reproduces ``np.linspace(pos_alpha[1], pos_alpha[0], max_epochs)[epoch]``
    in float64 without numpy.

    Args:
        pos_alpha (Sequence[float]): The ``(a0, a1)`` pair of the reference
            configuration. Reference quirk: the schedule runs from ``a1`` at
            epoch 0 to ``a0`` at the last epoch, i.e. the FIRST element is the
            FINAL value.
        epoch (int): Current epoch, ``0 <= epoch < max_epochs``.
        max_epochs (int): Total number of training epochs (``>= 1``).

    Returns:
        float: The positional weight ``lambda_pos`` for ``epoch``.
    """
    if max_epochs < 1:
        raise ValueError(f'max_epochs must be >= 1, got {max_epochs}')
    if not 0 <= epoch < max_epochs:
        raise ValueError(f'epoch must be in [0, {max_epochs}), got {epoch} '
                         '(the reference schedule has no value there)')
    # Reference quirk: linspace from the SECOND element (start of training)
    # to the FIRST element (end of training).
    start, stop = float(pos_alpha[1]), float(pos_alpha[0])
    if max_epochs == 1:
        return start
    if epoch == max_epochs - 1:
        return stop  # numpy sets the endpoint exactly
    step = (stop - start) / (max_epochs - 1)
    if step == 0:
        return start
    return float(epoch) * step + start


def sinkhorn_knopp(cost: Tensor,
                   row_marginals: Tensor,
                   col_marginals: Tensor,
                   reg: float = 20.0,
                   num_iters: int = 5) -> Tuple[Tensor, Tensor]:
    """Entropy-regularised optimal transport (Sinkhorn-Knopp), batched.

    ``P = exp(-reg * M)`` is normalised to sum 1 per batch element, then each
    iteration rescales the rows to ``row_marginals`` and then the columns to
    ``col_marginals``. NaNs (e.g. from an underflowed row, ``0 * inf``) are
    replaced by ``1e-8`` at the end, as in the reference. With
    ``num_iters=0`` only the global normalisation happens.

    Args:
        cost (Tensor): Cost matrix ``M`` of shape (B, T, K).
        row_marginals (Tensor): Row marginals ``r``, shape (B, T, 1) or
            broadcastable to it.
        col_marginals (Tensor): Column marginals ``c``, shape (B, 1, K) or
            broadcastable to it.
        reg (float): Inverse regularisation strength ``lambda``.
            Defaults to 20.0.
        num_iters (int): Number of row/column scaling rounds. Defaults to 5.

    Returns:
        tuple[Tensor, Tensor]:

        - plan (Tensor): Transport plan ``P`` of shape (B, T, K), float32.
        - transport_cost (Tensor): ``sum(P * M)`` per batch element, (B,).
    """
    with fp32_region(cost.device):
        cost = cost.float()
        row_marginals = row_marginals.float()
        col_marginals = col_marginals.float()
        plan = torch.exp(-reg * cost).float()
        plan = plan / plan.sum(dim=(1, 2), keepdim=True)
        for _ in range(num_iters):
            plan = plan * (row_marginals / plan.sum(dim=2, keepdim=True))
            plan = plan * (col_marginals / plan.sum(dim=1, keepdim=True))
        plan = torch.nan_to_num(plan, nan=1e-8)
        return plan, torch.sum(plan * cost, dim=(1, 2))


def pairwise_distances(positions: Tensor) -> Tensor:
    """Euclidean distances between all token positions of each image.

    Args:
        positions (Tensor): Token positions of shape (B, T, 2).

    Returns:
        Tensor: Distances of shape (B, T, T), float32, ``out[b, i, j] =
        ||p[b, j] - p[b, i]||``. Computed as ``sqrt(dx^2 + dy^2)`` without a
        (B, T, T, 2) intermediate; bit-identical to the reference.
    """
    positions = positions.float()
    if positions.dim() != 3 or positions.shape[-1] != 2:
        raise ValueError('positions must have shape (B, T, 2), got '
                         f'{tuple(positions.shape)}')
    x, y = positions.unbind(-1)  # (B, T) each
    dist = (x[:, None, :] - x[:, :, None])**2
    dist += (y[:, None, :] - y[:, :, None])**2
    return dist.sqrt_()


def nearest_member_distance(distances: Tensor, assignment: Tensor) -> Tensor:
    """Distance from every token to the nearest OTHER member of each cluster.

    Memory-efficient equivalent of the reference's dense computation over a
    (B, T, T, K) tensor ``D[b, i, j] * A[b, j, k]`` (zero products ignored
    while the (i, k) column has a non-zero product, then the minimum over
    ``j``). Because membership is binary, the minimum is a segment minimum of
    the distance row ``D[b, i, :]`` over the members of cluster ``k``; it is
    computed with ``scatter_reduce_(reduce='amin')`` into a (B, T, K + 1)
    buffer, i.e. with (B, T, T) temporaries only.

    Tokens may belong to several clusters (ties in the hard assignment keep
    every maximum, and duplicate initial indices make a token a member of
    several clusters): the ``j``-th membership of every token is scattered in
    pass ``j``, so the result stays exact; the number of passes is the
    largest number of memberships of a token (1 without ties).

    Args:
        distances (Tensor): Pairwise distances of shape (B, T, T), e.g. from
            :func:`pairwise_distances`.
        assignment (Tensor): Binary membership of shape (B, T, K); an entry
            is a member when it is 1 (values other than 0 and 1 raise).

    Returns:
        Tensor: Shape (B, T, K), float32. ``out[b, i, k]`` is the smallest
        non-zero distance from token ``i`` to a member of cluster ``k``
        (capped at ``1e5`` like the reference), or 0 when there is none
        (empty cluster, or ``i`` is the only member / only zero-distance
        members).
    """
    distances = distances.float()
    return _nearest_member(
        distances.masked_fill(distances == 0, float('inf')), assignment)


def _nearest_member(src: Tensor, assignment: Tensor) -> Tensor:
    """:func:`nearest_member_distance` from distances whose zeros are +inf.

    Args:
        src (Tensor): (B, T, T) distances with zero entries set to ``inf``
            (zero distances -- the token itself, duplicate positions --
            never count).
        assignment (Tensor): Binary membership (B, T, K).

    Returns:
        Tensor: (B, T, K) nearest-member distances, see
        :func:`nearest_member_distance`.
    """
    b, t, t2 = src.shape
    if t != t2 or assignment.shape[:2] != (b, t):
        raise ValueError('expected distances (B, T, T) and assignment '
                         f'(B, T, K), got {tuple(src.shape)} and '
                         f'{tuple(assignment.shape)}')
    k = assignment.shape[-1]
    member = assignment != 0
    num_member = member.sum(dim=-1)  # (B, T)
    # One host sync for both checks.
    stats = torch.stack([
        num_member.max() if num_member.numel() else num_member.new_zeros(()),
        (member & (assignment != 1)).any().long()
    ]).tolist()
    num_passes, non_binary = int(stats[0]), bool(stats[1])
    if non_binary:
        raise ValueError('nearest_member_distance needs a binary (0/1) '
                         'assignment; soft assignments are not supported')

    # Column k (one past the last cluster) collects tokens that have no
    # membership left in a pass; it is dropped at the end.
    out = src.new_full((b, t, k + 1), float('inf'))
    no_cluster = torch.full_like(num_member, k)
    rank = member.cumsum(dim=-1) if num_passes > 1 else None
    for j in range(num_passes):
        # The j-th membership of every token (the only one without ties).
        nth = member if rank is None else member & (rank == j + 1)
        label = torch.where(num_member > j,
                            nth.to(torch.uint8).argmax(dim=-1),
                            no_cluster)  # (B, T)
        # index[b, i, j] = label[b, j]: reduce row i of distances by cluster.
        out.scatter_reduce_(
            2, label[:, None, :].expand(b, t, t), src, reduce='amin')
    out = out[..., :k]
    # No non-zero product -> 0; otherwise the reference's min also sees the
    # 1e5 fill values of the ignored products.
    return torch.where(out == float('inf'), torch.zeros_like(out),
                       out.clamp_max(_ZERO_PRODUCT_FILL)).contiguous()


def positional_cost(distances: Tensor, assignment: Tensor) -> Tensor:
    """Normalised positional cost ``D[n, k]`` of the reference clustering.

    :func:`nearest_member_distance`, then every entry that is exactly 0 is
    replaced by the per-image mean of the matrix computed BEFORE the
    replacement (so including the zeros), and the result is divided by its
    per-image maximum.

    Args:
        distances (Tensor): Pairwise distances of shape (B, T, T).
        assignment (Tensor): Binary membership of shape (B, T, K).

    Returns:
        Tensor: Positional cost of shape (B, T, K), float32, in [0, 1].
    """
    return _normalise_positional(
        nearest_member_distance(distances, assignment))


def _normalise_positional(cost: Tensor) -> Tensor:
    """Zero entries -> per-image mean (zeros included), then / max."""
    mean = cost.mean(dim=(1, 2), keepdim=True)  # includes the zeros (quirk)
    cost = torch.where(cost == 0, mean.expand_as(cost), cost)
    return cost / cost.amax(dim=(1, 2), keepdim=True)


def draw_init_index(batch_size: int,
                    num_tokens: int,
                    num_clusters: int,
                    generator: Optional[torch.Generator] = None,
                    device=None) -> Tensor:
    """Draw ``num_clusters`` distinct token indices per image, uniformly.

    Same draw as the reference (``multinomial`` without replacement over
    uniform probabilities ``1 / num_tokens``), so with the same global seed
    and device it returns the same indices.

    Args:
        batch_size (int): Number of images ``B``.
        num_tokens (int): Number of tokens per image ``T``.
        num_clusters (int): Number of clusters ``K`` (``<= T``).
        generator (torch.Generator, optional): Random generator; its device
            is used for the draw. Defaults to None (global RNG).
        device (torch.device | str, optional): Device of the returned
            indices (and of the draw when no generator is given).

    Returns:
        Tensor: Indices of shape (B, K), int64.
    """
    if num_clusters > num_tokens:
        raise ValueError(f'cannot pick {num_clusters} distinct tokens out '
                         f'of {num_tokens}')
    draw_device = generator.device if generator is not None else device
    probs = torch.ones(batch_size, num_tokens, device=draw_device) / num_tokens
    index = probs.multinomial(
        num_samples=num_clusters, replacement=False, generator=generator)
    return index if device is None else index.to(device)


def cluster_two_views(tokens: Tensor,
                      positions: Tensor,
                      num_clusters: int,
                      pos_alpha: float,
                      sinkhorn_reg: float = 20.0,
                      sinkhorn_iters: int = 5,
                      num_iters: int = 5,
                      update_marginals: bool = True,
                      init_index: Optional[Tensor] = None,
                      generator: Optional[torch.Generator] = None
                      ) -> Tuple[Tensor, Tensor]:
    """Jointly cluster the tokens of the two views of every image.

    Reference ``Clustering.compute_assignments`` with hard assignments:
    tokens are L2-normalised; centroids start at the tokens ``init_index``
    (initial assignment one-hot on them); each iteration builds the cost
    ``M = -cos(tokens, centroids) + pos_alpha * positional_cost``, min-max
    normalises it over the WHOLE batch (one min and max for all images,
    reference quirk), runs Sinkhorn-Knopp with uniform rows, takes the hard
    assignment (every entry equal to its row maximum, so ties keep all
    maxima), optionally updates the column marginals to
    ``(cluster sizes + 0.01)`` normalised, and recomputes the centroids as the
    L2-normalised sums of the members. The final hard assignment is
    normalised per view: each cluster column is divided by its member count
    in that view (empty columns stay 0).

    Works for any batch size, including 1 (the reference crashes there).

    Args:
        tokens (Tensor): Tokens of shape (B, T, d), ``T = 2N``: view-1
            patches then view-2 patches of each image. Not normalised.
        positions (Tensor): Token positions of shape (B, T, 2) in
            original-image pixels (x, y).
        num_clusters (int): Number of clusters ``K`` per image.
        pos_alpha (float): Weight ``lambda_pos`` of the positional cost.
        sinkhorn_reg (float): Sinkhorn ``lambda``. Defaults to 20.0.
        sinkhorn_iters (int): Sinkhorn iterations. Defaults to 5.
        num_iters (int): Clustering iterations (``>= 1``). Defaults to 5.
        update_marginals (bool): Update the column marginals from the hard
            assignment (reference ``update_c``). Defaults to True.
        init_index (Tensor, optional): Initial centroid token indices of
            shape (B, K), int64. Drawn with :func:`draw_init_index` if None.
        generator (torch.Generator, optional): Generator for the draw.

    Returns:
        tuple[Tensor, Tensor]:

        - assignment (Tensor): Per-view normalised hard assignment of shape
          (B, T, K), float32.
        - cost (Tensor): Sinkhorn transport cost of the last iteration, (B,).
    """
    if num_iters < 1:
        raise ValueError(f'num_iters must be >= 1, got {num_iters}')
    if tokens.dim() != 3 or tokens.shape[1] % 2:
        raise ValueError('tokens must have shape (B, 2N, d), got '
                         f'{tuple(tokens.shape)}')
    b, t, _ = tokens.shape
    k = int(num_clusters)
    if positions.shape != (b, t, 2):
        raise ValueError(f'positions must have shape ({b}, {t}, 2), got '
                         f'{tuple(positions.shape)}')
    device = tokens.device
    with fp32_region(device):
        tokens = F.normalize(tokens.float(), dim=-1)
        if init_index is None:
            init_index = draw_init_index(b, t, k, generator, device=device)
        elif init_index.shape != (b, k):
            raise ValueError(f'init_index must have shape ({b}, {k}), got '
                             f'{tuple(init_index.shape)}')
        init_index = init_index.to(device=device, dtype=torch.long)

        rows = torch.ones(b, t, 1, device=device) / t
        cols = torch.ones(b, 1, k, device=device) / k
        one_hot = F.one_hot(init_index, t).float()  # (B, K, T)
        centroids = torch.einsum('bnd,bkn->bkd', tokens, one_hot)
        assignment = one_hot.transpose(1, 2)  # (B, T, K)
        distances = pairwise_distances(positions.to(device))
        # Zero distances never count; mask them once for all iterations.
        src = distances.masked_fill_(distances == 0, float('inf'))

        cost = None
        for _ in range(num_iters):
            similarity = torch.einsum('bnd,bkd->bnk', tokens, centroids)
            pos = _normalise_positional(_nearest_member(src, assignment))
            m = -similarity + pos_alpha * pos
            m = (m - m.min()) / (m.max() - m.min())  # whole batch (quirk)
            plan, cost = sinkhorn_knopp(m, rows, cols, sinkhorn_reg,
                                        sinkhorn_iters)
            assignment = (plan == plan.amax(dim=-1, keepdim=True)).float()
            if update_marginals:
                cols = assignment.sum(dim=1, keepdim=True) + 1e-2
                cols = cols / cols.sum(dim=-1, keepdim=True)
            centroids = F.normalize(
                torch.einsum('bnd,bnk->bkd', tokens, assignment), dim=-1)

        per_view = assignment.view(b, 2, t // 2, k)
        counts = per_view.sum(dim=2, keepdim=True)
        counts = counts.masked_fill(counts == 0, 1.0)
        return (per_view / counts).view(b, t, k), cost


def views_to_joint(tokens: Tensor, has_cls: bool = True) -> Tensor:
    """Rearrange view-major backbone tokens into per-image joint tokens.

    Args:
        tokens (Tensor): Tokens of shape (2B, 1 + N, d) (or (2B, N, d) when
            ``has_cls`` is False), all view-1 images first.
        has_cls (bool): Drop the CLS token at index 0. Defaults to True.

    Returns:
        Tensor: Shape (B, 2N, d): view-1 then view-2 patches of each image.
    """
    patches = tokens[:, 1:] if has_cls else tokens
    two_b, n, d = patches.shape
    if two_b % 2:
        raise ValueError(f'expected 2B view-major tokens, got {two_b}')
    return patches.reshape(2, two_b // 2, n, d).transpose(0, 1).reshape(
        two_b // 2, 2 * n, d)


def positions_to_joint(positions: Tensor) -> Tensor:
    """Rearrange per-view patch positions into per-image joint positions.

    Args:
        positions (Tensor): Shape (2, B, 2, N) = [view, image, (x, y), patch].

    Returns:
        Tensor: Shape (B, 2N, 2), view-1 then view-2 patches of each image.
    """
    m, b, c, n = positions.shape
    if m != 2 or c != 2:
        raise ValueError('positions must have shape (2, B, 2, N), got '
                         f'{tuple(positions.shape)}')
    return positions.permute(1, 0, 3, 2).reshape(b, 2 * n, 2)


class TeacherObjects(NamedTuple):
    """Output of :func:`teacher_objects` (``C`` = number of valid objects).

    Attributes:
        centroids_v1 (Tensor): View-1 object representations, (C, d).
        centroids_v2 (Tensor): View-2 object representations, (C, d).
        valid (Tensor): Bool mask of shape (B * K,) in (image, cluster)
            order: True when the cluster is non-empty in both views.
        assignments (Tensor): Per-view normalised assignment of shape
            (2, B, N, K) = [view, image, patch, cluster]; pooling with it is
            a mean over the cluster's patches in that view.
        objects_per_image (Tensor): Valid clusters per image, (B,) int64.
        region_count (Tensor): Mean of ``objects_per_image``, 0-dim float32
            (the reference logs it as ``r_cnt``).
    """
    centroids_v1: Tensor
    centroids_v2: Tensor
    valid: Tensor
    assignments: Tensor
    objects_per_image: Tensor
    region_count: Tensor


def pool_objects(tokens: Tensor,
                 assignments: Tensor,
                 valid: Tensor,
                 has_cls: bool = True) -> Tuple[Tensor, Tensor]:
    """Pool per-view object representations with a given assignment.

    Used for the student: the teacher's assignment and validity mask are
    applied to the student's patch tokens. Differentiable w.r.t. ``tokens``;
    runs in the caller's dtype / autocast context (like the reference).

    Args:
        tokens (Tensor): View-major tokens of shape (2B, 1 + N, d) (or
            (2B, N, d) when ``has_cls`` is False).
        assignments (Tensor): Per-view normalised assignment (2, B, N, K).
        valid (Tensor): Bool mask of shape (B * K,).
        has_cls (bool): Drop the CLS token at index 0. Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: ``centroids_v1``, ``centroids_v2`` of shape
        (C, d) with ``C = valid.sum()``, in (image, cluster) order.
    """
    patches = tokens[:, 1:] if has_cls else tokens
    two_b, n, d = patches.shape
    m, b, n2, k = assignments.shape
    if m != 2 or two_b != 2 * b or n2 != n:
        raise ValueError(f'tokens {tuple(tokens.shape)} do not match '
                         f'assignments {tuple(assignments.shape)}')
    patches = patches.reshape(2, b, n, d)
    centroids = torch.einsum('mbnd,mbnk->mbkd', patches,
                             assignments.to(patches.dtype))
    centroids = centroids.reshape(2, b * k, d)
    return centroids[0][valid], centroids[1][valid]


def teacher_objects(tokens: Tensor,
                    positions: Tensor,
                    num_clusters: int,
                    pos_alpha: float,
                    sinkhorn_reg: float = 20.0,
                    sinkhorn_iters: int = 5,
                    num_iters: int = 5,
                    update_marginals: bool = True,
                    init_index: Optional[Tensor] = None,
                    generator: Optional[torch.Generator] = None,
                    pool_tokens: Optional[Tensor] = None,
                    has_cls: bool = True) -> TeacherObjects:
    """Teacher objects: cluster both views jointly and pool per view.

    Reference ``Clustering.compute_teacher_centroids`` (one head, hard
    assignment): the CLS token is dropped, each image's two views are
    clustered jointly with :func:`cluster_two_views`, a cluster is valid only
    if its hard assignment is non-empty in BOTH views, and an object
    representation is the mean (not normalised) of its member tokens in a
    view. Runs in float32 with autocast disabled.

    Args:
        tokens (Tensor): View-major teacher tokens (2B, 1 + N, d) used for
            the clustering.
        positions (Tensor): Patch positions (2, B, 2, N) = [view, image,
            (x, y), patch] in original-image pixels.
        num_clusters (int): Clusters per image ``K``.
        pos_alpha (float): ``lambda_pos``, e.g. from
            :func:`pos_alpha_schedule`.
        sinkhorn_reg (float): Sinkhorn ``lambda``. Defaults to 20.0.
        sinkhorn_iters (int): Sinkhorn iterations. Defaults to 5.
        num_iters (int): Clustering iterations. Defaults to 5.
        update_marginals (bool): Reference ``update_c``. Defaults to True.
        init_index (Tensor, optional): (B, K) initial centroid indices into
            the joint (B, 2N) token order; drawn at random if None.
        generator (torch.Generator, optional): Generator for the draw.
        pool_tokens (Tensor, optional): View-major tokens (2B, 1 + N, d')
            to pool (reference ``last_tokens``); defaults to ``tokens``.
        has_cls (bool): Whether index 0 of the token axis is CLS.
            Defaults to True.

    Returns:
        TeacherObjects: centroids, validity mask, assignments, objects per
        image and their mean.
    """
    with fp32_region(tokens.device):
        joint = views_to_joint(tokens.float(), has_cls)
        b, t, _ = joint.shape
        n, k = t // 2, int(num_clusters)
        joint_pos = positions_to_joint(positions.float())
        if joint_pos.shape[:2] != (b, t):
            raise ValueError(f'positions {tuple(positions.shape)} do not '
                             f'match tokens {tuple(tokens.shape)}')
        assignment, _ = cluster_two_views(
            joint,
            joint_pos,
            k,
            pos_alpha,
            sinkhorn_reg=sinkhorn_reg,
            sinkhorn_iters=sinkhorn_iters,
            num_iters=num_iters,
            update_marginals=update_marginals,
            init_index=init_index,
            generator=generator)
        # Validity from the hard argmax of the NORMALISED assignment (as the
        # reference; identical to the membership when there are no ties).
        hard = assignment == assignment.amax(dim=-1, keepdim=True)
        hard = hard.view(b, 2, n, k)
        valid = (hard[:, 0].any(dim=1) & hard[:, 1].any(dim=1)).reshape(b * k)
        assignments = assignment.view(b, 2, n, k).transpose(0, 1)
        if pool_tokens is None:
            pool_tokens = tokens
        centroids_v1, centroids_v2 = pool_objects(
            pool_tokens.float(), assignments, valid, has_cls)
        objects_per_image = valid.view(b, k).sum(dim=-1)
        return TeacherObjects(centroids_v1, centroids_v2, valid,
                              assignments, objects_per_image,
                              objects_per_image.float().mean())
