# Copyright (c) cribo-mm contributors. All rights reserved.
"""A data loader that yields no batch is a configuration error.

With ``drop_last=True`` and fewer samples per process than one batch, an
epoch has zero iterations; mmengine 0.10.7 then fails much later with an
unrelated assertion (``epoch_length must be a positive integer`` while it
builds the schedulers) or trains nothing. :func:`check_loader_not_empty` is
applied to every data loader the Runner builds (see
:mod:`cribo_mm.utils.compat`) and says what is wrong and how to fix it.
"""
from torch.utils.data import DataLoader

__all__ = ['EmptyDataLoaderError', 'check_loader_not_empty']


class EmptyDataLoaderError(ValueError):
    """A data loader would yield no batch per epoch."""


def _try_len(obj):
    try:
        return len(obj)
    except TypeError:  # iterable datasets / samplers without a length
        return None


def check_loader_not_empty(loader: DataLoader) -> None:
    """Raise when an epoch of ``loader`` would have no batch.

    Args:
        loader (DataLoader): A built data loader.

    Raises:
        EmptyDataLoaderError: The dataset is empty, or smaller than one
            batch per process with ``drop_last=True``; the message names
            the dataset, its size, the batch size, the number of processes
            and the fix.
    """
    if not isinstance(loader, DataLoader):
        return
    num_batches = _try_len(loader)
    if num_batches is None or num_batches > 0:
        return
    dataset = loader.dataset
    name = type(dataset).__name__
    size = _try_len(dataset)
    if not size:
        raise EmptyDataLoaderError(
            f'The dataset {name} is empty (0 samples): check its data_root, '
            'ann_file and data_prefix.')
    batch_sampler = loader.batch_sampler
    batch_size = getattr(batch_sampler, 'batch_size', loader.batch_size)
    drop_last = getattr(batch_sampler, 'drop_last', loader.drop_last)
    per_process = _try_len(loader.sampler)
    if per_process is None:
        per_process = size
    processes = max(1, round(size / per_process)) if per_process else 1
    where = (f'{per_process} per process over {processes} processes'
             if processes > 1 else 'in one process')
    raise EmptyDataLoaderError(
        f'The dataset {name} has {size} samples ({where}), fewer than one '
        f'batch of {batch_size} with drop_last={drop_last}, so an epoch '
        'would have no iteration. Lower the batch size to at most '
        f'{per_process} (e.g. --cfg-options '
        f'train_dataloader.batch_size={max(1, per_process)}), set '
        'drop_last=False in the data loader config, or add data.')
