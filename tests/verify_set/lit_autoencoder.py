import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class ConvAutoencoder(L.LightningModule):
    def __init__(self, base_channels: int = 16, latent_dim: int = 32):
        super().__init__()
        self.save_hyperparameters()
        self.example_input_array = torch.zeros(1, 3, 32, 32)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, base_channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(base_channels, 2 * base_channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(2 * 8 * 8 * base_channels, latent_dim),
        )
        self.decoder_fc = nn.Linear(latent_dim, 2 * 8 * 8 * base_channels)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * base_channels, base_channels, 3, stride=2, padding=1, output_padding=1), nn.GELU(),
            nn.ConvTranspose2d(base_channels, 3, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),
        )

    def forward(self, x):
        z = F.dropout(self.encoder(x), 0.1)
        h = self.decoder_fc(z).view(-1, 2 * self.hparams.base_channels, 8, 8)
        return self.decoder(h)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        loss = F.mse_loss(self(x), x)
        self.log("loss", loss)
        return loss


class ConfiguredHead(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.hidden, cfg.classes)
        self.p = cfg.dropout

    def forward(self, x):
        return self.fc(F.dropout(x, self.p))
