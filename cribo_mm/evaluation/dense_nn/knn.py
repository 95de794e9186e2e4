# Copyright (c) cribo-mm contributors. All rights reserved.
"""k-nearest-neighbour search by cosine similarity and label transfer.

The exact backend is chunked on both sides: queries are processed
``chunk_size`` at a time and, for each query chunk, the memory is scanned
``memory_chunk_size`` rows at a time while a running top-k is kept, so the
largest similarity block ever held is ``chunk_size x memory_chunk_size``
whatever the size of the memory. By default (``search_dtype='auto'``) the
exact backend scores the memory with a bf16 matmul (a cached bf16 copy of
the memory, half its size), re-scores the candidates in float32 and proves
that they are the float32 top-k, searching again in float32 where it cannot
(:func:`~cribo_mm.models.utils.exact_search.certified_topk`): neighbours and
similarities are those of the float32 search. The faiss backend
(``IndexFlatIP``, also exact) is optional and imported only when asked for.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from cribo_mm.models.utils.exact_search import (LowPrecisionKeys,
                                                SearchStats, block_bounds,
                                                certified_topk,
                                                resolve_search_dtype)
from .progress import make_progress

__all__ = [
    'ExactKNNIndex', 'FaissKNNIndex', 'build_knn_index', 'knn_search',
    'knn_label_transfer', 'faiss_available'
]

DEFAULT_CHUNK_SIZE = 1024
DEFAULT_MEMORY_CHUNK_SIZE = 32768


def faiss_available() -> bool:
    """Whether the optional faiss package can be imported.

    Returns:
        bool: True when ``import faiss`` succeeds.
    """
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class ExactKNNIndex:
    """Exact cosine-similarity search over a memory, chunked over the memory.

    Args:
        memory (Tensor): Memory features of shape (M, D). They are used in
            place (no copy), on their own device.
        memory_chunk_size (int): Memory rows compared at once.
            Defaults to 32768.
        normalize (bool): L2-normalise memory rows (chunk by chunk, on the
            fly) and queries. Set False when both are already normalised.
            Defaults to True.
        search_dtype (str): ``'bfloat16'``/``'float16'``: certified
            low-precision search (same result as float32, see the module
            docstring; keeps a low-precision copy of the memory),
            ``'float32'``: plain float32 search, ``'auto'``: bf16 on a CPU
            with native bf16 or a bf16-capable GPU, fp16 on older GPUs,
            else float32. Defaults to ``'auto'``.

    Attributes:
        stats (SearchStats): Queries searched in low precision and float32
            fallbacks so far.
    """

    def __init__(self,
                 memory: Tensor,
                 memory_chunk_size: int = DEFAULT_MEMORY_CHUNK_SIZE,
                 normalize: bool = True,
                 search_dtype: str = 'auto') -> None:
        if memory.dim() != 2 or memory.shape[0] == 0:
            raise ValueError('memory must be a non-empty (M, D) tensor, got '
                             f'shape {tuple(memory.shape)}')
        if memory_chunk_size <= 0:
            raise ValueError('memory_chunk_size must be positive')
        self.memory = memory
        self.memory_chunk_size = int(memory_chunk_size)
        self.normalize = normalize
        self.search_dtype = search_dtype
        self.fast_dtype = resolve_search_dtype(search_dtype, memory.device)
        self.stats = SearchStats()
        self._lowp: Optional[LowPrecisionKeys] = None

    def __len__(self) -> int:
        return self.memory.shape[0]

    @property
    def device(self) -> torch.device:
        """Device of the memory."""
        return self.memory.device

    def search(self, query: Tensor, k: int) -> Tuple[Tensor, Tensor]:
        """Top-k memory rows for every query row.

        Args:
            query (Tensor): Query features of shape (Q, D).
            k (int): Neighbours to return; clipped to M.

        Returns:
            tuple[Tensor, Tensor]: Similarities (Q, k') in descending order
            and memory indices (Q, k') (int64), both on the memory's device,
            with ``k' = min(k, M)``.
        """
        memory = self.memory
        query = query.to(device=memory.device, dtype=memory.dtype)
        if self.normalize:
            query = F.normalize(query, dim=-1)
        k = min(int(k), memory.shape[0])

        def exact(rows: Tensor, blocks=None) -> Tuple[Tensor, Tensor]:
            return self._search_fp32(rows, k, blocks)

        if self.fast_dtype is None:
            return exact(query)
        if self._lowp is None:
            self._lowp = LowPrecisionKeys(
                memory,
                self.fast_dtype,
                self.normalize,
                self.memory_chunk_size,
                cache=True)
        return certified_topk(
            query,
            self._lowp,
            k,
            exact,
            normalize=self.normalize,
            block_size=self.memory_chunk_size,
            dtype=self.fast_dtype,
            stats=self.stats)

    def _search_fp32(self,
                     query: Tensor,
                     k: int,
                     blocks: Optional[Sequence[int]] = None
                     ) -> Tuple[Tensor, Tensor]:
        """The float32 search: running top-k over memory blocks.

        Args:
            query (Tensor): (Q, D) queries, normalised where needed.
            k (int): Neighbours, at most M.
            blocks (Sequence[int], optional): Scan only these blocks (in
                increasing order); None scans all.

        Returns:
            tuple[Tensor, Tensor]: (Q, k) similarities and indices.
        """
        memory = self.memory
        best_sim = best_idx = None
        bounds = block_bounds(memory.shape[0], self.memory_chunk_size)
        if blocks is not None:
            bounds = [bounds[b] for b in blocks]
        for start, end in bounds:
            chunk = memory[start:end]
            if self.normalize:
                chunk = F.normalize(chunk, dim=-1)
            sim = query @ chunk.T  # (Q, m)
            sim, idx = sim.topk(min(k, chunk.shape[0]), dim=1)
            idx += start
            if best_sim is not None:
                sim = torch.cat([best_sim, sim], dim=1)
                idx = torch.cat([best_idx, idx], dim=1)
                sim, pos = sim.topk(min(k, sim.shape[1]), dim=1)
                idx = idx.gather(1, pos)
            best_sim, best_idx = sim, idx
        return best_sim, best_idx


class FaissKNNIndex:
    """Exact inner-product search with faiss (``IndexFlatIP``) on the CPU.

    Args:
        memory (Tensor): Memory features of shape (M, D); copied into the
            faiss index as float32.
        normalize (bool): L2-normalise memory and queries.
            Defaults to True.
    """

    def __init__(self, memory: Tensor, normalize: bool = True) -> None:
        try:
            import faiss
        except ImportError as err:  # pragma: no cover - depends on env
            raise ImportError(
                "backend='faiss' needs the optional faiss package "
                '(pip install faiss-cpu)') from err
        if memory.dim() != 2 or memory.shape[0] == 0:
            raise ValueError('memory must be a non-empty (M, D) tensor, got '
                             f'shape {tuple(memory.shape)}')
        self._faiss = faiss
        self.normalize = normalize
        data = memory.detach().to('cpu', torch.float32).contiguous().numpy()
        if normalize:
            data = data.copy()
            faiss.normalize_L2(data)
        self.index = faiss.IndexFlatIP(data.shape[1])
        self.index.add(data)
        self._len = data.shape[0]
        self.device = memory.device

    def __len__(self) -> int:
        return self._len

    def search(self, query: Tensor, k: int) -> Tuple[Tensor, Tensor]:
        """Top-k memory rows for every query row.

        Args:
            query (Tensor): Query features of shape (Q, D).
            k (int): Neighbours to return; clipped to M.

        Returns:
            tuple[Tensor, Tensor]: Similarities (Q, k') and indices (Q, k'),
            on the memory's device, with ``k' = min(k, M)``.
        """
        k = min(int(k), self._len)
        data = query.detach().to('cpu', torch.float32).contiguous().numpy()
        if self.normalize:
            data = data.copy()
            self._faiss.normalize_L2(data)
        sim, idx = self.index.search(data, k)
        return (torch.from_numpy(sim).to(self.device),
                torch.from_numpy(idx).to(self.device))


KNNIndex = Union[ExactKNNIndex, FaissKNNIndex]


def build_knn_index(memory: Tensor,
                    backend: str = 'exact',
                    memory_chunk_size: int = DEFAULT_MEMORY_CHUNK_SIZE,
                    normalize: bool = True,
                    search_dtype: str = 'auto') -> KNNIndex:
    """Build a search index over memory features.

    Args:
        memory (Tensor): Memory features of shape (M, D).
        backend (str): ``'exact'`` (chunked torch matmul) or ``'faiss'``.
            Defaults to ``'exact'``.
        memory_chunk_size (int): Memory rows per block for ``'exact'``.
            Defaults to 32768.
        normalize (bool): L2-normalise features. Defaults to True.
        search_dtype (str): Matmul format of the exact backend, see
            :class:`ExactKNNIndex`. Defaults to ``'auto'``.

    Returns:
        ExactKNNIndex | FaissKNNIndex: The index.
    """
    if backend == 'exact':
        return ExactKNNIndex(memory, memory_chunk_size, normalize,
                             search_dtype)
    if backend == 'faiss':
        return FaissKNNIndex(memory, normalize)
    raise ValueError(f"backend must be 'exact' or 'faiss', got {backend!r}")


def knn_search(query: Tensor,
               memory: Union[Tensor, KNNIndex],
               k: int,
               chunk_size: int = DEFAULT_CHUNK_SIZE,
               memory_chunk_size: int = DEFAULT_MEMORY_CHUNK_SIZE,
               backend: str = 'exact',
               normalize: bool = True,
               progress: bool = False,
               search_dtype: str = 'auto') -> Tuple[Tensor, Tensor]:
    """Cosine-similarity k-NN search, chunked over the queries.

    Args:
        query (Tensor): Query features of shape (Q, D).
        memory (Tensor | ExactKNNIndex | FaissKNNIndex): Memory features of
            shape (M, D), or an index from :func:`build_knn_index` (then
            ``backend``, ``memory_chunk_size`` and ``normalize`` are taken
            from it).
        k (int): Neighbours per query; clipped to M.
        chunk_size (int): Queries per chunk. Defaults to 1024.
        memory_chunk_size (int): Memory rows per block (exact backend).
            Defaults to 32768.
        backend (str): ``'exact'`` or ``'faiss'``. Defaults to ``'exact'``.
        normalize (bool): L2-normalise features. Defaults to True.
        progress (bool): Show a progress bar over query chunks.
            Defaults to False.
        search_dtype (str): Matmul format of the exact backend (ignored
            when ``memory`` is an index), see :class:`ExactKNNIndex`.
            Defaults to ``'auto'``.

    Returns:
        tuple[Tensor, Tensor]: Similarities (Q, k') sorted in descending
        order and int64 memory indices (Q, k'), with ``k' = min(k, M)``,
        on the memory's device.
    """
    if chunk_size <= 0:
        raise ValueError('chunk_size must be positive')
    index = memory if isinstance(memory, (ExactKNNIndex, FaissKNNIndex)) \
        else build_knn_index(memory, backend, memory_chunk_size, normalize,
                             search_dtype)
    num_query = query.shape[0]
    num_chunks = (num_query + chunk_size - 1) // chunk_size
    bar = make_progress(num_chunks, progress, 'k-NN retrieval')
    sims, idxs = [], []
    for start in range(0, num_query, chunk_size):
        sim, idx = index.search(query[start:start + chunk_size], k)
        sims.append(sim)
        idxs.append(idx)
        bar.update()
    bar.close()
    if not sims:
        k = min(int(k), len(index))
        return (torch.empty(0, k, device=index.device),
                torch.empty(0, k, dtype=torch.long, device=index.device))
    return torch.cat(sims), torch.cat(idxs)


def knn_label_transfer(query_feats: Tensor,
                       memory: Union[Tensor, KNNIndex],
                       memory_labels: Tensor,
                       k: int = 30,
                       temperature: float = 0.02,
                       chunk_size: int = DEFAULT_CHUNK_SIZE,
                       memory_chunk_size: int = DEFAULT_MEMORY_CHUNK_SIZE,
                       backend: str = 'exact',
                       normalize: bool = True,
                       progress: bool = False,
                       search_dtype: str = 'auto') -> Tensor:
    """Predict label distributions of queries from their nearest memory
    entries.

    For each query, the k memory entries with the highest cosine similarity
    ``s_1..s_k`` are found and their label distributions are averaged with
    weights ``softmax(s / temperature)``.

    Args:
        query_feats (Tensor): Query features of shape (Q, D).
        memory (Tensor | ExactKNNIndex | FaissKNNIndex): Memory features
            (M, D) or a prebuilt index over them.
        memory_labels (Tensor): Label distributions of the memory entries,
            shape (M, C).
        k (int): Number of neighbours. Defaults to 30.
        temperature (float): Softmax temperature. Defaults to 0.02.
        chunk_size (int): Queries per chunk. Defaults to 1024.
        memory_chunk_size (int): Memory rows per block (exact backend).
            Defaults to 32768.
        backend (str): ``'exact'`` or ``'faiss'`` (ignored when ``memory``
            is an index). Defaults to ``'exact'``.
        normalize (bool): L2-normalise features (ignored when ``memory`` is
            an index). Defaults to True.
        progress (bool): Show a progress bar. Defaults to False.
        search_dtype (str): Matmul format of the exact backend (ignored
            when ``memory`` is an index), see :class:`ExactKNNIndex`.
            Defaults to ``'auto'``.

    Returns:
        Tensor: float32 tensor of shape (Q, C), on the device of
        ``memory_labels``; rows are convex combinations of memory label
        rows.
    """
    if temperature <= 0:
        raise ValueError('temperature must be positive')
    index = memory if isinstance(memory, (ExactKNNIndex, FaissKNNIndex)) \
        else build_knn_index(memory, backend, memory_chunk_size, normalize,
                             search_dtype)
    if memory_labels.dim() != 2 or memory_labels.shape[0] != len(index):
        raise ValueError('memory_labels must have shape (M, C) with M = '
                         f'{len(index)}, got {tuple(memory_labels.shape)}')
    num_query = query_feats.shape[0]
    num_chunks = (num_query + chunk_size - 1) // chunk_size
    bar = make_progress(num_chunks, progress, 'k-NN label transfer')
    out = torch.empty(
        num_query,
        memory_labels.shape[1],
        dtype=torch.float32,
        device=memory_labels.device)
    for start in range(0, num_query, chunk_size):
        sim, idx = index.search(query_feats[start:start + chunk_size], k)
        weight = torch.softmax(sim.float() / temperature, dim=1)
        weight = weight.to(memory_labels.device)
        neigh = memory_labels[idx.to(memory_labels.device)].float()
        out[start:start + chunk_size] = torch.einsum('qk,qkc->qc', weight,
                                                     neigh)
        bar.update()
    bar.close()
    return out
