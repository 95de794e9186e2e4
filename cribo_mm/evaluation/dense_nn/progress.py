# Copyright (c) cribo-mm contributors. All rights reserved.
"""Progress of the dense-NN tools: a bar on a terminal, plain lines when the
output is piped (see :mod:`cribo_mm.utils.progress`)."""
from cribo_mm.utils.progress import make_progress

__all__ = ['make_progress']
