import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler


class TabularModel(nn.Module):
    def __init__(self, emb_szs: list[tuple[int, int]], n_cont: int, out_sz: int, layers: list[int], ps: float = 0.4, use_bn: bool = True):
        super().__init__()
        self.embeds = [nn.Embedding(ni, nf) for ni, nf in emb_szs]
        self.bn_cont = nn.BatchNorm1d(n_cont)
        n_emb = sum(nf for _, nf in emb_szs)
        sizes = [n_emb + n_cont] + layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], out_sz)
        self.ps = ps
        self.use_bn = use_bn

    def forward(self, x_cat, x_cont):
        x = torch.cat([e(x_cat[:, i].long().clamp(0, e.num_embeddings - 1)) for i, e in enumerate(self.embeds)], 1)
        x = torch.cat([x, self.bn_cont(x_cont) if self.use_bn else x_cont], 1)
        for layer in self.hidden:
            x = F.dropout(F.relu(layer(x)), self.ps)
        return self.out(x)


class AuxHead(nn.Module):
    def __init__(self, dim, n_classes, aux_loss=False):
        super().__init__()
        self.fc = nn.Linear(dim, n_classes)
        self.aux = nn.Linear(dim, n_classes)
        self.aux_loss = aux_loss

    def forward(self, x):
        out = self.fc(x)
        if self.aux_loss:
            out = out + self.aux(F.dropout(x, 0.5))
        return out


def preprocess(df: pd.DataFrame):
    scaler = StandardScaler()
    return np.asarray(scaler.fit_transform(df.values), dtype=np.float32)
