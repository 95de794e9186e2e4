# Copyright (c) cribo-mm contributors. All rights reserved.
from .cribo_loss import CrIBoLoss

__all__ = ['CrIBoLoss']
