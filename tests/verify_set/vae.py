import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    def __init__(self, latent_dim=20, hidden=400):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden)
        self.fc4 = nn.Linear(hidden, 784)
        self.prior_mu = torch.zeros(latent_dim)
        self.prior_logvar = torch.zeros(latent_dim)

    def encode(self, x):
        h1 = F.dropout(F.relu(self.fc1(x)), 0.2)
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu - self.prior_mu, logvar - self.prior_logvar)
        return self.decode(z), mu, logvar


def save_losses(losses, path):
    pd.DataFrame({"loss": losses}).to_csv(path)
