# Copyright (c) cribo-mm contributors. All rights reserved.
"""Segmentation data for dense retrieval, from MMSegmentation dataset
configs.

A dataset config is built with its own loading transforms only (every
pipeline step whose type starts with ``Load``), so file reading and label
handling (``reduce_zero_label``, ``label_map`` from a class subset, the
ignore index) stay MMSegmentation's; resizing, normalisation and the
optional training augmentation are done here.
"""
import copy
import importlib
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .backbone import IMAGENET_MEAN, IMAGENET_STD
from .labels import check_label_map, stray_labels
from .memory_aug import MEMORY_AUGMENTATIONS, hbird_augment

__all__ = [
    'build_seg_dataset', 'dataset_meta', 'subset_indices', 'parse_fraction',
    'format_fraction',
    'RetrievalSegDataset', 'collate_retrieval', 'DEFAULT_LOADING'
]

#: Loading steps used when a dataset config has none.
DEFAULT_LOADING = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations')
]


def _loading_steps(pipeline: Optional[Sequence[dict]]) -> List:
    """The ``Load*`` steps, with a pixel check before mmcv's image loader
    (which decodes any size: a decompression bomb would be decoded whole)."""
    from cribo_mm.datasets.transforms.loading import CrIBoCheckImageSize
    steps = []
    for step in pipeline or []:
        name = step.get('type') if isinstance(step, dict) else None
        if isinstance(name, str) and name.split('.')[-1].startswith('Load'):
            steps.append(copy.deepcopy(dict(step)))
    steps = steps or copy.deepcopy(DEFAULT_LOADING)
    for i, step in enumerate(steps):
        if step['type'].split('.')[-1] == 'LoadImageFromFile':
            steps.insert(
                i, CrIBoCheckImageSize(backend_args=step.get('backend_args')))
            break
    return steps


def _loading_only(cfg: dict) -> dict:
    """Copy of a dataset config whose pipelines keep only ``Load*`` steps.

    Dataset wrappers are handled: ``ConcatDataset``'s ``datasets`` are
    rewritten one by one and single-dataset wrappers (``RepeatDataset``,
    ``ClassBalancedDataset``) are unwrapped.
    """
    cfg = copy.deepcopy(dict(cfg))
    if 'datasets' in cfg:
        cfg['datasets'] = [_loading_only(d) for d in cfg['datasets']]
        return cfg
    if isinstance(cfg.get('dataset'), dict):
        return _loading_only(cfg['dataset'])
    cfg['pipeline'] = _loading_steps(cfg.get('pipeline'))
    cfg['test_mode'] = True  # never resample a failed image at random
    return cfg


def build_seg_dataset(dataset_cfg: dict, scope: str = 'mmseg'):
    """Build an MMSegmentation dataset that only loads images and labels.

    Args:
        dataset_cfg (dict): Dataset config as in an mmseg config's
            ``train_dataloader.dataset``; the dataset wrappers
            ``ConcatDataset``/``RepeatDataset`` are accepted.
        scope (str): Registry scope for unprefixed type names.
            Defaults to ``'mmseg'``.

    Returns:
        The built dataset. Its items are dicts holding ``img`` (H, W, 3)
        BGR uint8 and ``gt_seg_map`` (H, W), as produced by the loading
        transforms.
    """
    from mmengine.registry import DefaultScope

    import cribo_mm  # noqa: F401
    importlib.import_module('mmseg.datasets')
    try:  # cribo-mm's own segmentation datasets, when present
        importlib.import_module('cribo_mm.datasets')
    except ImportError:
        pass
    from mmseg.registry import DATASETS
    cfg = _loading_only(
        dataset_cfg.to_dict() if hasattr(dataset_cfg, 'to_dict') else
        dataset_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return DATASETS.build(cfg)


def _first_leaf(dataset):
    while True:
        if hasattr(dataset, 'datasets'):
            dataset = dataset.datasets[0]
        elif hasattr(dataset, 'dataset'):
            dataset = dataset.dataset
        else:
            return dataset


def dataset_meta(dataset) -> Dict:
    """Class names, palette and label conventions of a segmentation dataset.

    Args:
        dataset: An mmseg dataset (or a concatenation of them).

    Returns:
        dict: ``classes`` (list of str), ``palette`` (list of RGB triples or
        None), ``ignore_index`` (int), ``reduce_zero_label`` (bool),
        ``num_images`` (int) and ``type`` (class name).
    """
    meta = dict(dataset.metainfo)
    leaf = _first_leaf(dataset)
    palette = meta.get('palette')
    return dict(
        type=type(leaf).__name__,
        classes=[str(c) for c in meta['classes']],
        palette=[list(map(int, p)) for p in palette] if palette else None,
        ignore_index=int(getattr(leaf, 'ignore_index', 255)),
        reduce_zero_label=bool(getattr(leaf, 'reduce_zero_label', False)),
        num_images=len(dataset))


def parse_fraction(value: Union[str, float]) -> float:
    """Parse a training fraction such as ``'1/128'``, ``'0.5'`` or ``1``.

    Args:
        value (str | float): The fraction.

    Returns:
        float: A value in (0, 1].
    """
    frac = float(Fraction(str(value).strip()))
    if not 0 < frac <= 1:
        raise ValueError(f'fraction must be in (0, 1], got {value}')
    return frac


def format_fraction(value: float) -> str:
    """Write a fraction the way it is usually given (``'1/128'``, ``'1'``).

    Args:
        value (float): The fraction.

    Returns:
        str: ``p/q`` with a denominator up to 10**6, or an integer.
    """
    frac = Fraction(value).limit_denominator(10**6)
    return str(frac.numerator) if frac.denominator == 1 else str(frac)


def subset_indices(num_items: int, fraction: float, seed: int) -> List[int]:
    """A random subset of ``round(fraction * num_items)`` (at least one)
    items.

    The whole set (in order) is returned for ``fraction == 1``, whatever
    the seed.

    Args:
        num_items (int): Dataset size.
        fraction (float): Share of items to keep, in (0, 1].
        seed (int): Seed of the draw.

    Returns:
        list[int]: Sorted indices.
    """
    if fraction >= 1:
        return list(range(num_items))
    count = min(num_items, max(1, int(round(fraction * num_items))))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(num_items, count, replace=False))


def _to_size(size: Union[int, Sequence[int]]) -> tuple:
    if isinstance(size, int):
        return (size, size)
    return tuple(int(s) for s in size)


class RetrievalSegDataset(Dataset):
    """Items of a segmentation dataset, resized and normalised for a ViT.

    Args:
        seg_dataset: Dataset from :func:`build_seg_dataset`.
        indices (Sequence[int], optional): Items to use (default: all).
        img_size (int | Sequence[int]): Network input (H, W).
            Defaults to 512.
        memory (bool): If True the label is resized (nearest) to
            ``img_size`` alongside the image (memory side); otherwise the
            original label is returned (query side). Defaults to False.
        augment (bool): Random horizontal flip (p = 0.5) and colour jitter
            (p = 0.8; brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1,
            in random order), drawn from ``(seed, epoch, index)`` so results
            do not depend on data-loader workers. Defaults to False.
        seed (int): Augmentation seed. Defaults to 0.
        epoch (int): Augmentation epoch. Defaults to 0.
        keep_image_for (Sequence[int], optional): Positions (into
            ``indices``) for which the original RGB image is also returned
            (for visualisation).
        num_classes (int, optional): When given, label values that are
            neither a class nor ``ignore_index`` are counted per item
            (``stray_labels``) for :class:`StrayLabelCounter`.
        ignore_index (int): Ignore label. Defaults to 255.
        resize_labels (bool): Resize (nearest) a label map whose size
            differs from its image's to the image size instead of raising
            :class:`LabelMapError`. Defaults to False.
        memory_aug (str): Memory augmentation recipe when ``augment`` and
            ``memory``: ``'default'`` (flip and strong colour jitter on the
            resized image) or ``'hbird'`` (open-hummingbird-eval's recipe,
            :func:`~.memory_aug.hbird_augment`). Defaults to 'default'.

    Raises:
        LabelMapError: (on item access) a label map with several channels
            (e.g. a colour-coded RGB PNG) or, unless ``resize_labels``, of
            another size than its image; the label file is named.
    """

    def __init__(self,
                 seg_dataset,
                 indices: Optional[Sequence[int]] = None,
                 img_size: Union[int, Sequence[int]] = 512,
                 memory: bool = False,
                 augment: bool = False,
                 seed: int = 0,
                 epoch: int = 0,
                 keep_image_for: Optional[Sequence[int]] = None,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255,
                 resize_labels: bool = False,
                 memory_aug: str = 'default') -> None:
        if memory_aug not in MEMORY_AUGMENTATIONS:
            raise ValueError(f'memory_aug must be one of '
                             f'{MEMORY_AUGMENTATIONS}, got {memory_aug!r}')
        self.memory_aug = memory_aug
        self.seg_dataset = seg_dataset
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.resize_labels = resize_labels
        self.indices = list(range(len(seg_dataset))) if indices is None \
            else list(indices)
        self.img_size = _to_size(img_size)
        self.memory = memory
        self.augment = augment
        self.seed = seed
        self.epoch = epoch
        self.keep_image_for = set(keep_image_for or ())
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.indices)

    @staticmethod
    def _jitter(image: Tensor, rng: np.random.Generator) -> Tensor:
        """Colour jitter (torchvision's PIL path) of a (3, H, W) float
        image in [0, 255]."""
        import torchvision.transforms.functional as TF
        from PIL import Image
        pil = Image.fromarray(
            image.round().clamp(0, 255).to(torch.uint8).permute(1, 2,
                                                                0).numpy())
        ops = [
            lambda x: TF.adjust_brightness(x, rng.uniform(0.6, 1.4)),
            lambda x: TF.adjust_contrast(x, rng.uniform(0.6, 1.4)),
            lambda x: TF.adjust_saturation(x, rng.uniform(0.8, 1.2)),
            lambda x: TF.adjust_hue(x, rng.uniform(-0.1, 0.1)),
        ]
        for i in rng.permutation(len(ops)):
            pil = ops[i](pil)
        return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0,
                                                                1).float()

    def __getitem__(self, pos: int) -> Dict:
        """One item.

        Returns:
            dict: ``img`` (3, H', W') normalised float32, ``label`` int64
            ((H', W') for the memory, the original (H, W) otherwise),
            ``index`` (dataset index), ``img_path`` (str or None),
            ``seg_map_path`` (str or None), ``stray_labels`` (dict of stray
            value to pixel count, empty without ``num_classes``) and, if
            requested, ``image`` (original (H, W, 3) RGB uint8 array).
        """
        index = self.indices[pos]
        results = self.seg_dataset[index]
        if 'img' not in results or 'gt_seg_map' not in results:
            raise KeyError('the loading transforms must produce "img" and '
                           f'"gt_seg_map"; got keys {sorted(results)}')
        img = np.asarray(results['img'])
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        rgb = np.ascontiguousarray(img[..., 2::-1])  # BGR -> RGB
        label = torch.from_numpy(
            np.asarray(results['gt_seg_map']).astype(np.int64))
        label_file = results.get('seg_map_path') or results.get('img_path')
        try:
            check_label_map(label, img.shape[:2], label_file)
        except ValueError:
            if not (self.resize_labels and label.dim() == 2):
                raise
            label = F.interpolate(
                label[None, None].float(), size=img.shape[:2],
                mode='nearest')[0, 0].long()
        stray = {} if self.num_classes is None else stray_labels(
            label, self.num_classes, self.ignore_index)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float()
        hbird = self.augment and self.memory and self.memory_aug == 'hbird'
        if hbird:  # crops from the original image, see memory_aug.py
            image, label = hbird_augment(
                image, label, self.img_size,
                np.random.default_rng([self.seed, self.epoch, index]))
        if tuple(image.shape[1:]) != self.img_size:
            image = F.interpolate(
                image[None],
                size=self.img_size,
                mode='bilinear',
                align_corners=False,
                antialias=True)[0].clamp_(0, 255)
        out_label = label
        if self.memory and tuple(label.shape) != self.img_size:
            out_label = F.interpolate(
                label[None, None].float(), size=self.img_size,
                mode='nearest')[0, 0].long()
        if self.augment and not hbird:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if rng.random() < 0.5:
                image = image.flip(-1)
                out_label = out_label.flip(-1)
            if rng.random() < 0.8:
                image = self._jitter(image, rng)
        item = dict(
            img=(image - self._mean) / self._std,
            label=out_label,
            index=index,
            img_path=results.get('img_path'),
            seg_map_path=results.get('seg_map_path'),
            stray_labels=stray)
        if pos in self.keep_image_for:
            item['image'] = rgb
        return item


def collate_retrieval(batch: List[Dict]) -> Dict:
    """Stack images; keep labels and metadata as lists.

    Args:
        batch (list[dict]): Items of :class:`RetrievalSegDataset`.

    Returns:
        dict: ``img`` (B, 3, H, W) and lists ``label``, ``index``,
        ``img_path``, ``seg_map_path``, ``stray_labels`` and ``image``
        (None where not kept).
    """
    return dict(
        img=torch.stack([b['img'] for b in batch]),
        label=[b['label'] for b in batch],
        index=[b['index'] for b in batch],
        img_path=[b['img_path'] for b in batch],
        seg_map_path=[b.get('seg_map_path') for b in batch],
        stray_labels=[b.get('stray_labels') or {} for b in batch],
        image=[b.get('image') for b in batch])
