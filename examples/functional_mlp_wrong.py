"""An MLP written functionally, with its weights kept as plain tensors.

Two silent bugs: the weights are not registered (TL101: not in parameters(), so the optimizer
never trains them; not in state_dict(), so they are never saved; left on the CPU by .to()), and
w1 is shaped (in, out) where F.linear wants (out, in) (TL304).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class FunctionalMLP(nn.Module):
    def __init__(self, d_in: int = 784, d_hidden: int = 256, d_out: int = 10):
        super().__init__()
        self.w1 = torch.randn(d_in, d_hidden) * 0.02
        self.b1 = torch.zeros(d_hidden)
        self.w2 = torch.randn(d_out, d_hidden) * 0.02
        self.b2 = torch.zeros(d_out)

    def forward(self, x):
        x = F.relu(F.linear(x, self.w1, self.b1))
        return F.linear(x, self.w2, self.b2)


if __name__ == "__main__":
    model = FunctionalMLP()
    print("trainable parameters:", sum(p.numel() for p in model.parameters()))
    print(model(torch.randn(2, 784)).shape)
