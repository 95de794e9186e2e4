# Copyright (c) cribo-mm contributors. All rights reserved.
"""Object memory bank of CrIBo: cycle-consistent retrieval and FIFO update.

The bank keeps, for the last ``S`` images seen (over all ranks), the raw
teacher object representations of both views (backbone space, before the
head) and the number of valid objects of every image. Object slots are
packed newest-first: the objects of the newest image occupy slots
``[0, objects_per_image[0])``, those of the next image follow, and so on.
Only the first ``objects_per_image.sum()`` slots take part in matching; the
slots after them keep whatever they held before ("stale") and are never
read.

The functions :func:`retrieve_cycle_consistent` and :func:`fifo_update`
reproduce the reference implementation number for number (see
``shared/fixtures/cribo_reference/README.md``, section 5), and
:class:`CrIBoMemoryBank` wraps them with registered buffers and the
cross-rank gather.

Memory: at COCO settings (K=64, S=25 000, D=384) the bank is 4.9 GB in fp32
(2.5 GB per view). Every step the reference makes a normalised copy of it
and builds the complete (objects x K*S) similarity matrix (6.5 GB for 1000
objects per GPU). Here the bank is scanned in chunks of ``chunk_size`` slots:
only one chunk is normalised at a time and only an (objects x chunk_size)
similarity block exists (with the default 65 536: 0.1 GB + 0.26 GB for 1000
objects). The FIFO shift moves the kept entries in place, chunk by chunk,
instead of cloning them. Row-wise normalisation is exact per chunk, so
chunking changes nothing but the peak memory (the top-1 of the whole bank is
the best of the per-chunk top-1s; exact ties resolve to the lower slot).
Storing the bank in fp16 (``dtype``) halves the 4.9 GB.

Speed: the search scores the bank with a bf16 (GPU: bf16/fp16) matmul,
re-scores the best candidates in fp32 and proves that the result is the fp32
top-1, falling back to the fp32 search for the queries it cannot prove
(``search_dtype``, :mod:`.exact_search`). Indices, masks and neighbours are
those of the fp32 search; the fallbacks are counted in ``search_stats``.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor, nn

from cribo_mm.registry import MODELS
from cribo_mm.utils.dtypes import parse_float_dtype
from .exact_search import (LowPrecisionKeys, SearchStats, block_bounds,
                           certified_topk, normalize_converted,
                           resolve_search_dtype)

__all__ = [
    'RetrievalResult', 'retrieve_cycle_consistent', 'fifo_update',
    'pad_to_length', 'unpad_and_concat', 'all_gather_variable',
    'CrIBoMemoryBank'
]


class RetrievalResult(NamedTuple):
    """Output of the cycle-consistent retrieval, in the reference's order.

    ``C`` is the number of objects queried (per view), ``D`` the dim.

    The reference calls them ``nn``, ``bootstrap_centroid_mask``,
    ``centroids_indices_knn``, ``nn2``, ``centroids_indices_knn2`` and
    ``bootstrap_centroid_mask2``.

    Attributes:
        neighbours_v1 (Tensor): (2, C, D) raw bank entries (both views) of
            the neighbour of every view-1 object.
        mask_v1 (Tensor): (C,) bool, view-1 cycle test passed (M1).
        index_v1 (Tensor): (C,) int64 bank slot of the view-1 neighbour.
        neighbours_v2 (Tensor): (2, C, D) raw bank entries of the view-2
            neighbours.
        index_v2 (Tensor): (C,) int64 bank slot of the view-2 neighbour.
        mask_v2 (Tensor): (C,) bool, view-2 cycle test passed (M2).
    """
    neighbours_v1: Tensor
    mask_v1: Tensor
    index_v1: Tensor
    neighbours_v2: Tensor
    index_v2: Tensor
    mask_v2: Tensor


def _nearest_in_bank(queries: Tensor,
                     keys: Tensor,
                     normalize_keys: bool,
                     chunk_size: Optional[int],
                     blocks: Optional[Sequence[int]] = None
                     ) -> Tuple[Tensor, Tensor]:
    """Top-1 dot-product neighbour of every query among ``keys`` (fp32 path).

    Args:
        queries (Tensor): (C, D) float queries (already normalised).
        keys (Tensor): (N, D) bank rows, any floating dtype.
        normalize_keys (bool): L2-normalise the keys before the dot product.
        chunk_size (int, optional): Rows of ``keys`` handled at once (see
            :func:`block_bounds`); None handles all of them in one block.
        blocks (Sequence[int], optional): Scan only these blocks (numbers
            in increasing order); None scans all.

    Returns:
        tuple[Tensor, Tensor]: (C, 1) best similarity and (C, 1) int64 index
        into ``keys``; an exact tie keeps the lower index of the first
        block holding the best value.
    """
    best_val = best_idx = None
    bounds = block_bounds(keys.shape[0], chunk_size)
    if blocks is not None:
        bounds = [bounds[b] for b in blocks]
    for start, end in bounds:
        block = keys[start:end].to(queries.dtype)
        if normalize_keys:
            block = F.normalize(block, dim=1)
        val, idx = torch.topk(queries @ block.t(), k=1, dim=1)
        idx = idx + start
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx, best_idx)
    return best_val, best_idx


def _search_bank(queries: Tensor,
                 keys: Tensor,
                 normalize_keys: bool,
                 chunk_size: Optional[int],
                 search_dtype: Optional[torch.dtype],
                 stats: Optional[SearchStats],
                 workspace: Optional[dict] = None,
                 lowp_keys: Optional[LowPrecisionKeys] = None) -> Tensor:
    """Index of the fp32 top-1 neighbour, searched in ``search_dtype``.

    Args:
        queries, keys, normalize_keys, chunk_size: As
            :func:`_nearest_in_bank`.
        search_dtype (torch.dtype, optional): bf16/fp16 for the certified
            low-precision search (:func:`certified_topk`), None for fp32.
        stats (SearchStats, optional): Receives the fallback count.
        workspace (dict, optional): Scratch buffers shared by searches.
        lowp_keys (LowPrecisionKeys, optional): ``keys`` already converted
            for the low-precision search (see
            :meth:`CrIBoMemoryBank.search_keys`).

    Returns:
        Tensor: (C,) int64 index into ``keys``, equal to the fp32 path's.
    """

    def exact(rows: Tensor,
              blocks: Optional[Sequence[int]] = None
              ) -> Tuple[Tensor, Tensor]:
        return _nearest_in_bank(rows, keys, normalize_keys, chunk_size,
                                blocks)

    if search_dtype is None:
        return exact(queries)[1][:, 0]
    return certified_topk(
        queries,
        keys if lowp_keys is None else lowp_keys,
        1,
        exact,
        normalize=normalize_keys,
        block_size=chunk_size,
        dtype=search_dtype,
        stats=stats,
        workspace=workspace)[1][:, 0]


def _cycle_mask(back: Tensor, targets: Tensor, normalize_back: bool) -> Tensor:
    """Whether the top-1 neighbour of ``back[i]`` among ``targets`` is ``i``.

    Args:
        back (Tensor): (C, D) bank entries retrieved for the C objects.
        targets (Tensor): (C, D) normalised objects of the other view.
        normalize_back (bool): L2-normalise ``back`` first.

    Returns:
        Tensor: (C,) bool.
    """
    back = back.to(targets.dtype)
    if normalize_back:
        back = F.normalize(back, dim=1)
    nearest = torch.topk(back @ targets.t(), k=1, dim=1)[1][:, 0]
    return nearest == torch.arange(targets.shape[0], device=targets.device)


@torch.no_grad()
def retrieve_cycle_consistent(objects_v1: Tensor,
                              objects_v2: Tensor,
                              bank: Tensor,
                              num_valid: int,
                              normalized_matching: bool = True,
                              chunk_size: Optional[int] = None,
                              search_dtype: Union[str, torch.dtype,
                                                  None] = None,
                              stats: Optional[SearchStats] = None,
                              search_keys: Optional[Tensor] = None
                              ) -> RetrievalResult:
    """Cycle-consistent top-1 retrieval of objects from the bank.

    View-1 object ``k`` is matched to its nearest view-1 bank slot ``j1``;
    the pair survives (``mask_v1``) when the view-2 entry of slot ``j1`` has
    view-2 object ``k`` as its nearest neighbour among all view-2 objects of
    the batch. ``mask_v2`` is the symmetric test. Objects are always
    L2-normalised for matching; bank entries only with
    ``normalized_matching`` (then all similarities are cosines).

    Args:
        objects_v1 (Tensor): (C, D) raw view-1 objects of the local batch.
        objects_v2 (Tensor): (C, D) raw view-2 objects, paired row-wise.
        bank (Tensor): (2, N, D) bank ``[view, slot, dim]`` before the
            update, any floating dtype.
        num_valid (int): Matching looks at slots ``[0, num_valid)`` only
            (``objects_per_image.sum()``).
        normalized_matching (bool): Normalise bank entries for matching.
        chunk_size (int, optional): Bank slots scanned at once; None scans
            the whole valid prefix in one block, like the reference.
        search_dtype (str | torch.dtype, optional): Format of the
            nearest-neighbour search: ``'bfloat16'``/``'float16'`` search
            with a low-precision matmul and prove (or fall back to) the
            fp32 result (:func:`certified_topk`), ``'auto'`` picks per
            device, None/``'float32'`` runs the fp32 path. The result is the
            same. Defaults to None.
        stats (SearchStats, optional): Receives query/fallback counts.
        search_keys (Tensor, optional): (2, N, D) bf16/fp16
            ``normalize_converted`` copy of ``bank`` in the search's format
            (normalised matching only), so that the search does not convert
            the bank; None converts it block by block.

    Returns:
        RetrievalResult: ``neighbours_v1``/``neighbours_v2`` are gathered
        from the raw bank and cast to the dtype of ``objects_v1``.
    """
    num_obj, dim = objects_v1.shape
    device = objects_v1.device
    num_valid = int(num_valid)
    if num_obj == 0 or num_valid == 0:
        idx = torch.zeros(num_obj, dtype=torch.long, device=device)
        mask = torch.zeros(num_obj, dtype=torch.bool, device=device)
        nn_ = bank[:, idx].to(objects_v1.dtype)
        return RetrievalResult(nn_, mask, idx, nn_.clone(), idx.clone(),
                               mask.clone())
    work_dtype = torch.promote_types(objects_v1.dtype, torch.float32)
    q1 = F.normalize(objects_v1.to(work_dtype), dim=1)
    q2 = F.normalize(objects_v2.to(work_dtype), dim=1)
    fast = resolve_search_dtype(search_dtype, device)
    workspace = {}  # the two searches share their scratch buffers
    lowp = [None, None]
    if fast is not None and search_keys is not None:
        if search_keys.dtype != fast or search_keys.shape != bank.shape \
                or not normalized_matching:
            raise ValueError(
                f'search_keys ({search_keys.dtype}, '
                f'{tuple(search_keys.shape)}) must be the {fast} copy of '
                f'the bank {tuple(bank.shape)} for a normalised search')
        lowp = [
            LowPrecisionKeys.from_converted(bank[view, :num_valid],
                                            search_keys[view, :num_valid],
                                            chunk_size) for view in (0, 1)
        ]
    idx1 = _search_bank(q1, bank[0, :num_valid], normalized_matching,
                        chunk_size, fast, stats, workspace, lowp[0])
    idx2 = _search_bank(q2, bank[1, :num_valid], normalized_matching,
                        chunk_size, fast, stats, workspace, lowp[1])
    del workspace
    mask1 = _cycle_mask(bank[1, idx1], q2, normalized_matching)
    mask2 = _cycle_mask(bank[0, idx2], q1, normalized_matching)
    nn1 = bank[:, idx1].to(objects_v1.dtype)
    nn2 = bank[:, idx2].to(objects_v1.dtype)
    return RetrievalResult(nn1, mask1, idx1, nn2, idx2, mask2)


def _shift_right(buf: Tensor, length: int, offset: int, dim: int,
                 chunk_size: Optional[int]) -> None:
    """Move ``buf[..., :length]`` to ``[offset, offset + length)`` in place.

    Chunks are moved from the back, so a source is never overwritten before
    it is read. A chunk longer than ``offset`` overlaps its destination and
    goes through a temporary copy of that chunk only; the whole range is
    never copied at once (unless ``chunk_size`` is None). A contiguous CPU
    buffer is moved with single-threaded memory copies of ``offset`` rows
    (no temporary at all; see :func:`_shift_right_cpu`).

    Args:
        buf (Tensor): Buffer to modify.
        length (int): Number of leading entries along ``dim`` to move.
        offset (int): Shift, > 0.
        dim (int): Dimension to shift along.
        chunk_size (int, optional): Entries moved by one copy; None moves
            everything in one copy.
    """
    if length <= 0 or offset <= 0:
        return
    if buf.device.type == 'cpu' and buf.is_contiguous():
        _shift_right_cpu(buf, length, offset, dim, chunk_size)
        return
    step = length if not chunk_size else int(chunk_size)
    end = length
    while end > 0:
        start = max(0, end - step)
        src = buf.narrow(dim, start, end - start)
        if end - start > offset:
            src = src.clone()
        buf.narrow(dim, start + offset, end - start).copy_(src)
        end = start


#: Smallest shift (entries) moved in chunks of exactly ``offset`` entries.
_DIRECT_SHIFT = 64


def _shift_right_cpu(buf: Tensor, length: int, offset: int, dim: int,
                     chunk_size: Optional[int]) -> None:
    """:func:`_shift_right` for a contiguous CPU tensor, through numpy.

    Every slice ``buf[i_0, ..., i_{dim-1}]`` is a contiguous block of rows;
    it is viewed as bytes and moved from the back in chunks of ``offset``
    rows, which never overlap their destination (numpy buffers the chunk
    itself when ``offset`` is below :data:`_DIRECT_SHIFT` and the chunk is
    longer). One memory copy per chunk, no thread start-up per copy: under
    load this is several times faster than chunked ``Tensor.copy_``.
    """
    rows = buf.reshape(-1, *buf.shape[dim:])
    step = offset if offset >= _DIRECT_SHIFT else (
        length if not chunk_size else int(chunk_size))
    for outer in rows:
        flat = outer.reshape(outer.shape[0], -1)
        data = flat.view(torch.uint8).numpy()
        end = length
        while end > 0:
            start = max(0, end - step)
            data[start + offset:end + offset] = data[start:end]
            end = start


@torch.no_grad()
def fifo_update(objects: Tensor,
                objects_per_image: Tensor,
                new_v1: Tensor,
                new_v2: Tensor,
                new_counts: Tensor,
                cls: Optional[Tensor] = None,
                new_cls: Optional[Tensor] = None,
                chunk_size: Optional[int] = None,
                shifted_with: Sequence[Tensor] = ()) -> int:
    """FIFO update of the bank, in place, newest entries first.

    With ``B`` new images and ``S`` image slots, the new objects go to the
    front, followed by the objects of the ``S - B`` newest images already
    stored; the object slots after them are left untouched (stale). When
    ``B >= S`` only the first ``S`` new images (and their objects) are kept.
    ``objects_per_image`` and ``cls`` shift the same way.

    Args:
        objects (Tensor): (2, K*S, D) object bank ``[view, slot, dim]``.
        objects_per_image (Tensor): (S,) integer counts of the stored images.
        new_v1 (Tensor): (C, D) raw view-1 objects of all new images, in
            image order.
        new_v2 (Tensor): (C, D) raw view-2 objects.
        new_counts (Tensor): (B,) integer objects per new image, summing to
            C, each at most K.
        cls (Tensor, optional): (2, S, D) CLS bank, updated when given.
        new_cls (Tensor, optional): (2, B, D) CLS vectors to store, already
            in their stored form (normalised or not). Required with ``cls``.
        chunk_size (int, optional): Upper bound of slots moved by one copy.
        shifted_with (Sequence[Tensor]): Further (2, K*S, ...) tensors
            shifted exactly like ``objects`` (copies derived from it); their
            first ``num_new`` slots are left for the caller to write.

    Returns:
        int: ``num_new``, the object slots written at the front.
    """
    num_slots = objects_per_image.shape[0]
    counts = new_counts.to(torch.long)
    num_new_images = min(counts.shape[0], num_slots)
    num_old_images = num_slots - num_new_images
    num_new = int(counts[:num_new_images].sum())
    num_old = int(objects_per_image[:num_old_images].sum())
    if num_new + num_old > objects.shape[1]:
        raise ValueError(
            f'{num_new + num_old} objects do not fit into the bank of '
            f'{objects.shape[1]} slots; an image has more objects than K.')

    for bank in (objects, *shifted_with):
        _shift_right(bank, num_old, num_new, 1, chunk_size)
    objects[0, :num_new] = new_v1[:num_new]
    objects[1, :num_new] = new_v2[:num_new]

    _shift_right(objects_per_image, num_old_images, num_new_images, 0, None)
    objects_per_image[:num_new_images] = counts[:num_new_images]

    if cls is not None:
        if new_cls is None:
            raise ValueError('new_cls is required to update the CLS bank.')
        _shift_right(cls, num_old_images, num_new_images, 1, chunk_size)
        cls[:, :num_new_images] = new_cls[:, :num_new_images]
    return num_new


def pad_to_length(tensor: Tensor, length: int) -> Tensor:
    """Zero-pad ``tensor`` along dim 0 to ``length`` rows.

    Args:
        tensor (Tensor): (L, ...) with L <= length.
        length (int): Target number of rows.

    Returns:
        Tensor: (length, ...); ``tensor`` itself when already that long.
    """
    missing = length - tensor.shape[0]
    if missing < 0:
        raise ValueError(f'cannot pad {tensor.shape[0]} rows to {length}.')
    if missing == 0:
        return tensor
    pad = tensor.new_zeros((missing, ) + tuple(tensor.shape[1:]))
    return torch.cat([tensor, pad], dim=0)


def unpad_and_concat(tensors: Sequence[Tensor],
                     lengths: Sequence[int]) -> Tensor:
    """Inverse of :func:`pad_to_length` over ranks: trim and concatenate.

    Args:
        tensors (Sequence[Tensor]): Per-rank padded tensors (L_max, ...).
        lengths (Sequence[int]): Valid rows of every tensor.

    Returns:
        Tensor: (sum(lengths), ...) rows in rank order.
    """
    return torch.cat([t[:int(n)] for t, n in zip(tensors, lengths)], dim=0)


def all_gather_variable(tensor: Tensor) -> Tensor:
    """All-gather tensors whose dim-0 length differs across ranks.

    Gathers the lengths, pads to the longest, gathers and trims. Without an
    initialised process group (or with one rank) it returns ``tensor``.

    Args:
        tensor (Tensor): (L_rank, ...) local rows; other dims equal on every
            rank.

    Returns:
        Tensor: (sum of L over ranks, ...) in rank order.
    """
    if dist.get_world_size() == 1:
        return tensor
    length = torch.tensor([tensor.shape[0]],
                          dtype=torch.long,
                          device=tensor.device)
    lengths: List[int] = [int(n) for n in dist.all_gather(length)]
    padded = pad_to_length(tensor.contiguous(), max(lengths))
    return unpad_and_concat(dist.all_gather(padded), lengths)


@MODELS.register_module()
class CrIBoMemoryBank(nn.Module):
    """FIFO object memory bank with cycle-consistent nearest-neighbour lookup.

    The state lives in buffers, so it is saved in (and restored from)
    checkpoints under ``memory_bank.*``:

    * ``objects`` (2, K*S, D): raw teacher objects ``[view, slot, dim]``.
    * ``cls`` (2, S, D): CLS features of the stored images (normalised when
      ``normalized_matching``); kept like the reference, read by no loss.
      Absent with ``store_cls=False``.
    * ``objects_per_image`` (S,) int64: valid objects of every stored image.
    * ``num_inserted`` () int64: real images inserted so far (all ranks).

    The initial state follows the reference: uniform [0, 1) noise in every
    slot and ``objects_per_image = K``, so matching sees a full bank from the
    first step. Retrieval during the first epoch therefore returns noise,
    which is why the cross-image loss only starts at epoch 1.

    :meth:`update` gathers the objects of all ranks before writing, so every
    rank holds the same bank; call it on every rank, every step. The bank
    must then not be broadcast by DDP (use ``broadcast_buffers=False``), or
    rank 0's copy, 2x2.5 GB at COCO settings, is re-sent each forward.

    Args:
        num_images (int): S, number of images kept.
        num_objects (int): K, maximal objects per image.
        embed_dim (int): D, dimension of the stored objects.
        normalized_matching (bool): Match with cosine similarity (normalise
            bank entries); objects of the batch are always normalised.
            Defaults to True.
        store_cls (bool): Keep the (unused) CLS queue. Defaults to True.
        dtype (str | torch.dtype): Storage dtype of ``objects`` and ``cls``;
            ``'float16'`` halves the memory (matching still runs in fp32 on
            the up-cast chunk). Defaults to ``'float32'``, which reproduces
            the reference exactly.
        chunk_size (int, optional): Bank slots handled at once when matching
            and shifting; bounds the extra memory to a (objects x
            chunk_size) similarity block plus one normalised chunk. None
            processes the whole bank at once (the reference's footprint).
            Defaults to 65536.
        search_dtype (str): Matmul format of the nearest-neighbour search:
            ``'bfloat16'`` or ``'float16'`` (certified low-precision search,
            fp32 fallback; same result as fp32), ``'float32'`` (plain fp32
            search) or ``'auto'``: bf16 on a CPU with native bf16 dot
            products or a bf16-capable GPU, fp16 on older GPUs, else fp32.
            Defaults to ``'auto'``.
        cache_search_keys (bool): Keep the normalised bf16/fp16 copy of the
            bank that a low-precision search multiplies (half the size of a
            float32 bank) and shift it with the bank in :meth:`update`,
            instead of normalising and converting the whole bank at every
            :meth:`retrieve`. Used with ``normalized_matching`` and a
            low-precision ``search_dtype`` only; not saved in checkpoints;
            rebuilt when the bank changed outside :meth:`update` (loading,
            moving, in-place edits: the tensor's version counter tells).
            Defaults to True.

    Attributes:
        search_stats (SearchStats): Queries searched in low precision and
            fp32 fallbacks since construction (not saved in checkpoints).
        last_search_stats (SearchStats): The same for the last
            :meth:`retrieve`.
    """

    def __init__(self,
                 num_images: int,
                 num_objects: int,
                 embed_dim: int,
                 normalized_matching: bool = True,
                 store_cls: bool = True,
                 dtype: Union[str, torch.dtype] = 'float32',
                 chunk_size: Optional[int] = 65536,
                 search_dtype: str = 'auto',
                 cache_search_keys: bool = True) -> None:
        super().__init__()
        self.num_images = int(num_images)
        self.num_objects = int(num_objects)
        self.embed_dim = int(embed_dim)
        self.normalized_matching = normalized_matching
        self.store_cls = store_cls
        self.chunk_size = chunk_size
        resolve_search_dtype(search_dtype)  # validates the name
        self.search_dtype = search_dtype
        self.cache_search_keys = cache_search_keys
        self._search_keys: Optional[Tensor] = None
        self._search_keys_stamp: Optional[tuple] = None
        self.search_stats = SearchStats()
        self.last_search_stats = SearchStats()
        storage = parse_float_dtype(dtype, 'memory_bank.dtype')
        self.register_buffer(
            'objects',
            torch.rand(2, self.num_objects * self.num_images, self.embed_dim,
                       dtype=storage))
        self.register_buffer(
            'cls',
            torch.rand(2, self.num_images, self.embed_dim, dtype=storage)
            if store_cls else None)
        self.register_buffer(
            'objects_per_image',
            torch.full((self.num_images, ), self.num_objects,
                       dtype=torch.long))
        self.register_buffer('num_inserted',
                             torch.zeros((), dtype=torch.long))
        self._ranks_synced = False

    @property
    def num_valid(self) -> int:
        """int: Object slots taking part in matching (view 1 and 2 alike)."""
        return int(self.objects_per_image.sum())

    @torch.no_grad()
    def retrieve(self, objects_v1: Tensor,
                 objects_v2: Tensor) -> RetrievalResult:
        """Cycle-consistent neighbours of the local batch's objects.

        Must run before :meth:`update` of the same step.

        Args:
            objects_v1 (Tensor): (C, D) raw teacher objects of view 1 (local
                batch).
            objects_v2 (Tensor): (C, D) raw teacher objects of view 2.

        Returns:
            RetrievalResult: ``(neighbours_v1 (2, C, D), mask_v1 (C,),
            index_v1 (C,), neighbours_v2 (2, C, D), index_v2 (C,),
            mask_v2 (C,))``.
        """
        stats = SearchStats()
        result = retrieve_cycle_consistent(
            objects_v1,
            objects_v2,
            self.objects,
            self.num_valid,
            normalized_matching=self.normalized_matching,
            chunk_size=self.chunk_size,
            search_dtype=self.search_dtype,
            stats=stats,
            search_keys=self.search_keys())
        self.last_search_stats = stats
        self.search_stats.add(stats.queries, stats.fallbacks)
        return result

    def _objects_stamp(self) -> tuple:
        """What changes whenever ``objects`` is written or replaced."""
        return (self.objects._version, self.objects.data_ptr(),
                self.objects.device, tuple(self.objects.shape))

    def _current_search_keys(self) -> Optional[Tensor]:
        """The cached copy if it still mirrors ``objects``, else None."""
        if self._search_keys is not None and \
                self._search_keys_stamp == self._objects_stamp():
            return self._search_keys
        return None

    @torch.no_grad()
    def search_keys(self) -> Optional[Tensor]:
        """The (2, K*S, D) low-precision copy the search multiplies.

        Returns:
            Tensor | None: ``normalize_converted(objects)`` in the search's
            format, built if missing or out of date; None when it is not
            used (``cache_search_keys`` off, raw matching or an fp32
            search).
        """
        fast = resolve_search_dtype(self.search_dtype, self.objects.device)
        if not (self.cache_search_keys and self.normalized_matching
                and fast is not None):
            self._search_keys = None
            return None
        keys = self._current_search_keys()
        if keys is None or keys.dtype != fast:
            keys = torch.empty(self.objects.shape, dtype=fast,
                               device=self.objects.device)
            workspace = {}  # one chunk-sized float32 scratch for all
            for start, end in block_bounds(self.objects.shape[1],
                                           self.chunk_size):
                for view in range(2):
                    normalize_converted(self.objects[view, start:end],
                                        keys[view, start:end], workspace)
            self._search_keys = keys
            self._search_keys_stamp = self._objects_stamp()
        return keys

    def _sync_ranks_once(self) -> None:
        """Broadcast rank 0's bank once, so ranks start identical."""
        if self._ranks_synced:
            return
        if dist.get_world_size() > 1:
            for buf in self.buffers():
                dist.broadcast(buf, src=0)
        self._ranks_synced = True

    @torch.no_grad()
    def update(self,
               objects_v1: Tensor,
               objects_v2: Tensor,
               objects_per_image: Tensor,
               cls: Optional[Tensor] = None) -> None:
        """Gather the batch of every rank and push it into the bank.

        Args:
            objects_v1 (Tensor): (C, D) raw view-1 teacher objects of the
                local batch, grouped by image.
            objects_v2 (Tensor): (C, D) raw view-2 teacher objects.
            objects_per_image (Tensor): (B,) integer objects per local image,
                summing to C.
            cls (Tensor, optional): (2B, D) raw teacher CLS features,
                view-major. Required when ``store_cls``.
        """
        if self.store_cls and cls is None:
            raise ValueError('CrIBoMemoryBank(store_cls=True).update needs '
                             'the CLS features.')
        self._sync_ranks_once()
        num_local = objects_per_image.shape[0]
        pairs = torch.stack([objects_v1, objects_v2], dim=1)
        pairs = all_gather_variable(pairs)
        counts = all_gather_variable(objects_per_image.to(torch.long))
        new_cls = None
        if self.store_cls:
            new_cls = cls.reshape(2, num_local, -1)
            if self.normalized_matching:
                new_cls = F.normalize(new_cls, dim=2)
            new_cls = all_gather_variable(
                new_cls.transpose(0, 1).contiguous()).transpose(0, 1)
        keys = self._current_search_keys()
        num_new = fifo_update(
            self.objects,
            self.objects_per_image,
            pairs[:, 0],
            pairs[:, 1],
            counts,
            cls=self.cls if self.store_cls else None,
            new_cls=new_cls,
            chunk_size=self.chunk_size,
            shifted_with=() if keys is None else (keys, ))
        if keys is None:
            self._search_keys = None  # stale: rebuilt by the next search
        else:
            # the new entries as stored (storage dtype), converted
            for view in range(2):
                normalize_converted(self.objects[view, :num_new],
                                    keys[view, :num_new])
            self._search_keys_stamp = self._objects_stamp()
        self.num_inserted += counts.shape[0]

    @property
    def fill(self) -> Tensor:
        """Tensor: 0-dim float32 fraction of the S image slots holding real
        (inserted) images rather than the initial noise; on the device of
        the bank, computed without a host sync (for logging every step)."""
        return (self.num_inserted.clamp(max=self.num_images).float() /
                max(self.num_images, 1))

    @property
    def fill_stats(self) -> dict:
        """Fill statistics as python numbers (host sync).

        Returns:
            dict: ``real_images`` (images inserted by training still in the
            bank, at most S), ``real_fraction`` (``real_images / S``),
            ``valid_objects`` (slots used for matching, initial noise
            included), ``real_objects`` (of those, objects of real images)
            and ``real_object_fraction`` (``real_objects / valid_objects``).
        """
        real_images = min(int(self.num_inserted), self.num_images)
        valid = self.num_valid
        real_objects = int(self.objects_per_image[:real_images].sum())
        return dict(
            real_images=real_images,
            real_fraction=real_images / max(self.num_images, 1),
            valid_objects=valid,
            real_objects=real_objects,
            real_object_fraction=real_objects / max(valid, 1))

    def extra_repr(self) -> str:
        return (f'num_images={self.num_images}, '
                f'num_objects={self.num_objects}, '
                f'embed_dim={self.embed_dim}, '
                f'normalized_matching={self.normalized_matching}, '
                f'store_cls={self.store_cls}, dtype={self.objects.dtype}, '
                f'chunk_size={self.chunk_size}, '
                f'search_dtype={self.search_dtype!r}')
