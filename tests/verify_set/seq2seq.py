import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from data_utils import Lang, tensorsFromPair

MAX_LENGTH = 10
SOS_token = 0


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size)
        self.attn_bias = torch.zeros(hidden_size)

    def forward(self, input, hidden):
        embedded = self.embedding(input)
        output, hidden = self.gru(embedded + self.attn_bias, hidden)
        return output, hidden

    def initHidden(self, batch_size=1):
        return torch.zeros(1, batch_size, self.hidden_size)


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, dropout_p=0.1, max_length=MAX_LENGTH):
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout_p = dropout_p
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attn = nn.Linear(hidden_size * 2, max_length)
        self.attn_combine = nn.Linear(hidden_size * 2, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, input, hidden):
        embedded = F.dropout(self.embedding(input), self.dropout_p)
        attn_weights = F.softmax(self.attn(torch.cat((embedded, hidden.expand_as(embedded)), -1)), dim=-1)
        output = torch.cat((embedded, attn_weights[..., : self.hidden_size]), -1)
        output, hidden = self.gru(F.relu(self.attn_combine(output)), hidden)
        return F.log_softmax(self.out(output), dim=-1), hidden
