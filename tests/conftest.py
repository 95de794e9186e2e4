# Copyright (c) cribo-mm contributors. All rights reserved.
import os

import torch

# Two CPU cores on CI: keep intra-op threads predictable.
torch.set_num_threads(min(2, os.cpu_count() or 1))
