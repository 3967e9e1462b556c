"""A ResNet basic block written as nn.Sequential (TL301).

The layers are right but the skip connection is gone: nn.Sequential only chains its children, so
the block computes relu(bn(conv(relu(bn(conv(x)))))) and never adds x back. Deep stacks of these
train worse than the residual network they were meant to be.
"""

import torch
import torch.nn as nn


class ResidualBlock(nn.Sequential):
    def __init__(self, channels: int = 16):
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )


if __name__ == "__main__":
    print(ResidualBlock()(torch.randn(2, 16, 32, 32)).shape)
