"""The same block as an nn.Module whose forward adds the input back (the shortcut)."""

import torch
import torch.nn as nn


class ResidualBlock(nn.Module):
    def __init__(self, channels: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.body(x))


if __name__ == "__main__":
    print(ResidualBlock()(torch.randn(2, 16, 32, 32)).shape)
