"""Reporters: findings to text for a terminal, or to a machine format. One module per format."""

from __future__ import annotations

from torchlint.report import full, github, json_format, sarif, text

# ``full`` is the default, as ruff's; ``text`` is the old name of ``concise``, kept for scripts.
FORMATS = {
    "full": full.render,
    "concise": text.render,
    "text": text.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "github": github.render,
}
DEFAULT_FORMAT = "full"
