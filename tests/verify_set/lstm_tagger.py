"""A part-of-speech tagger: embeddings, a two-layer LSTM that carries its state between batches."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from utils import load_vocab, batchify

EMBED_DIM = 64
HIDDEN_DIM = 128


class LSTMTagger(nn.Module):
    def __init__(self, vocab_size, tagset_size, embedding_dim=EMBED_DIM, hidden_dim=HIDDEN_DIM, num_layers=2, dropout=0.3):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)
        self.transitions = torch.randn(tagset_size, tagset_size)

    def init_hidden(self, batch_size):
        weight = next(self.parameters())
        return (weight.new_zeros(self.num_layers, batch_size, self.hidden_dim),
                weight.new_zeros(self.num_layers, batch_size, self.hidden_dim))

    def forward(self, sentence, hidden):
        embeds = self.word_embeddings(sentence)
        lstm_out, hidden = self.lstm(embeds, hidden)
        lstm_out = F.dropout(lstm_out, p=self.dropout)
        tag_space = self.hidden2tag(lstm_out)
        return F.log_softmax(tag_space, dim=-1) + self.transitions.diagonal(), hidden


def train(model, sentences, tags, epochs=5):
    vocab = load_vocab("vocab.txt")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in tqdm(range(epochs)):
        for batch in batchify(sentences, tags, vocab):
            optimizer.zero_grad()
            hidden = model.init_hidden(batch.size(0))
            scores, _ = model(batch.words, hidden)
            loss = F.nll_loss(scores.view(-1, scores.size(-1)), batch.tags.view(-1))
            loss.backward()
            optimizer.step()
