# Copyright (c) cribo-mm contributors. All rights reserved.
"""Dense nearest-neighbour retrieval evaluation (in-context segmentation).

Implements the protocol of Balazevic et al., "Towards In-context Scene
Understanding" (NeurIPS 2023), as re-implemented by open-hummingbird-eval:
a memory of L2-normalised training patch features with per-patch label
distributions, k-NN label transfer to every validation patch with
``softmax(similarity / T)`` weights, bilinear upsampling, argmax and mIoU.
"""
import dataclasses
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .backbone import extract_patch_features, infer_patch_size
from .data import (RetrievalSegDataset, collate_retrieval, dataset_meta,
                   format_fraction, subset_indices)
from .knn import build_knn_index, knn_label_transfer
from .labels import (StrayLabelCounter, patch_label_distributions,
                     sample_memory_patches)
from .metrics import IoUAccumulator
from .predict import predict_segmentation
from .progress import make_progress

__all__ = [
    'DenseNNSettings', 'PatchMemory', 'build_memory', 'evaluate_retrieval',
    'run_dense_nn_retrieval'
]


@dataclasses.dataclass
class DenseNNSettings:
    """Settings of the dense NN retrieval protocol.

    Args:
        img_size (int): Side of the square network input. Defaults to 512.
        patch_size (int, optional): Token stride; inferred from the
            backbone when None.
        k (int): Neighbours per query patch. Defaults to 30.
        temperature (float): Softmax temperature. Defaults to 0.02.
        memory_size (int, optional): Memory cap. When set, every training
            image contributes ``memory_size // (images * aug_epochs)``
            patches chosen by rarity-biased sampling; None keeps every
            labelled patch.
        aug_epochs (int): Passes over the training subset. Defaults to 2.
        augment (bool): Random flip and colour jitter on memory images.
            Defaults to True.
        memory_aug (str): Augmentation recipe of the memory images when
            ``augment``: ``'default'`` or ``'hbird'`` (open-hummingbird-
            eval's: joint random resized crop 0.5-2 of image and label,
            four weak colour jitters, no flip; see ``memory_aug.py``).
            Defaults to ``'default'``.
        ignore_mode (str): Memory label handling of ignored pixels,
            ``'exclude'`` (left out) or ``'class0'`` (counted as class 0,
            open-hummingbird-eval). Evaluation always ignores them.
            Defaults to ``'exclude'``.
        chunk_size (int): Query patches per search chunk. Defaults to 1024.
        memory_chunk_size (int): Memory rows per block (exact search).
            Defaults to 32768.
        backend (str): ``'exact'`` or ``'faiss'``. Defaults to ``'exact'``.
        search_dtype (str): Matmul format of the exact search:
            ``'bfloat16'``/``'float16'`` (certified, same neighbours as
            float32), ``'float32'`` or ``'auto'``. Defaults to ``'auto'``.
        batch_size (int): Images per forward pass. Defaults to 8.
        num_workers (int): Data-loader workers. Defaults to 0.
        device (str): Device for features and search. Defaults to ``'cpu'``.
        val_cache_bytes (int): Largest validation feature cache kept
            across runs (float32 features, so results do not change);
            0 disables it. Defaults to 4 GiB.
        resize_labels (bool): Resize (nearest) label maps whose size differs
            from their image's instead of stopping with an error naming
            the file. Defaults to False.
    """
    img_size: int = 512
    patch_size: Optional[int] = None
    k: int = 30
    temperature: float = 0.02
    memory_size: Optional[int] = None
    aug_epochs: int = 2
    augment: bool = True
    memory_aug: str = 'default'
    ignore_mode: str = 'exclude'
    chunk_size: int = 1024
    memory_chunk_size: int = 32768
    backend: str = 'exact'
    search_dtype: str = 'auto'
    batch_size: int = 8
    num_workers: int = 0
    device: str = 'cpu'
    val_cache_bytes: int = 4 << 30
    resize_labels: bool = False

    def to_dict(self) -> Dict:
        """Settings as a plain dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PatchMemory:
    """Memory of training patches.

    Args:
        feats (Tensor): L2-normalised features (M, D), float32, CPU.
        labels (Tensor): Label distributions (M, C), float32, CPU.
        num_images (int): Training images used.
        per_image (int, optional): Patches kept per image and epoch (None
            when uncapped).
        seconds (float): Build time.
    """
    feats: Tensor
    labels: Tensor
    num_images: int
    per_image: Optional[int]
    seconds: float

    def __len__(self) -> int:
        return self.feats.shape[0]


def _loader(dataset, settings: DenseNNSettings) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=settings.num_workers,
        collate_fn=collate_retrieval)


def _compact(label: Tensor) -> Tensor:
    """Store a label map as uint8 when its values fit."""
    if label.numel() and 0 <= int(label.min()) and int(label.max()) < 256:
        return label.to(torch.uint8)
    return label


def _patch_size(backbone: nn.Module, settings: DenseNNSettings) -> int:
    patch = settings.patch_size or infer_patch_size(backbone)
    if settings.img_size % patch:
        raise ValueError(f'img_size {settings.img_size} is not a multiple of '
                         f'the patch size {patch}')
    return patch


@torch.no_grad()
def build_memory(backbone: nn.Module,
                 seg_dataset,
                 indices: Sequence[int],
                 num_classes: int,
                 ignore_index: int,
                 settings: DenseNNSettings,
                 seed: int = 0,
                 progress: bool = True) -> PatchMemory:
    """Extract the patch memory of a set of training images.

    Args:
        backbone (nn.Module): Backbone in eval mode, on ``settings.device``.
        seg_dataset: Dataset from :func:`build_seg_dataset`.
        indices (Sequence[int]): Training images to use.
        num_classes (int): Number of classes C.
        ignore_index (int): Ignore label.
        settings (DenseNNSettings): Protocol settings.
        seed (int): Seed of the augmentation and of the patch sampling.
            Defaults to 0.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        PatchMemory: The memory.
    """
    start_time = time.perf_counter()
    patch = _patch_size(backbone, settings)
    grid = (settings.img_size // patch)**2
    epochs = max(1, int(settings.aug_epochs))
    if epochs > 1 and not settings.augment:
        warnings.warn('aug_epochs > 1 without augmentation repeats the same '
                      'patches')
    per_image = None
    if settings.memory_size:
        per_image = settings.memory_size // max(1, len(indices) * epochs)
        if per_image < 1:
            warnings.warn(f'memory_size {settings.memory_size} is smaller '
                          'than images x epochs; keeping 1 patch per image')
            per_image = 1
        per_image = min(per_image, grid)
    capacity = len(indices) * epochs * (per_image or grid)
    generator = torch.Generator().manual_seed(int(seed))
    strays = StrayLabelCounter(num_classes, ignore_index)
    feats_buf = labels_buf = None
    filled = 0
    bar = make_progress(
        len(indices) * epochs, progress,
        f'Memory: features of {len(indices)} images x {epochs} epoch(s)')
    for epoch in range(epochs):
        dataset = RetrievalSegDataset(
            seg_dataset,
            indices,
            settings.img_size,
            memory=True,
            augment=settings.augment,
            seed=seed,
            epoch=epoch,
            num_classes=num_classes if epoch == 0 else None,
            ignore_index=ignore_index,
            resize_labels=settings.resize_labels,
            memory_aug=settings.memory_aug)
        for batch in _loader(dataset, settings):
            strays.update_batch(batch)
            imgs = batch['img'].to(settings.device)
            feats = extract_patch_features(backbone, imgs, patch)
            feats = F.normalize(feats.flatten(1, 2).float(), dim=-1).cpu()
            dists = patch_label_distributions(
                torch.stack(batch['label']), num_classes, patch,
                ignore_index, settings.ignore_mode).flatten(1, 2)
            if per_image is not None:
                keep = sample_memory_patches(dists, per_image, generator)
                feats = feats.gather(
                    1, keep[..., None].expand(-1, -1, feats.shape[-1]))
                dists = dists.gather(
                    1, keep[..., None].expand(-1, -1, dists.shape[-1]))
                feats, dists = feats.flatten(0, 1), dists.flatten(0, 1)
            else:
                feats, dists = feats.flatten(0, 1), dists.flatten(0, 1)
                labelled = dists.sum(-1) > 0
                feats, dists = feats[labelled], dists[labelled]
            if feats_buf is None:
                feats_buf = torch.empty(capacity, feats.shape[-1])
                labels_buf = torch.empty(capacity, num_classes)
            feats_buf[filled:filled + len(feats)] = feats
            labels_buf[filled:filled + len(dists)] = dists
            filled += len(feats)
            bar.update(len(batch['index']))
    bar.close()
    strays.warn('Memory (training)')
    if not filled:
        raise RuntimeError('The memory is empty (no labelled patch)')
    return PatchMemory(feats_buf[:filled], labels_buf[:filled], len(indices),
                       per_image,
                       time.perf_counter() - start_time)


@torch.no_grad()
def evaluate_retrieval(backbone: nn.Module,
                       seg_dataset,
                       indices: Sequence[int],
                       memory: PatchMemory,
                       num_classes: int,
                       ignore_index: int,
                       settings: DenseNNSettings,
                       class_names: Optional[Sequence[str]] = None,
                       progress: bool = True,
                       keep_image_for: Sequence[int] = (),
                       on_prediction: Optional[Callable[[Dict],
                                                        None]] = None,
                       feature_cache: Optional[Dict] = None) -> Dict:
    """Segment validation images by k-NN retrieval from a memory.

    Args:
        backbone (nn.Module): Backbone in eval mode, on ``settings.device``.
        seg_dataset: Validation dataset from :func:`build_seg_dataset`.
        indices (Sequence[int]): Validation images to use.
        memory (PatchMemory): Memory from :func:`build_memory`.
        num_classes (int): Number of classes.
        ignore_index (int): Ignore label (left out of the metric).
        settings (DenseNNSettings): Protocol settings.
        class_names (Sequence[str], optional): Class names for the result.
        progress (bool): Show a progress bar. Defaults to True.
        keep_image_for (Sequence[int]): Positions (into ``indices``) whose
            prediction is passed to ``on_prediction``.
        on_prediction (Callable, optional): Called with a dict ``position``,
            ``index``, ``img_path``, ``image`` (RGB (H, W, 3) uint8),
            ``gt`` and ``pred`` ((H, W) int64 numpy arrays).
        feature_cache (dict, optional): A dict shared between calls with
            the same backbone and validation set; the first call fills it
            (features and labels, if they fit
            ``settings.val_cache_bytes``) and later calls skip the forward
            passes.

    Returns:
        dict: The metrics of :meth:`IoUAccumulator.compute` plus
        ``seconds``, ``search_seconds`` and ``query_patches_per_s``
        (retrieval throughput).
    """
    start_time = time.perf_counter()
    patch = _patch_size(backbone, settings)
    device = torch.device(settings.device)
    index = build_knn_index(
        memory.feats.to(device),
        settings.backend,
        settings.memory_chunk_size,
        normalize=False,
        search_dtype=settings.search_dtype)
    memory_labels = memory.labels.to(device)
    acc = IoUAccumulator(num_classes, ignore_index, class_names)
    keep = set(keep_image_for)
    cached = feature_cache is not None and feature_cache.get('complete')
    filling = feature_cache is not None and not cached and \
        not feature_cache.get('too_large')
    if filling:
        feature_cache.update(batches=[], bytes=0, complete=False)
    if cached:
        batches = feature_cache['batches']
    else:
        dataset = RetrievalSegDataset(
            seg_dataset,
            indices,
            settings.img_size,
            memory=False,
            keep_image_for=keep,
            num_classes=num_classes,
            ignore_index=ignore_index,
            resize_labels=settings.resize_labels)
        batches = _loader(dataset, settings)
    strays = StrayLabelCounter(num_classes, ignore_index)
    search_time, num_queries, position = 0.0, 0, 0
    bar = make_progress(
        len(indices), progress,
        f'Validation: features + retrieval for {len(indices)} images')
    for batch in batches:
        if cached:
            feats = batch['feats'].to(device)
        else:
            imgs = batch['img'].to(device)
            feats = extract_patch_features(backbone, imgs, patch).float()
            feats = F.normalize(feats, dim=-1)
            if filling:
                size = feats.numel() * 4 + sum(
                    lbl.numel() for lbl in batch['label'])
                if feature_cache['bytes'] + size > settings.val_cache_bytes:
                    filling = False
                    feature_cache.update(batches=[], bytes=0, too_large=True)
                else:
                    feature_cache['bytes'] += size
                    feature_cache['batches'].append(
                        dict(
                            feats=feats.cpu(),
                            label=[_compact(lbl) for lbl in batch['label']],
                            index=batch['index'],
                            img_path=batch['img_path'],
                            image=batch['image']))
        if not cached:
            strays.update_batch(batch)
        b, h, w, dim = feats.shape
        tic = time.perf_counter()
        scores = knn_label_transfer(
            feats.reshape(-1, dim),
            index,
            memory_labels,
            k=settings.k,
            temperature=settings.temperature,
            chunk_size=settings.chunk_size)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        search_time += time.perf_counter() - tic
        num_queries += b * h * w
        scores = scores.view(b, h, w, -1)
        for i, label in enumerate(batch['label']):
            label = label.long()
            pred = predict_segmentation(scores[i],
                                        label.shape[-2:]).cpu()
            acc.update(pred, label)
            if on_prediction is not None and position in keep and \
                    batch['image'][i] is not None:
                on_prediction(
                    dict(
                        position=position,
                        index=batch['index'][i],
                        img_path=batch['img_path'][i],
                        image=batch['image'][i],
                        gt=label.numpy(),
                        pred=pred.numpy()))
            position += 1
        bar.update(b)
    bar.close()
    strays.warn('Validation')
    if filling:
        feature_cache['complete'] = True
    result = acc.compute()
    result.update(
        seconds=time.perf_counter() - start_time,
        search_seconds=search_time,
        query_patches=num_queries,
        query_patches_per_s=num_queries / search_time if search_time else
        None)
    return result


def run_dense_nn_retrieval(backbone: nn.Module,
                           train_dataset,
                           val_dataset,
                           settings: DenseNNSettings,
                           fractions: Sequence[float] = (1.0, ),
                           seeds: Sequence[int] = (0, ),
                           val_indices: Optional[Sequence[int]] = None,
                           show_num: int = 0,
                           on_prediction: Optional[Callable] = None,
                           progress: bool = True,
                           log: Callable[[str], None] = print) -> Dict:
    """Run the protocol for every (training fraction, seed) pair.

    Args:
        backbone (nn.Module): Backbone (moved to ``settings.device`` and set
            to eval mode here).
        train_dataset: Memory-side dataset from :func:`build_seg_dataset`.
        val_dataset: Query-side dataset from :func:`build_seg_dataset`.
        settings (DenseNNSettings): Protocol settings.
        fractions (Sequence[float]): Training fractions in (0, 1].
            Defaults to (1.0,).
        seeds (Sequence[int]): Subset/augmentation/sampling seeds.
            Defaults to (0,).
        val_indices (Sequence[int], optional): Validation images (all when
            None).
        show_num (int): Number of validation images (the first ones) passed
            to ``on_prediction``. Defaults to 0.
        on_prediction (Callable, optional): Called as
            ``on_prediction(run, item)`` with the run dict (``fraction``,
            ``seed``) and the item of :func:`evaluate_retrieval`.
        progress (bool): Show progress bars. Defaults to True.
        log (Callable): Receives one-line status messages.
            Defaults to ``print``.

    Returns:
        dict: ``dataset`` (meta of the training set), ``val_dataset``
        (meta of the validation set), ``settings``, ``patch_size`` and
        ``runs``: one dict per pair with ``fraction``, ``fraction_label``
        (e.g. ``'1/128'``), ``seed``,
        ``num_train_images``, ``memory_entries``, ``memory_per_image``,
        ``memory_seconds`` and ``metrics``.
    """
    backbone = backbone.to(settings.device)
    backbone.eval()
    train_meta = dataset_meta(train_dataset)
    val_meta = dataset_meta(val_dataset)
    if train_meta['classes'] != val_meta['classes']:
        raise ValueError('training and validation classes differ: '
                         f"{train_meta['classes']} vs {val_meta['classes']}")
    num_classes = len(val_meta['classes'])
    if val_indices is None:
        val_indices = list(range(len(val_dataset)))
    patch = _patch_size(backbone, settings)
    cache = {} if len(fractions) * len(seeds) > 1 and \
        settings.val_cache_bytes > 0 else None
    runs: List[Dict] = []
    for fraction in fractions:
        for seed in seeds:
            indices = subset_indices(len(train_dataset), fraction, seed)
            log(f'[dense-nn] fraction {format_fraction(fraction)}, '
                f'seed {seed}: '
                f'{len(indices)} training images')
            memory = build_memory(backbone, train_dataset, indices,
                                  num_classes, train_meta['ignore_index'],
                                  settings, seed, progress)
            log(f'[dense-nn] memory: {len(memory)} patches '
                f'({memory.feats.shape[1]}-d) in {memory.seconds:.1f}s')
            run = dict(
                fraction=fraction,
                fraction_label=format_fraction(fraction),
                seed=seed)
            callback = None
            if on_prediction is not None and show_num > 0:

                def callback(item, _run=run):
                    on_prediction(_run, item)

            metrics = evaluate_retrieval(
                backbone,
                val_dataset,
                val_indices,
                memory,
                num_classes,
                val_meta['ignore_index'],
                settings,
                val_meta['classes'],
                progress,
                keep_image_for=range(min(show_num, len(val_indices))),
                on_prediction=callback,
                feature_cache=cache)
            log(f"[dense-nn] mIoU {metrics['mIoU']:.2f} "
                f"(aAcc {metrics['aAcc']:.2f}) in {metrics['seconds']:.1f}s")
            run.update(
                num_train_images=len(indices),
                memory_entries=len(memory),
                memory_per_image=memory.per_image,
                memory_seconds=memory.seconds,
                metrics=metrics)
            runs.append(run)
            del memory
    return dict(
        dataset=train_meta,
        val_dataset=val_meta,
        settings=settings.to_dict(),
        patch_size=patch,
        num_val_images=len(val_indices),
        runs=runs)
