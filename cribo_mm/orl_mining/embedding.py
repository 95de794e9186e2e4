# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2 on a trained stage-1 network: image and RoI embeddings.

The command-line tools in ``tools/orl/`` wrap these functions:

* :func:`embed_images`: the ONLINE projector output (L2-normalised) of
  every image on Resize(256, short side) + CenterCrop(224);
* :func:`RoIEmbedder`: the ONLINE backbone's last stage, global average
  pooled and L2-normalised, of box crops resized to 224 (bilinear).

Both run the network in eval mode without gradients.
"""
import os.path as osp
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose

from cribo_mm.datasets.orl.boxes import crop_resize
from cribo_mm.datasets.transforms.loading import CrIBoLoadImageFromFile
from cribo_mm.registry import MODELS, TRANSFORMS

__all__ = [
    'RoIEmbedder', 'build_stage1_network', 'embed_images', 'image_list',
    'relative_names'
]


def build_stage1_network(cfg: Config,
                         checkpoint: Optional[str] = None,
                         device: str = 'cpu',
                         unsafe_load: Optional[bool] = None
                         ) -> torch.nn.Module:
    """Build the stage-1 model of ``cfg`` and load its ONLINE weights.

    Args:
        cfg (Config): Stage-1 config (BYOL or ORL model).
        checkpoint (str, optional): Runner checkpoint of that config (a
            trusted local file). Defaults to None: random weights drawn
            with ``torch.manual_seed(0)`` (global RNG state untouched), for
            tests.
        device (str): Defaults to 'cpu'.
        unsafe_load (bool, optional): Unpickle the checkpoint without
            restrictions (``--unsafe-load``); None follows
            ``CRIBO_UNSAFE_LOAD``. See
            :func:`cribo_mm.utils.checkpoint_io.load_checkpoint_file`.

    Returns:
        nn.Module: The model in eval mode.
    """
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    if checkpoint is not None:
        ckpt = load_checkpoint_file(checkpoint, unsafe=unsafe_load)
        state = ckpt.get('state_dict', ckpt)
        missing, _ = model.load_state_dict(state, strict=False)
        online = [k for k in missing if k.startswith(('backbone.', 'neck.'))]
        if online:
            raise KeyError(f'{checkpoint!r} lacks online weights, e.g. '
                           f'{online[:3]}')
    return model.to(device).eval()


def image_list(dataset) -> List[str]:
    """Image paths of a data set, in its index order.

    Args:
        dataset: An mmengine ``BaseDataset`` with ``img_path`` entries.

    Returns:
        list[str]: The paths.
    """
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def _normalise(model, imgs: List[np.ndarray], device) -> torch.Tensor:
    """uint8 BGR (H, W, 3) arrays -> the preprocessor's normalised batch."""
    batch = torch.stack([
        torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)
        for i in imgs
    ]).to(device)
    out = model.data_preprocessor(
        dict(inputs=[batch], data_samples=None), False)
    return out['inputs'][0]


@torch.no_grad()
def embed_images(
        model: torch.nn.Module,
        paths: Sequence[str],
        resize: int = 256,
        crop: int = 224,
        batch_size: int = 32,
        progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """L2-normalised ONLINE projector embeddings of centre crops.

    Args:
        model (nn.Module): Stage-1 model (``backbone``, ``neck``,
            ``data_preprocessor``).
        paths (Sequence[str]): Image files.
        resize (int): Short-side resize (bilinear). Defaults to 256.
        crop (int): Centre crop side. Defaults to 224.
        batch_size (int): Defaults to 32.
        progress (Callable, optional): Called with the number done.

    Returns:
        np.ndarray: Shape (N, D), float32.
    """
    pipeline = Compose([
        CrIBoLoadImageFromFile(),
        TRANSFORMS.build(
            dict(
                type='ResizeEdge',
                scale=resize,
                edge='short',
                interpolation='bilinear',
                backend='cv2')),
        TRANSFORMS.build(dict(type='CenterCrop', crop_size=crop)),
    ])
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(paths), batch_size):
        imgs = [
            pipeline(dict(img_path=p))['img']
            for p in paths[start:start + batch_size]
        ]
        x = _normalise(model, imgs, device)
        z = model.neck(model.backbone(x))[0]
        out.append(F.normalize(z.flatten(1), dim=1).cpu().numpy())
        if progress is not None:
            progress(min(start + batch_size, len(paths)))
    return np.concatenate(out).astype(np.float32)


class RoIEmbedder:
    """L2-normalised ONLINE backbone features of box crops.

    Call it as ``embedder(row, boxes)`` (the signature
    :func:`~cribo_mm.orl_mining.correspondence.build_correspondence`
    expects).

    Args:
        model (nn.Module): Stage-1 model.
        paths (Sequence[str]): Image files, by row.
        size (int): Crop side. Defaults to 224.
        batch_size (int): Crops per forward. Defaults to 64.
    """

    def __init__(self,
                 model: torch.nn.Module,
                 paths: Sequence[str],
                 size: int = 224,
                 batch_size: int = 64) -> None:
        self.model = model
        self.paths = list(paths)
        self.size = size
        self.batch_size = batch_size
        self.loader = CrIBoLoadImageFromFile()
        self.num_forwards = 0

    @torch.no_grad()
    def __call__(self, row: int,
                 boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """Embed the boxes of image ``row``.

        Args:
            row (int): Image row.
            boxes (Sequence): ``(x, y, w, h)`` boxes, shape (B, 4).

        Returns:
            np.ndarray: Shape (B, C), float32.
        """
        img = self.loader(dict(img_path=self.paths[row]))['img']
        device = next(self.model.parameters()).device
        out = []
        for s in range(0, len(boxes), self.batch_size):
            crops = [
                crop_resize(img, b, self.size)
                for b in boxes[s:s + self.batch_size]
            ]
            x = _normalise(self.model, crops, device)
            feat = self.model.backbone(x)[-1]
            self.num_forwards += len(crops)
            out.append(F.normalize(feat.mean(dim=(2, 3)), dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def relative_names(paths: Sequence[str], root: str) -> List[str]:
    """Paths relative to ``root`` (the image folder of the stage-3 data set).

    Args:
        paths (Sequence[str]): Image paths.
        root (str): Folder; '' keeps the paths as given.

    Returns:
        list[str]: The names.

    Raises:
        ValueError: An image outside ``root`` (its name would start with
            ``..``, which the stage-2 readers refuse).
    """
    if not root:
        return list(paths)
    names = [osp.relpath(p, root) for p in paths]
    outside = [p for p, n in zip(paths, names)
               if n == '..' or n.startswith('..' + osp.sep)]
    if outside:
        raise ValueError(
            f'--img-root {root!r}: {len(outside)} image(s) lie outside it, '
            f'e.g. {outside[0]!r}; give a folder that contains every image '
            "(or '' to write full paths)")
    return names
