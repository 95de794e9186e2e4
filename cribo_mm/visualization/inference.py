# Copyright (c) cribo-mm contributors. All rights reserved.
"""Model side of the analysis tools: load a CrIBo checkpoint, produce two
seeded views of an image with the training pipeline, and cluster the
teacher's tokens exactly as in training.

Determinism: every image is processed with its own seed ``seed + index``
(``index`` = its position in the data set or file list): the view pipeline
draws from ``random``/NumPy/torch seeded with it, and the clustering starts
from K tokens drawn with a torch generator seeded with it. Each image is
clustered on its own (a batch of one), so a picture depends only on the
checkpoint, the image, its index and the seed, not on which other images are
drawn or on the batch size. (Training clusters a whole batch at once; the
only batch coupling there is the min-max normalisation of the cost, see
``cribo_method.md`` section 3.)
"""
import copy
import os.path as osp
import random
from collections import OrderedDict, abc
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from .cli import check_file, load_config

__all__ = [
    'TwoViewSample', 'ImageObjects', 'load_cribo_model', 'final_pos_alpha',
    'collect_image_infos', 'build_view_pipeline', 'prepare_sample',
    'seed_everything', 'clustering_init_index', 'cluster_images',
    'DatasetInfos'
]


class TwoViewSample(NamedTuple):
    """One image seen through the two-view pipeline.

    Attributes:
        index (int): Position in the data set / file list (seed offset).
        img_path (str): Source file.
        image (np.ndarray): Original image, uint8 RGB (H, W, 3).
        views (np.ndarray): The two augmented views as the model sees them,
            uint8 RGB (2, h, w, 3).
        plain_views (np.ndarray): The same crops and flips without the
            photometric augmentations, uint8 RGB (2, h, w, 3).
        crop_bbox (np.ndarray): float32 (2, 4) ``[x1, y1, x2, y2]`` per view.
        crop_flip (np.ndarray): bool (2,) horizontal flip per view.
        packed (dict): The pipeline output (``inputs``, ``data_samples``).
    """
    index: int
    img_path: str
    image: np.ndarray
    views: np.ndarray
    plain_views: np.ndarray
    crop_bbox: np.ndarray
    crop_flip: np.ndarray
    packed: dict


class ImageObjects(NamedTuple):
    """The teacher's clusters of one image (both views).

    Attributes:
        sample (TwoViewSample): The image and its views.
        labels (np.ndarray): int64 (2, G_h, G_w) cluster id of every patch
            of each view (lowest id on ties).
        valid (np.ndarray): bool (K,) cluster present in both views
            (an object).
        object_ids (np.ndarray): int64 (C,) ids of the valid clusters.
        objects_v1 (Tensor): (C, D) view-1 object representations (mean
            teacher token, as stored in the memory bank).
        objects_v2 (Tensor): (C, D) view-2 object representations.
    """
    sample: TwoViewSample
    labels: np.ndarray
    valid: np.ndarray
    object_ids: np.ndarray
    objects_v1: torch.Tensor
    objects_v2: torch.Tensor

    @property
    def num_clusters(self) -> int:
        """int: K."""
        return int(self.valid.shape[0])


def _strip_module_prefix(state: dict) -> OrderedDict:
    """A state dict without the ``module.`` prefix of a wrapped model,
    with its ``_metadata`` (per-module versions) renamed the same way.

    Args:
        state (dict): Parameter name -> tensor.

    Returns:
        OrderedDict: The renamed state dict.
    """

    def strip(name: str) -> str:
        if name == 'module':
            return ''
        return name[len('module.'):] if name.startswith('module.') else name

    out = OrderedDict((strip(k), v) for k, v in state.items())
    metadata = getattr(state, '_metadata', None)
    if metadata is not None:
        out._metadata = OrderedDict(
            (strip(k), v) for k, v in metadata.items())
    return out


def final_pos_alpha(cfg) -> Optional[float]:
    """lambda_pos at the end of training, from the config's ``CrIBoHook``.

    Args:
        cfg (mmengine.Config): Training config.

    Returns:
        float | None: ``pos_alpha[0]`` (the final value) of the hook, or
        None when the config has no such hook.
    """
    for hook in cfg.get('custom_hooks', None) or []:
        if hook.get('type') in ('CrIBoHook', 'cribo_mm.CrIBoHook'):
            alpha = hook.get('pos_alpha')
            if alpha is not None:
                return float(alpha[0])
    return None


def load_cribo_model(config: str,
                     checkpoint: Optional[str],
                     device: str = 'cpu',
                     cfg_options: Optional[Dict] = None,
                     pos_alpha: Optional[float] = None,
                     unsafe_load: bool = False):
    """Build the CrIBo model of a config and load a checkpoint into it.

    Args:
        config (str): Training config (``model`` must be a CrIBo model).
        checkpoint (str | None): mmengine checkpoint (Runner checkpoint or a
            dict with ``state_dict``), or None / 'none' for the initial
            random weights.
        device (str): Device. Defaults to 'cpu'.
        cfg_options (dict, optional): Config overrides (key=value).
        pos_alpha (float, optional): lambda_pos of the clustering; defaults
            to the final value of the config's ``CrIBoHook`` (else the
            config's ``object_pooling.pos_alpha``).
        unsafe_load (bool): Unpickle the checkpoint without restrictions
            (``--unsafe-load``; warns). False follows ``CRIBO_UNSAFE_LOAD``.
            See :func:`cribo_mm.utils.checkpoint_io.load_checkpoint_file`.

    Returns:
        tuple[nn.Module, mmengine.Config]: The model in eval mode and the
        config.

    Raises:
        FileNotFoundError: For a missing config or checkpoint.
        ValueError: If the model is not a CrIBo model or the checkpoint does
            not fit the config.
        cribo_mm.utils.checkpoint_io.CheckpointError: The checkpoint is
            refused by the loading policy or corrupt.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import checkpoint as mmengine_checkpoint

    import cribo_mm  # noqa: F401  (registers, applies compat fixes)
    from cribo_mm.registry import MODELS
    from cribo_mm.utils import register_all_modules
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    from cribo_mm.utils.weight_fit import CheckpointMismatchError

    check_file(config, 'config')
    if checkpoint is not None and str(checkpoint).lower() != 'none':
        check_file(checkpoint, 'checkpoint')
    else:
        checkpoint = None
    cfg = load_config(config, cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmpretrain') or 'mmpretrain')
    if 'model' not in cfg:
        raise ValueError(f'{config!r} has no model.')
    model = MODELS.build(cfg.model)
    for attr in ('object_pooling', 'memory_bank', 'teacher'):
        if not hasattr(model, attr):
            raise ValueError(
                f'{config!r} builds {type(model).__name__}, not a CrIBo '
                f'model (it has no {attr!r}).')
    if checkpoint is None:
        model.init_weights()
    else:
        loaded = load_checkpoint_file(
            checkpoint, unsafe=True if unsafe_load else None)
        state = loaded.get('state_dict', loaded) \
            if isinstance(loaded, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f'checkpoint {checkpoint!r} holds no state dict '
                             f'(a {type(loaded).__name__})')
        state = _strip_module_prefix(state)
        try:
            # mmengine's loader (with the fit check of cribo_mm's compat)
            mmengine_checkpoint.load_state_dict(
                model, state, strict=True, logger='silent')
        except (RuntimeError, CheckpointMismatchError) as e:
            raise ValueError(
                f'checkpoint {checkpoint!r} does not fit the model of '
                f'{config!r} (pass the config it was trained with, or the '
                f'same --cfg-options): {str(e)[:1500]}') from e
    if pos_alpha is None:
        pos_alpha = final_pos_alpha(cfg)
    if pos_alpha is not None:
        model.object_pooling.pos_alpha = float(pos_alpha)
    model.to(device)
    model.eval()
    return model, cfg


def _find_pipeline(dataset_cfg) -> Optional[list]:
    node = dataset_cfg
    while node is not None:
        if node.get('pipeline'):
            return list(node['pipeline'])
        node = node.get('dataset')
    return None


def collect_image_infos(cfg,
                        images: Optional[Sequence[str]] = None,
                        dataset_key: str = 'train_dataloader'
                        ) -> Tuple[List[Dict], list]:
    """Data infos of the images to draw, and the two-view pipeline.

    Args:
        cfg (mmengine.Config): Config holding ``<dataset_key>.dataset``
            with its pipeline (a training config or a data set config).
        images (Sequence[str], optional): Image files and/or folders
            (scanned recursively, sorted). When None, the images of the
            config's data set are used.
        dataset_key (str): Dataloader (or data set) key in ``cfg``.
            Defaults to 'train_dataloader'.

    Returns:
        tuple[Sequence[dict], list]: ``dict(img_path, sample_idx)`` per
        image (a lazy :class:`DatasetInfos` for a data set), and the
        pipeline config (a list of transform dicts).

    Raises:
        FileNotFoundError: For a missing image path.
        KeyError: If the config has no such data set or pipeline.
    """
    from cribo_mm.datasets import scan_images
    from cribo_mm.registry import DATASETS

    node = cfg.get(dataset_key)
    if node is None:
        raise KeyError(f'the config has no {dataset_key!r} (choose the key '
                       'with --dataset-key).')
    dataset_cfg = node.get('dataset', node)
    pipeline = _find_pipeline(dataset_cfg)
    if not pipeline:
        raise KeyError(f'{dataset_key}.dataset has no pipeline.')
    if images:
        paths = []
        for p in images:
            p = osp.expanduser(p)
            if osp.isdir(p):
                paths.extend(scan_images(p))
            elif osp.isfile(p):
                paths.append(p)
            else:
                raise FileNotFoundError(
                    f'image path {p!r} is neither a file nor a folder.')
        if not paths:
            raise FileNotFoundError(f'no image found in {list(images)}.')
        return [dict(img_path=p, sample_idx=i)
                for i, p in enumerate(paths)], pipeline
    dataset_cfg = copy.deepcopy(dataset_cfg)
    _strip_pipelines(dataset_cfg)
    return DatasetInfos(DATASETS.build(dataset_cfg)), pipeline


class DatasetInfos(abc.Sequence):
    """Lazy list of a data set's data infos (``sample_idx`` = index).

    Args:
        dataset: An mmengine data set (``get_data_info``, ``__len__``).
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f'image {index} is outside the {len(self)} '
                             'images.')
        info = self.dataset.get_data_info(index)
        info['sample_idx'] = index
        return info


def _strip_pipelines(node) -> None:
    while node is not None:
        if 'pipeline' in node:
            node['pipeline'] = []
        node = node.get('dataset')


def build_view_pipeline(pipeline_cfg: Sequence) -> list:
    """Build the transforms of a two-view pipeline config.

    Args:
        pipeline_cfg (Sequence): Transform dicts (or callables); must contain
            a ``CrIBoMultiView``.

    Returns:
        list: The transforms.
    """
    from cribo_mm.datasets.transforms import CrIBoMultiView
    from cribo_mm.registry import TRANSFORMS
    transforms = [
        TRANSFORMS.build(t) if isinstance(t, dict) else t
        for t in pipeline_cfg
    ]
    if not any(isinstance(t, CrIBoMultiView) for t in transforms):
        raise ValueError('the pipeline has no CrIBoMultiView (two views with '
                         'their crop geometry); use a CrIBo pretraining '
                         'data config.')
    return transforms


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy's and torch's global generators.

    Args:
        seed (int): Seed (taken modulo 2**32 for NumPy).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _plain_views(image_bgr: np.ndarray, boxes: np.ndarray,
                 flips: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    from cribo_mm.datasets.transforms import resize_crop
    views = []
    for (x1, y1, x2, y2), flip in zip(boxes, flips):
        x1, y1, x2, y2 = (int(round(float(v))) for v in (x1, y1, x2, y2))
        view = resize_crop(image_bgr, y1, x1, y2 - y1, x2 - x1, size,
                           'bicubic', 'cv2')
        if flip:
            view = view[:, ::-1]
        views.append(_rgb(view, bgr=True))
    return np.stack(views)


def _rgb(image, bgr: bool) -> np.ndarray:
    from .drawing import as_rgb_uint8
    return as_rgb_uint8(image, bgr=bgr)


def prepare_sample(transforms: Sequence, info: Dict, seed: int,
                   bgr: bool = True) -> TwoViewSample:
    """Run the two-view pipeline on one image with a fixed seed.

    Args:
        transforms (Sequence): Output of :func:`build_view_pipeline`.
        info (dict): Data info (``img_path``, ``sample_idx``).
        seed (int): Base seed; the image uses ``seed + sample_idx``.
        bgr (bool): The pipeline's images are BGR (mmcv convention, the
            data preprocessor converts). Defaults to True.

    Returns:
        TwoViewSample: The original image, both views and their geometry.
    """
    from cribo_mm.datasets.transforms import CrIBoMultiView
    index = int(info.get('sample_idx', 0))
    seed_everything(int(seed) + index)
    results = copy.deepcopy(info)
    original = None
    for t in transforms:
        if original is None and isinstance(t, CrIBoMultiView):
            original = np.array(results['img'], copy=True)
        results = t(results)
        if results is None:
            raise RuntimeError(
                f'the pipeline dropped {info.get("img_path")!r} (unreadable '
                'image?).')
    sample = results['data_samples']
    boxes = np.asarray(sample.crop_bbox, dtype=np.float32).reshape(-1, 4)
    flips = np.asarray(sample.crop_flip, dtype=bool).reshape(-1)
    if boxes.shape[0] != 2:
        raise ValueError(f'expected 2 views, got {boxes.shape[0]}')
    views = np.stack([_rgb(v, bgr) for v in results['inputs']])
    plain = _plain_views(original if bgr else original[..., ::-1], boxes,
                         flips, views.shape[1:3])
    return TwoViewSample(
        index=index,
        img_path=str(info.get('img_path', '')),
        image=_rgb(original, bgr),
        views=views,
        plain_views=plain,
        crop_bbox=boxes,
        crop_flip=flips,
        packed=results)


def clustering_init_index(num_tokens: int, num_clusters: int,
                          seed: int) -> torch.Tensor:
    """K distinct initial centroid tokens drawn with a seeded generator.

    Args:
        num_tokens (int): Tokens of an image over both views (2n).
        num_clusters (int): K.
        seed (int): Generator seed.

    Returns:
        Tensor: int64 (1, K).
    """
    if num_clusters > num_tokens:
        raise ValueError(f'{num_clusters} clusters for {num_tokens} tokens')
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_tokens, generator=gen)[:num_clusters][None]


@torch.no_grad()
def cluster_images(model,
                   samples: Sequence[TwoViewSample],
                   seed: int,
                   batch_size: int = 8,
                   progress=None) -> List[ImageObjects]:
    """Teacher clusters of every image, as in training.

    The teacher backbone encodes both views (in batches), the patch tokens
    of each image's two views are clustered jointly with
    ``model.object_pooling.cluster`` (starting from
    :func:`clustering_init_index` with ``seed + index``), and the objects
    (clusters present in both views) are pooled.

    Args:
        model (CrIBo): The model (eval mode).
        samples (Sequence[TwoViewSample]): Images with their views.
        seed (int): Base seed.
        batch_size (int): Images per teacher forward. Defaults to 8.
        progress (optional): Object with ``update()`` called per image.

    Returns:
        list[ImageObjects]: One per sample, in order.
    """
    from mmengine.dataset import default_collate
    device = next(model.parameters()).device
    patch = int(model.patch_size)
    num_clusters = int(model.object_pooling.num_clusters)
    out = []
    for start in range(0, len(samples), max(1, int(batch_size))):
        chunk = samples[start:start + max(1, int(batch_size))]
        batch = default_collate([s.packed for s in chunk])
        data = model.data_preprocessor(batch, False)
        inputs = data['inputs'] if isinstance(data, dict) else data[0]
        data_samples = (data['data_samples']
                        if isinstance(data, dict) else data[1])
        inputs = [v.to(device) for v in inputs]
        height, width = inputs[0].shape[-2:]
        grid = (height // patch, width // patch)
        tokens = model.teacher_backbone(torch.cat(inputs))[0]
        positions = model.token_positions(data_samples,
                                          (height, width)).to(device)
        num = len(chunk)
        for i, sample in enumerate(chunk):
            patches = tokens[[i, num + i], 1:]
            init = clustering_init_index(2 * patches.shape[1], num_clusters,
                                         int(seed) + sample.index)
            objects = model.object_pooling.cluster(
                patches, positions[:, i:i + 1], init_index=init.to(device))
            labels = np.stack([
                _labels_grid(objects.assignments[v, 0], grid)
                for v in range(2)
            ])
            valid = objects.valid.detach().cpu().numpy().astype(bool)
            out.append(
                ImageObjects(
                    sample=sample,
                    labels=labels,
                    valid=valid,
                    object_ids=np.flatnonzero(valid).astype(np.int64),
                    objects_v1=objects.centroids_v1.detach().float().cpu(),
                    objects_v2=objects.centroids_v2.detach().float().cpu()))
            if progress is not None:
                progress.update()
    return out


def _labels_grid(assignment: torch.Tensor, grid: Tuple[int, int]):
    """Lowest member cluster of every patch (-1 for none) as a grid."""
    from .masks import hard_labels, labels_to_grid
    member = (assignment > 0).cpu().numpy()
    labels = hard_labels(member)
    labels[~member.any(axis=-1)] = -1
    return labels_to_grid(labels, grid)
