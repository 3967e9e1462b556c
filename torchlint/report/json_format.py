"""A JSON array with ruff's field names, plus ``verification`` (null unless ``--verify``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from torchlint.engine import Finding
from torchlint.rules import ALL_RULES


def render(findings: Sequence[Finding]) -> str:
    return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"


def as_dict(f: Finding) -> dict:
    rule = ALL_RULES.get(f.code)
    return {
        "code": f.code,
        "message": f.message,
        "filename": os.path.abspath(f.path) if not f.path.startswith("<") else f.path,
        "location": {"row": f.line, "column": f.column},
        "end_location": {"row": f.end_line or f.line, "column": f.end_column or f.column},
        "noqa_row": f.line,
        "fix": None,
        "url": rule.url() if rule else None,
        "verification": None,
    }
