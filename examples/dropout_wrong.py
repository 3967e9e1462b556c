"""A classifier head that calls F.dropout without the training flag (TL201).

F.dropout defaults to training=True: after model.eval() it still drops half the features, so
validation accuracy is noisy and two predictions on the same input differ.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Head(nn.Module):
    def __init__(self, d_in: int = 128, n_classes: int = 10, p: float = 0.5):
        super().__init__()
        self.fc1 = nn.Linear(d_in, 64)
        self.fc2 = nn.Linear(64, n_classes)
        self.p = p

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=self.p)
        return self.fc2(x)


if __name__ == "__main__":
    model = Head().eval()
    x = torch.randn(2, 128)
    print("same input, same output in eval():", torch.equal(model(x), model(x)))
