# Copyright (c) cribo-mm contributors. All rights reserved.
"""Exact float32 top-k search at low-precision speed.

A top-k dot-product search ("the fp32 path": ``queries @ keys.T`` in
float32 over key blocks, keys optionally L2-normalised) is dominated by the
matmul. :func:`certified_topk` returns the fp32 path's result, found with a
bfloat16 (or float16) matmul:

1. every key is scored with ``lp(q) @ lp(y).T`` (``lp`` = bf16/fp16,
   float32 accumulation) and the ``c`` best keys per query (``c`` = k plus a
   margin) become candidates;
2. the candidates are re-scored with the fp32 path's own operation (the
   float32 matmul of the same query batch with the same normalised rows);
3. a query is accepted when its k-th best re-scored candidate beats the
   largest score any non-candidate can have in float32 (its low-precision
   score plus the bound below) and the re-scored values of the best k + 1
   candidates are pairwise distinct (no tie whose order only the fp32
   path's ``topk`` decides); every other query is searched again with the
   fp32 path itself (the fallback), so ties keep the fp32 path's order.
   For k = 1 the fallback scans only the key blocks whose best fast score
   can reach the proven lower bound of the top-1 score.

Error bound. Let ``q`` be a float32 query and ``y`` a float32 key as the fp32
path uses them (``y = x / max(||x||, eps)`` with the normalisation, else the
raw row), ``d`` the dimension, ``u`` the unit roundoff of the low-precision
format (``2^-8`` bf16, ``2^-11`` fp16), ``eta`` half its smallest subnormal
spacing (``2^-134``, ``2^-25``), ``u32 = 2^-24`` and
``g(n) = n u32 / (1 - n u32)``. Write ``T = q . y`` (exact real number) and
``A`` for the fp32 path's score. Any float32 dot product, in any summation
order, with or without FMA, obeys ``|A - T| <= g(d) sum|q_i y_i|
<= g(d) ||q|| ||y||``.

The fast path computes ``qh = lp(q s_q)`` and ``yh = lp(y s_y)`` (round to
nearest; ``s_q``, ``s_y`` are powers of two, 1 for bf16 and for
normalised keys, chosen for raw fp16 rows so that nothing overflows;
scaling by them is exact). With ``q~ = qh / s_q``
and ``y~ = yh / s_y``: ``q~ = q + dq`` (``dq`` is computed exactly in
float32) and ``|y~_i - y_i| <= u |y_i| + eta / s_y``, hence, by
Cauchy-Schwarz,

    |q~ . y~ - T| <= ||dq|| ||y|| + u ||q~|| ||y|| + eta sqrt(d) ||q~|| / s_y.

The products ``qh_i yh_i`` are exact in float32 (8 + 8 or 11 + 11
significant bits); accumulating them in float32 adds at most
``g(d) ||q~|| ||y~||`` with ``||y~|| <= (1 + u) ||y|| + eta sqrt(d) / s_y``,
plus ``2 d 2^-126 / (s_q s_y)`` for flushed subnormals (AVX512-BF16 flushes
them). When the matmul returns low precision (bf16 on a CPU), its rounding
adds ``u |v| + eta / (s_q s_y)`` with ``|v| <= (|z| + eta / (s_q s_y)) /
(1 - u)`` in terms of the returned value ``z``. Summing, a key whose fast
score is ``z`` has ``A <= z + E(z)`` where ``E`` grows with ``|z|``; the
best non-candidate's fast score bounds every non-candidate. ``||y||`` is
bounded by ``(1 + u32) / (1 - g(d + 2))`` for normalised keys (the computed
norm has relative error at most ``g(d + 2)``) and by the largest computed
row norm times ``1 + g(d + 2)`` for raw keys; computed norms of queries and
residuals get the same factor. An accepted query also needs its k-th
re-scored value minus ``2 g(d) ||q|| ||y||`` (re-score vs. fp32 path, should
they round differently) to exceed the bound. The bound arithmetic runs in
float64 with a relative safety factor of ``1 + 1e-9``. On CUDA the reduced
precision reductions of cuBLAS are switched off during the fast matmul, so
the accumulation is float32 there too.

Bit-for-bit assumption, shared with every chunked fp32 search: a float32
matmul computes each dot product independently of the other rows and
columns. MKL does so from 16 query rows and 2 key rows on (smaller
matrices take another kernel with another summation order; measured on the
CPUs of this project). Hence the fast path runs only from
:data:`MIN_ROWS` queries, pads its re-score and fallback batches to that
many rows, and :func:`block_bounds` never leaves a last key block shorter
than that. Tests compare the results bit for bit with the fp32 path.
"""
import functools
import math
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from cribo_mm.utils.dtypes import parse_float_dtype

__all__ = [
    'MIN_ROWS', 'SEARCH_DTYPES', 'resolve_search_dtype', 'block_bounds',
    'fast_search_dtype',
    'SearchStats', 'LowPrecisionKeys', 'normalize_converted',
    'certified_topk', 'fast_error_bound'
]

#: Fewest query rows (and key rows per block) for which float32 matmul
#: values do not depend on the matrix shape (see the module docstring).
MIN_ROWS = 16

_U32 = 2.0**-24
_FLUSH = 2.0**-126
_SAFETY = 1.0 + 1e-9
_NORM_EPS = 1e-12  # F.normalize's default
_SUB_BLOCK = 4096  # rows normalised and converted at once (one thread)

#: unit roundoff u and half the smallest subnormal spacing eta
_FORMATS = {
    torch.bfloat16: (2.0**-8, 2.0**-134),
    torch.float16: (2.0**-11, 2.0**-25),
}

SEARCH_DTYPES = ('auto', 'float32', 'bfloat16', 'float16')


@functools.lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX); read
    once per process (the bank asks on every retrieval)."""
    probe = getattr(torch.cpu, '_is_avx512_bf16_supported', None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:
            pass
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def fast_search_dtype(device: Union[str, torch.device]) -> Optional[
        torch.dtype]:
    """The format ``search_dtype='auto'`` picks on ``device``.

    bf16 on a CPU with native bf16 dot products (else None: bf16 emulated in
    fp32 gains nothing), bf16 on a GPU that supports it, else fp16.

    Args:
        device (str | torch.device): Device of the search.

    Returns:
        torch.dtype | None: The format, None for the fp32 path.
    """
    device = torch.device(device)
    if device.type == 'cpu':
        return torch.bfloat16 if _cpu_has_fast_bf16() else None
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() \
            else torch.float16
    return None


def resolve_search_dtype(search_dtype: Union[str, torch.dtype, None],
                         device: Union[str, torch.device] = 'cpu'
                         ) -> Optional[torch.dtype]:
    """Low-precision format of a search, or None for the fp32 path.

    Args:
        search_dtype (str | torch.dtype | None): ``'auto'`` (see
            :func:`fast_search_dtype`), ``'bfloat16'``/``'bf16'``,
            ``'float16'``/``'fp16'``, ``'float32'``/``'fp32'``/None.
        device (str | torch.device): Device of the search (for ``'auto'``).
            Defaults to ``'cpu'``.

    Returns:
        torch.dtype | None: bf16 / fp16, or None for the plain fp32 search.
    """
    if search_dtype is None:
        return None
    if search_dtype == 'auto':
        return fast_search_dtype(device)
    try:
        dtype = parse_float_dtype(search_dtype, 'search_dtype')
    except ValueError:
        raise ValueError(f'search_dtype must be one of {SEARCH_DTYPES} (or '
                         f'bf16 / fp16 / fp32), got {search_dtype!r}'
                         ) from None
    return None if dtype == torch.float32 else dtype


def gamma(n: int) -> float:
    """``n u32 / (1 - n u32)``: float32 error factor of an n-term sum."""
    nu = n * _U32
    if nu >= 1:
        return math.inf
    return nu / (1 - nu)


def block_bounds(num: int, step: Optional[int]) -> List[Tuple[int, int]]:
    """Blocks ``[start, end)`` of ``step`` rows; a last block shorter than
    :data:`MIN_ROWS` joins the previous one.

    Args:
        num (int): Rows to cover.
        step (int, optional): Rows per block; None or 0 for one block.

    Returns:
        list[tuple[int, int]]: The blocks, in order.
    """
    if num <= 0:
        return []
    step = num if not step else min(int(step), num)
    bounds = [(s, min(s + step, num)) for s in range(0, num, step)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_ROWS:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


class SearchStats:
    """Counts of searched queries and of fp32 fallbacks.

    Attributes:
        queries (int): Queries searched with the low-precision path.
        fallbacks (int): Of those, queries searched again in fp32.
    """

    def __init__(self) -> None:
        self.queries = 0
        self.fallbacks = 0

    def add(self, queries: int, fallbacks: int) -> None:
        """Accumulate one search."""
        self.queries += int(queries)
        self.fallbacks += int(fallbacks)

    @property
    def fallback_rate(self) -> float:
        """float: ``fallbacks / queries`` (0 before any search)."""
        return self.fallbacks / self.queries if self.queries else 0.0

    def as_dict(self) -> Dict[str, float]:
        """dict: ``queries``, ``fallbacks`` and ``fallback_rate``."""
        return dict(
            queries=self.queries,
            fallbacks=self.fallbacks,
            fallback_rate=self.fallback_rate)

    def __repr__(self) -> str:
        return (f'SearchStats(queries={self.queries}, '
                f'fallbacks={self.fallbacks})')


def _scratch(workspace: Optional[Dict[str, Tensor]], name: str, numel: int,
             dtype: torch.dtype, device: torch.device) -> Tensor:
    """A flat buffer of ``numel`` entries, reused from ``workspace``.

    Fresh large buffers cost page faults on every touch; searches that
    share a ``workspace`` dict (the two views of the memory bank) share
    their buffers.
    """
    buf = None if workspace is None else workspace.get(name)
    if (buf is None or buf.numel() < numel or buf.dtype != dtype
            or buf.device != device):
        buf = torch.empty(numel, dtype=dtype, device=device)
        if workspace is not None:
            workspace[name] = buf
    return buf[:numel]


def _norm(rows: Tensor) -> Tensor:
    """Row norms the way ``F.normalize`` computes them."""
    return rows.norm(2, 1, keepdim=True)


def _pow2_scale(absmax: Tensor) -> Tensor:
    """Powers of two ``s`` with ``absmax * s <= 1`` (1 where absmax is 0)."""
    exp = torch.ceil(torch.log2(absmax.double().clamp_min(1e-300)))
    exp = torch.where(absmax > 0, exp, torch.zeros_like(exp))
    return torch.exp2(-exp).to(torch.float32)


def normalize_converted(rows: Tensor, out: Tensor,
                        workspace: Optional[Dict[str, Tensor]] = None
                        ) -> None:
    """``out = lp(F.normalize(rows))``, the low-precision keys of a
    normalised search (row by row: a row's result depends on that row only).

    Single-threaded on a CPU, :data:`_SUB_BLOCK` rows at a time so that the
    float32 rows stay in cache between the passes; otherwise in one pass
    per operation (every operation on a CPU starts the threads, and waiting
    for them dominates small operations on a busy machine).

    Args:
        rows (Tensor): (n, D) keys, any floating dtype.
        out (Tensor): (n, D) bf16/fp16 destination.
        workspace (dict, optional): Scratch buffers to reuse.
    """
    step = _SUB_BLOCK if (rows.device.type == 'cpu'
                          and torch.get_num_threads() == 1) \
        else max(rows.shape[0], 1)
    dim = rows.shape[1]
    tmp = _scratch(workspace, 'rows_fp32',
                   min(step, rows.shape[0]) * dim, torch.float32,
                   rows.device)
    for start in range(0, rows.shape[0], step):
        sub = rows[start:start + step].to(torch.float32)
        num = sub.shape[0]
        denom = _norm(sub).clamp_min(_NORM_EPS)
        normed = torch.div(sub, denom, out=tmp[:num * dim].view(num, dim))
        out[start:start + num].copy_(normed)


class LowPrecisionKeys:
    """Keys of a search in low precision, block by block.

    Block ``b`` covers rows ``bounds[b]`` and holds ``lp(y * s_b)`` where
    ``y`` are the keys as the fp32 path uses them (normalised or raw) and
    ``s_b`` a power of two (1 for bf16). Blocks are produced on the fly
    (:meth:`blocks`), reusing one workspace, or kept when ``cache`` is set
    (a static memory searched many times).

    Args:
        keys (Tensor): (N, D) keys, any floating dtype.
        dtype (torch.dtype): bf16 or fp16.
        normalize (bool): Whether the fp32 path L2-normalises the keys.
        block_size (int, optional): Rows per block, as the fp32 path.
        cache (bool): Keep the converted blocks. Defaults to False.
        workspace (dict, optional): Buffers to reuse (see
            :func:`certified_topk`).
    """

    def __init__(self,
                 keys: Tensor,
                 dtype: torch.dtype,
                 normalize: bool,
                 block_size: Optional[int],
                 cache: bool = False,
                 workspace: Optional[Dict[str, Tensor]] = None) -> None:
        self.keys = keys
        self.workspace = workspace
        self.dtype = dtype
        self.normalize = normalize
        self.bounds = block_bounds(keys.shape[0], block_size)
        self.dim = keys.shape[1]
        self.cache = cache
        self._cached: Optional[List[Tuple[Tensor, float]]] = None
        self._norm_bound: Optional[float] = None
        self._min_scale = 1.0

    @classmethod
    def from_converted(cls, keys: Tensor, converted: Tensor,
                       block_size: Optional[int]) -> 'LowPrecisionKeys':
        """Normalised keys whose low-precision copy is already made.

        Args:
            keys (Tensor): (N, D) keys as the fp32 path reads them (the
                fp32 re-scoring uses them).
            converted (Tensor): (N, D) bf16/fp16 rows
                ``normalize_converted(keys)`` made (e.g. a cache kept up to
                date with the keys).
            block_size (int, optional): Rows per block, as the fp32 path.

        Returns:
            LowPrecisionKeys: Searches ``converted`` block by block.
        """
        if converted.shape != keys.shape:
            raise ValueError(f'converted keys {tuple(converted.shape)} do '
                             f'not match the keys {tuple(keys.shape)}')
        lowp = cls(keys, converted.dtype, True, block_size)
        lowp._cached = [(converted[start:end], 1.0)
                        for start, end in lowp.bounds]
        return lowp

    def _normalize_into(self, rows: Tensor, out: Tensor) -> None:
        normalize_converted(rows, out, self.workspace)

    @property
    def norm_bound(self) -> float:
        """float: Upper bound of ``||y||`` over all keys (valid after the
        first full pass over :meth:`blocks`)."""
        if self.normalize:
            return (1 + _U32) / (1 - gamma(self.dim + 2))
        if self._norm_bound is None:
            raise RuntimeError('norm_bound is known after a pass over blocks')
        return self._norm_bound

    @property
    def min_scale(self) -> float:
        """float: Smallest block scale ``s_b`` (after a pass)."""
        return self._min_scale

    def blocks(self) -> Iterator[Tuple[int, int, Tensor, float]]:
        """Yield ``(start, end, lp_block (m, D), scale)`` for every block."""
        if self._cached is not None:
            for (start, end), (block, scale) in zip(self.bounds,
                                                    self._cached):
                yield start, end, block, scale
            return
        largest = max((e - s for s, e in self.bounds), default=0)
        device = self.keys.device
        work = lowp = None
        kept = []
        max_norm, min_scale = 0.0, 1.0
        for start, end in self.bounds:
            size = end - start
            if self.cache:
                out = torch.empty(
                    size, self.dim, dtype=self.dtype, device=device)
            else:
                if lowp is None:
                    lowp = _scratch(self.workspace, 'keys_lowp',
                                    largest * self.dim, self.dtype,
                                    device).view(largest, self.dim)
                out = lowp[:size]
            if self.normalize:
                self._normalize_into(self.keys[start:end], out)
                scale = 1.0  # |y_i| <= 1: fits fp16 without scaling
            else:
                rows = self.keys[start:end]
                if rows.dtype != torch.float32 or \
                        self.dtype == torch.float16:
                    if work is None:
                        work = _scratch(self.workspace, 'keys_fp32',
                                        largest * self.dim, torch.float32,
                                        device).view(largest, self.dim)
                    rows = work[:size].copy_(rows)
                max_norm = max(max_norm, float(_norm(rows).max()))
                scale = 1.0
                if self.dtype == torch.float16:
                    scale = float(_pow2_scale(rows.abs().max()))
                    min_scale = min(min_scale, scale)
                    rows.mul_(scale)
                out.copy_(rows)
            if self.cache:
                kept.append((out, scale))
            yield start, end, out, scale
        self._norm_bound = max_norm * (1 + gamma(self.dim + 2))
        self._min_scale = min_scale
        if self.cache:
            self._cached = kept


@contextmanager
def _full_precision_accumulation(device: torch.device):
    """Switch off cuBLAS' reduced-precision reductions (CUDA only)."""
    if device.type != 'cuda':
        yield
        return
    flags = torch.backends.cuda.matmul
    old = (flags.allow_fp16_reduced_precision_reduction,
           flags.allow_bf16_reduced_precision_reduction)
    flags.allow_fp16_reduced_precision_reduction = False
    flags.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        (flags.allow_fp16_reduced_precision_reduction,
         flags.allow_bf16_reduced_precision_reduction) = old


def fast_error_bound(query_terms: Tuple[Tensor, Tensor, Tensor, Tensor],
                     fast_scores: Tensor, key_norm: float, dim: int,
                     dtype: torch.dtype, key_scale: float,
                     lowp_output: bool) -> Tensor:
    """Largest ``|fast score - fp32 path score|`` of keys (see module doc).

    Args:
        query_terms (tuple[Tensor]): float64 (Q, 1) ``||q||``, ``||q~||``,
            ``||dq||`` (computed norms, already enlarged) and the query
            scales ``s_q``.
        fast_scores (Tensor): (Q, n) float64 unscaled fast scores ``z``.
        key_norm (float): Upper bound of ``||y||``.
        dim (int): d.
        dtype (torch.dtype): bf16 or fp16.
        key_scale (float): Smallest key scale ``s_y``.
        lowp_output (bool): The fast matmul rounds its output to ``dtype``.

    Returns:
        Tensor: (Q, n) float64 bounds.
    """
    u, eta = _FORMATS[dtype]
    q_norm, qt_norm, dq_norm, q_scale = query_terms
    g = gamma(dim)
    root_d = math.sqrt(dim)
    eta_y = eta / key_scale
    yt_norm = (1 + u) * key_norm + eta_y * root_d
    bound = (dq_norm * key_norm + u * qt_norm * key_norm +
             eta_y * root_d * qt_norm + g * qt_norm * yt_norm +
             2 * dim * _FLUSH / (q_scale * key_scale) +
             g * q_norm * key_norm)
    if lowp_output:
        eta_out = eta / (q_scale * key_scale)
        bound = bound + (u * (fast_scores.abs() + eta_out) / (1 - u) +
                         eta_out)
    return bound * _SAFETY


def _query_terms(queries: Tensor, dtype: torch.dtype
                 ) -> Tuple[Tensor, Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Low-precision queries and their float64 bound terms."""
    grow = 1 + gamma(queries.shape[1] + 2)
    if dtype == torch.float16:
        q_scale = _pow2_scale(queries.abs().amax(dim=1, keepdim=True))
        q_low = (queries * q_scale).to(dtype)
    else:
        q_scale = torch.ones(queries.shape[0], 1, device=queries.device)
        q_low = queries.to(dtype)
    q_tilde = q_low.to(torch.float32) / q_scale
    terms = (_norm(queries).double() * grow, _norm(q_tilde).double() * grow,
             _norm(q_tilde - queries).double() * grow, q_scale.double())
    return q_low, terms


def _rescore(queries: Tensor, keys: Tensor, normalize: bool,
             candidates: Tensor, query_block: int = 64) -> Tensor:
    """fp32 path scores of every query's candidates.

    Each block of (at least :data:`MIN_ROWS`) queries is multiplied with the
    union of its candidates' (normalised) rows, padded to
    :data:`MIN_ROWS` rows, in one float32 matmul, as the fp32 path does.

    Args:
        queries (Tensor): (Q, D) float32.
        keys (Tensor): (N, D) keys.
        normalize (bool): L2-normalise the key rows.
        candidates (Tensor): (Q, c) int64 key indices.
        query_block (int): Queries per matmul. Defaults to 64.

    Returns:
        Tensor: (Q, c) float32 scores.
    """
    out = torch.empty(candidates.shape, device=queries.device)
    for start, end in block_bounds(queries.shape[0], query_block):
        cand = candidates[start:end]
        union, position = torch.unique(cand, return_inverse=True)
        if union.numel() < MIN_ROWS:
            pad = union.new_full((MIN_ROWS - union.numel(), ), int(union[0]))
            union = torch.cat([union, pad])
        rows = keys[union].to(torch.float32)
        if normalize:
            rows = F.normalize(rows, dim=1)
        scores = queries[start:end] @ rows.t()
        out[start:end] = scores.gather(1, position)
    return out


def _exact_rows(exact_fn: Callable[..., Tuple[Tensor, Tensor]],
                queries: Tensor, rows: Tensor,
                blocks: Optional[List[int]]) -> Tuple[Tensor, Tensor]:
    """The fp32 path for some query rows, padded to :data:`MIN_ROWS`."""
    num = rows.numel()
    padded = rows
    if num < MIN_ROWS:
        others = torch.arange(queries.shape[0], device=rows.device)
        padded = torch.cat([rows, others[:MIN_ROWS - num]])
    values, indices = exact_fn(queries[padded], blocks)
    return values[:num], indices[:num]


def _blocks_to_rescan(block_top: Tensor, lower: Tensor, terms: Tuple,
                      lowp_keys: LowPrecisionKeys, dtype: torch.dtype,
                      lowp_output: bool) -> Optional[List[int]]:
    """Key blocks that may hold a score of at least ``lower``.

    A block whose best fast score ``z`` has ``z + E(z) < lower`` holds no
    fp32 score ``>= lower`` (``E`` grows with ``z``), and ``lower`` is at
    most the fp32 top-1 score, so the fp32 top-1 search over the other
    blocks (same blocks, same order, strict ``>`` across blocks) returns
    the same index.

    Args:
        block_top (Tensor): (F, nb) float64 best fast score per block.
        lower (Tensor): (F, 1) float64 lower bound of the fp32 top-1 score.
        terms (tuple): (F, 1) query bound terms (see
            :func:`fast_error_bound`).
        lowp_keys (LowPrecisionKeys): The key blocks.
        dtype (torch.dtype): bf16 or fp16.
        lowp_output (bool): The fast matmul rounds to ``dtype``.

    Returns:
        list[int] | None: Increasing block numbers; None for all of them.
    """
    if not bool(torch.isfinite(lower).all()):
        return None
    bound = block_top + fast_error_bound(
        terms, block_top, lowp_keys.norm_bound,
        lowp_keys.dim, dtype, lowp_keys.min_scale, lowp_output)
    keep = ~(bound < lower).all(dim=0)
    return keep.nonzero()[:, 0].tolist()


@torch.no_grad()
def certified_topk(queries: Tensor,
                   keys: Union[Tensor, LowPrecisionKeys],
                   k: int,
                   exact_fn: Callable[[Tensor], Tuple[Tensor, Tensor]],
                   normalize: bool,
                   block_size: Optional[int],
                   dtype: torch.dtype,
                   margin: Optional[int] = None,
                   stats: Optional[SearchStats] = None,
                   workspace: Optional[Dict[str, Tensor]] = None
                   ) -> Tuple[Tensor, Tensor]:
    """The fp32 path's top-k, found with a low-precision matmul.

    Args:
        queries (Tensor): (Q, D) float32 queries exactly as the fp32 path
            multiplies them (already normalised where it normalises).
        keys (Tensor | LowPrecisionKeys): (N, D) keys, or their converted
            blocks (then ``normalize`` and ``block_size`` come from it).
        k (int): Neighbours per query, ``1 <= k``; clipped to N.
        exact_fn (callable): The fp32 path: ``exact_fn(q, blocks)`` maps
            (q, D) queries to ``(values (q, k), indices (q, k))``,
            scanning only the key blocks numbered in ``blocks`` (increasing;
            None: all). With ``k == 1`` the fallback passes the blocks that
            can hold the top-1 (see :func:`_blocks_to_rescan`); the fp32
            path must merge blocks so that an earlier block wins exact
            ties, as a strict ``>`` running maximum does.
        normalize (bool): The fp32 path L2-normalises the keys.
        block_size (int, optional): Key rows per block of the fp32 path.
        dtype (torch.dtype): bf16 or fp16.
        margin (int, optional): Extra candidates per query; defaults to
            ``max(32, k)`` (a top-c of a bf16 block costs about the same
            for any c up to 64 on a CPU).
        stats (SearchStats, optional): Receives the query and fallback
            counts.
        workspace (dict, optional): Scratch buffers kept between searches
            that pass the same dict (their peak memory is not added).

    Returns:
        tuple[Tensor, Tensor]: float32 values (Q, k) in descending order and
        int64 key indices (Q, k), equal to ``exact_fn(queries)``.
    """
    if dtype not in _FORMATS:
        raise ValueError(f'low-precision search needs bfloat16 or float16, '
                         f'got {dtype}')
    lowp_keys = keys if isinstance(keys, LowPrecisionKeys) else \
        LowPrecisionKeys(keys, dtype, normalize, block_size,
                         workspace=workspace)
    key_rows = lowp_keys.keys
    normalize = lowp_keys.normalize
    num_q, num_keys = queries.shape[0], key_rows.shape[0]
    k = min(int(k), num_keys)
    num_cand = k + (max(32, k) if margin is None else int(margin))
    if (queries.dtype != torch.float32 or num_q < MIN_ROWS
            or num_keys <= num_cand + 1 or k < 1):
        return exact_fn(queries)

    device = queries.device
    q_low, terms = _query_terms(queries, dtype)
    lowp_output = True
    vals, idxs, block_top = [], [], []
    with _full_precision_accumulation(device):
        for start, end, block, scale in lowp_keys.blocks():
            size = end - start
            scores = _scratch(workspace, 'scores', num_q * size, dtype,
                              device).view(num_q, size)
            torch.mm(q_low, block.t(), out=scores)
            val, idx = scores.topk(min(num_cand + 1, size), dim=1)
            if scale != 1.0 or dtype == torch.float16:
                val = val.double() / (terms[3] * scale)
            block_top.append(val[:, 0])
            vals.append(val)
            idxs.append(idx + start if start else idx)
    # one merge of the per-block top-(c+1) lists
    best_val, pos = torch.cat(vals, dim=1).double().topk(num_cand + 1, dim=1)
    best_idx = torch.cat(idxs, dim=1).gather(1, pos)
    del vals, idxs
    # every key outside the candidates scores at most the (c+1)-th value
    outside = best_val[:, num_cand:num_cand + 1]
    limit = outside + fast_error_bound(terms, outside, lowp_keys.norm_bound,
                                       lowp_keys.dim, dtype,
                                       lowp_keys.min_scale, lowp_output)
    candidates = best_idx[:, :num_cand]
    exact = _rescore(queries, key_rows, normalize, candidates)
    top_val, pos = exact.topk(k + 1, dim=1)
    top_idx = candidates.gather(1, pos)
    slack = 2 * gamma(lowp_keys.dim) * terms[0] * lowp_keys.norm_bound
    kth = top_val[:, k - 1:k].double()
    certified = (kth - slack * _SAFETY > limit)[:, 0]
    certified &= (top_val[:, :-1] > top_val[:, 1:]).all(dim=1)
    values, indices = top_val[:, :k].contiguous(), top_idx[:, :k].contiguous()
    failed = (~certified).nonzero()[:, 0]
    if failed.numel():
        blocks = None
        if k == 1:
            blocks = _blocks_to_rescan(
                torch.stack(block_top, dim=1)[failed].double(),
                kth[failed] - slack[failed] * _SAFETY,
                tuple(t[failed] for t in terms), lowp_keys, dtype,
                lowp_output)
        fb_val, fb_idx = _exact_rows(exact_fn, queries, failed, blocks)
        values[failed] = fb_val.to(values.dtype)
        indices[failed] = fb_idx
    if stats is not None:
        stats.add(num_q, failed.numel())
    return values, indices
