import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class LitMLP(pl.LightningModule):
    def __init__(self, in_features: int, hidden_sizes: list[int], num_classes: int = 10, p_drop: float = 0.2, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        dims = [in_features] + list(hidden_sizes)
        self.layers = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.hparams.p_drop)
        return self.head(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
