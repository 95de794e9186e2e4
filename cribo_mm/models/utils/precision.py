# Copyright (c) cribo-mm contributors. All rights reserved.
"""Full-precision regions inside mixed-precision (autocast) training.

Pure torch. Mixed precision runs the networks under ``torch.autocast``
(fp16 on a GPU, bf16 on a CPU or GPU); the clustering, the memory-bank
matching, the losses and the centres must see float32 whatever the device.
"""
import contextlib
from typing import ContextManager, Union

import torch

__all__ = ['fp32_region']


def fp32_region(device: Union[torch.device, str]) -> ContextManager:
    """A context in which autocast is off for the type of ``device``.

    ``torch.autocast(device_type='cuda', enabled=False)`` leaves a CPU
    autocast region active (and the reverse), so the region is chosen from
    the device the tensors live on, not assumed to be CUDA. Inside it,
    operations run in the dtype of their inputs: callers cast their inputs
    with ``.float()``.

    Args:
        device (torch.device | str): The device of the tensors computed in
            the region.

    Returns:
        ContextManager: ``torch.autocast(device_type, enabled=False)``, or a
        no-op context for a device type without autocast support.
    """
    device_type = torch.device(device).type
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except (RuntimeError, ValueError):  # a device type without autocast
        return contextlib.nullcontext()
