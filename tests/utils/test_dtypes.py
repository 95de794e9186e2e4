# Copyright (c) cribo-mm contributors. All rights reserved.
import pytest
import torch

from cribo_mm.utils.dtypes import parse_float_dtype


@pytest.mark.parametrize('value,dtype', [
    ('bf16', torch.bfloat16), ('BFloat16', torch.bfloat16),
    ('torch.float16', torch.float16), ('half', torch.float16),
    ('float', torch.float32), (torch.float32, torch.float32),
])
def test_config_names(value, dtype):
    assert parse_float_dtype(value, 'x') is dtype


def test_refusals_name_the_setting_and_the_accepted_names():
    with pytest.raises(ValueError, match=r"memory_bank.dtype must be one of "
                       r"\[.*'bf16'.*\], got 'int8'"):
        parse_float_dtype('int8', 'memory_bank.dtype')
    with pytest.raises(ValueError) as info:
        parse_float_dtype('fp32', 'optim_wrapper.dtype',
                          (torch.float16, torch.bfloat16))
    assert "'fp32'" in str(info.value) and "'fp16'" in str(info.value)
    assert "'float32'" not in str(info.value).split('got')[0]
    with pytest.raises(ValueError):
        parse_float_dtype(torch.int8, 'x')
