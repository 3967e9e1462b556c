"""A small CNN whose residual add joins a 16-channel and a 32-channel tensor (TL304).

conv2 widens the features to 32 channels, but the skip still carries the 16-channel input and
there is no projection: the add cannot line up.
"""

import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        identity = x
        out = self.bn2(self.conv2(x))
        out = torch.relu(out + identity)
        return self.head(out.mean(dim=(2, 3)))


if __name__ == "__main__":
    print(SmallCNN()(torch.randn(2, 3, 32, 32)).shape)
