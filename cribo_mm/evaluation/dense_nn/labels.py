# Copyright (c) cribo-mm contributors. All rights reserved.
"""Patch-level label distributions, memory patch sampling and label-map
checks.

Pure tensor functions: no I/O, no OpenMMLab imports.
"""
import warnings
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    'LabelMapError', 'StrayLabelCounter', 'check_label_map',
    'patch_label_distributions', 'sample_memory_patches', 'stray_labels'
]


class LabelMapError(ValueError):
    """A label map that cannot be used as it is (wrong layout or size)."""


def check_label_map(label: Tensor,
                    image_size: Sequence[int],
                    filename: Optional[str] = None) -> None:
    """Check that a label map is a single-channel map of its image's size.

    Args:
        label (Tensor): The label map as loaded, expected (H, W).
        image_size (Sequence[int]): (H, W) of the image it belongs to.
        filename (str, optional): The label file, named in errors.

    Raises:
        LabelMapError: A multi-channel map (e.g. a colour-coded RGB PNG
            instead of a single-channel PNG of class indices), or a map
            whose size differs from the image's.
    """
    name = repr(filename) if filename else 'a label map'
    if label.dim() == 3:
        raise LabelMapError(
            f'{name} has {label.shape[-1]} channels (shape '
            f'{tuple(label.shape)}): a single-channel PNG of class indices '
            '(one value per pixel, the ignore index for unlabelled pixels) '
            'was expected, not a colour-coded image; convert the colours '
            'to class indices with the dataset palette.')
    if label.dim() != 2:
        raise LabelMapError(f'{name} has shape {tuple(label.shape)}; a (H, W) '
                            'map of class indices was expected.')
    if tuple(label.shape) != tuple(int(v) for v in image_size):
        raise LabelMapError(
            f'{name} is {label.shape[1]}x{label.shape[0]} (WxH) but its '
            f'image is {image_size[1]}x{image_size[0]}: labels must be '
            'annotated at the image resolution (pass resize_labels=True / '
            '--resize-labels to resize them with nearest neighbours).')


def stray_labels(label: Tensor, num_classes: int,
                 ignore_index: int) -> Dict[int, int]:
    """Label values that are neither a class nor the ignore index.

    Args:
        label (Tensor): Integer label map of any shape.
        num_classes (int): Classes are ``0 .. num_classes - 1``.
        ignore_index (int): Value of unlabelled pixels.

    Returns:
        dict[int, int]: Each stray value and its number of pixels (empty
        when the map is clean).
    """
    stray = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if not bool(stray.any()):
        return {}
    values, counts = torch.unique(label[stray], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


class StrayLabelCounter:
    """Totals of :func:`stray_labels` over a dataset, for one warning.

    Such pixels are left out of the memory and of the metric (as if they
    carried the ignore index), which is only right if the dataset is meant
    that way; the warning lets the user check.

    Args:
        num_classes (int): Number of classes.
        ignore_index (int): Ignore label.
    """

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.pixels: Dict[int, int] = {}
        self.files: Dict[int, str] = {}
        self.num_maps = 0

    def update(self, stray: Dict[int, int],
               filename: Optional[str] = None) -> None:
        """Add the stray values of one label map.

        Args:
            stray (dict[int, int]): From :func:`stray_labels`.
            filename (str, optional): The label file.
        """
        if not stray:
            return
        self.num_maps += 1
        for value, count in stray.items():
            self.pixels[value] = self.pixels.get(value, 0) + count
            self.files.setdefault(value, filename or '<unnamed>')

    def update_batch(self, batch: Dict) -> None:
        """Add the label maps of a loader batch (``stray_labels`` and
        ``seg_map_path`` lists)."""
        for stray, name in zip(batch['stray_labels'], batch['seg_map_path']):
            self.update(stray, name)

    def warn(self, which: str) -> None:
        """Warn once, naming ``which`` labels, if a stray value was seen."""
        message = self.message()
        if message:
            warnings.warn(f'{which} labels: {message}')

    def message(self) -> Optional[str]:
        """The warning text, or None when no stray value was seen."""
        if not self.pixels:
            return None
        values = ', '.join(
            f'{v} ({c} px, e.g. in {self.files[v]})'
            for v, c in sorted(self.pixels.items())[:10])
        more = (f' and {len(self.pixels) - 10} more values'
                if len(self.pixels) > 10 else '')
        return (f'{self.num_maps} label map(s) contain values that are '
                f'neither a class (0..{self.num_classes - 1}) nor the '
                f'ignore index {self.ignore_index}: {values}{more}. They '
                'are treated as ignored; check reduce_zero_label and the '
                'class list of the dataset config.')

_IGNORE_MODES = ('exclude', 'class0')


def patch_label_distributions(labels: Tensor,
                              num_classes: int,
                              patch_size: int,
                              ignore_index: int = 255,
                              ignore_mode: str = 'exclude') -> Tensor:
    """Share of each class's pixels in every patch of a label map.

    Pixels equal to ``ignore_index`` (and any value outside
    ``[0, num_classes)``) are handled according to ``ignore_mode``:

    - ``'exclude'``: they are left out; every patch is normalised by its
      number of valid pixels, and a patch without valid pixels gets an
      all-zero row.
    - ``'class0'``: they count as class 0 (the open-hummingbird-eval
      convention for memory labels), so every row sums to one.

    Args:
        labels (Tensor): Integer label maps of shape (B, H, W) or (H, W).
            ``H`` and ``W`` must be multiples of ``patch_size``.
        num_classes (int): Number of classes C.
        patch_size (int): Patch side p in pixels.
        ignore_index (int): Label value of unlabelled pixels.
            Defaults to 255.
        ignore_mode (str): ``'exclude'`` or ``'class0'``.
            Defaults to ``'exclude'``.

    Returns:
        Tensor: float32 tensor of shape (B, H/p, W/p, C) (no batch dim if
        the input had none) whose rows are the per-patch class shares.
    """
    if ignore_mode not in _IGNORE_MODES:
        raise ValueError(f'ignore_mode must be one of {_IGNORE_MODES}, '
                         f'got {ignore_mode!r}')
    squeeze = labels.dim() == 2
    if squeeze:
        labels = labels[None]
    if labels.dim() != 3:
        raise ValueError('labels must have shape (B, H, W) or (H, W), got '
                         f'{tuple(labels.shape)}')
    b, height, width = labels.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f'label size {(height, width)} is not a multiple of '
                         f'the patch size {patch_size}')
    h, w = height // patch_size, width // patch_size
    device = labels.device
    labels = labels.long()
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_mode == 'class0':
        labels = torch.where(valid, labels, torch.zeros_like(labels))
        valid = torch.ones_like(valid)
    rows = torch.arange(height, device=device) // patch_size
    cols = torch.arange(width, device=device) // patch_size
    patch_id = rows[:, None] * w + cols[None, :]  # (H, W)
    image_offset = torch.arange(b, device=device)[:, None, None] * (h * w)
    flat = (image_offset + patch_id[None]) * num_classes + labels
    total = b * h * w * num_classes
    flat = torch.where(valid, flat, total)  # invalid pixels: a spare bin
    counts = torch.bincount(flat.view(-1), minlength=total + 1)[:total]
    counts = counts.to(torch.float32).view(b, h, w, num_classes)
    dist = counts / counts.sum(-1, keepdim=True).clamp_min(1.0)
    return dist[0] if squeeze else dist


def sample_memory_patches(patch_labels: Tensor,
                          num_samples: int,
                          generator: Optional[torch.Generator] = None
                          ) -> Tensor:
    """Choose the same number of patches from every image, preferring rare
    classes.

    Follows the sampling of open-hummingbird-eval: for each image, let
    ``n_c`` be the number of its patches that contain class ``c``. The score
    of a patch is ``sum(n_c for c present in the patch) * u`` with ``u``
    drawn uniformly from [0, 1); the ``num_samples`` patches with the
    lowest scores are kept. Patches that contain no labelled pixel (an
    all-zero row) score ``+inf`` and are taken only when nothing else is
    left.

    Args:
        patch_labels (Tensor): Per-patch class shares of shape (B, P, C)
            or (B, h, w, C), as from :func:`patch_label_distributions`.
        num_samples (int): Patches to keep per image. When it is at least
            P, every patch is kept (in order).
        generator (torch.Generator, optional): Source of the uniform factors
            (must live on the device of ``patch_labels``).

    Returns:
        Tensor: int64 tensor of shape (B, min(num_samples, P)) with patch
        indices into the flattened (row-major) patch grid, ascending in each
        row.
    """
    if patch_labels.dim() == 4:
        patch_labels = patch_labels.flatten(1, 2)
    if patch_labels.dim() != 3:
        raise ValueError('patch_labels must have shape (B, P, C) or '
                         f'(B, h, w, C), got {tuple(patch_labels.shape)}')
    b, num_patches, _ = patch_labels.shape
    device = patch_labels.device
    if num_samples <= 0:
        raise ValueError(f'num_samples must be positive, got {num_samples}')
    if num_samples >= num_patches:
        return torch.arange(num_patches, device=device).expand(b, -1).clone()
    present = (patch_labels > 0).to(torch.float32)  # (B, P, C)
    patches_per_class = present.sum(1)  # (B, C)
    score = torch.bmm(present, patches_per_class[:, :, None])[..., 0]
    score = score * torch.rand(
        b, num_patches, generator=generator, device=device)
    score = torch.where(present.sum(-1) > 0, score,
                        torch.full_like(score, float('inf')))
    keep = score.topk(num_samples, dim=1, largest=False).indices
    return keep.sort(dim=1).values
