"""The same MLP with its weights registered as nn.Parameter, shaped (out, in) for F.linear."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class FunctionalMLP(nn.Module):
    def __init__(self, d_in: int = 784, d_hidden: int = 256, d_out: int = 10):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(d_hidden, d_in) * 0.02)
        self.b1 = nn.Parameter(torch.zeros(d_hidden))
        self.w2 = nn.Parameter(torch.randn(d_out, d_hidden) * 0.02)
        self.b2 = nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        x = F.relu(F.linear(x, self.w1, self.b1))
        return F.linear(x, self.w2, self.b2)


if __name__ == "__main__":
    model = FunctionalMLP()
    print("trainable parameters:", sum(p.numel() for p in model.parameters()))
    print(model(torch.randn(2, 784)).shape)
