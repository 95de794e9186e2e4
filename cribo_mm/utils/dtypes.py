# Copyright (c) cribo-mm contributors. All rights reserved.
"""Floating-point format names as configs write them."""
from typing import Sequence, Union

import torch

__all__ = ['FLOAT_DTYPE_NAMES', 'parse_float_dtype']

#: Config names of the three floating formats (lower case).
FLOAT_DTYPE_NAMES = {
    'float32': torch.float32,
    'fp32': torch.float32,
    'float': torch.float32,
    'float16': torch.float16,
    'fp16': torch.float16,
    'half': torch.float16,
    'bfloat16': torch.bfloat16,
    'bf16': torch.bfloat16,
}


def parse_float_dtype(value: Union[str, torch.dtype], setting: str,
                      allowed: Sequence[torch.dtype] = (torch.float32,
                                                        torch.float16,
                                                        torch.bfloat16)
                      ) -> torch.dtype:
    """A dtype from a config value (``'bf16'``, ``'float16'``,
    ``torch.float32``, ``'torch.bfloat16'``, any case).

    Args:
        value (str | torch.dtype): The configured value.
        setting (str): The setting's name, for the error message.
        allowed (Sequence[torch.dtype]): The formats this setting accepts.

    Returns:
        torch.dtype: One of ``allowed``.

    Raises:
        ValueError: Naming ``setting``, the value and the accepted names.
    """
    if isinstance(value, torch.dtype):
        dtype = value
    else:
        key = str(value).lower()
        key = key[len('torch.'):] if key.startswith('torch.') else key
        dtype = FLOAT_DTYPE_NAMES.get(key)
    if dtype not in allowed:
        names = sorted(name for name, d in FLOAT_DTYPE_NAMES.items()
                       if d in allowed)
        raise ValueError(f'{setting} must be one of {names}, got {value!r}')
    return dtype
