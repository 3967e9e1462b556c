"""Reporters: findings to text for a terminal, or to a machine format. One module per format."""

from __future__ import annotations

from torchlint.report import github, json_format, sarif, text

FORMATS = {"text": text.render, "json": json_format.render, "sarif": sarif.render, "github": github.render}
