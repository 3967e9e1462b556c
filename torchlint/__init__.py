"""torchlint: a linter for the PyTorch bugs that do not crash."""

__version__ = "0.1.0"
