"""Reporters: findings to text for a terminal, or to a machine format. One module per format."""

from __future__ import annotations

from torchlint.report import json_format, text

FORMATS = {"text": text.render, "json": json_format.render}
