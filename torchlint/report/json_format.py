"""A JSON array with ruff's field names, plus ``verification`` (null unless ``--verify``). In a
notebook, ``cell`` is the cell's number and the rows count in it (as ruff's); null in a .py file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from torchlint.finding import Finding, TextEdit, TextFix
from torchlint.rules import ALL_RULES

if TYPE_CHECKING:
    from torchlint.verify.runner import Verification


def render(
    findings: Sequence[Finding],
    *,
    unsafe: bool = False,
    fixed: int = 0,
    verifications: Mapping[Finding, Verification] | None = None,
) -> str:
    """Each finding's ``fix`` carries its applicability, so ``unsafe`` and ``fixed`` (the text
    summary's) change nothing here. ``verification`` is null unless ``verifications`` (``--verify``)
    has the finding."""
    verifications = verifications or {}
    return json.dumps([as_dict(f, verifications.get(f)) for f in findings], indent=2) + "\n"


def as_dict(f: Finding, verification: Verification | None = None) -> dict:
    rule = ALL_RULES.get(f.code)
    return {
        "code": f.code,
        "message": f.message,
        "filename": os.path.abspath(f.path) if not f.path.startswith("<") else f.path,
        "location": {"row": f.line, "column": f.column},
        "end_location": {"row": f.end_line or f.line, "column": f.end_column or f.column},
        "noqa_row": f.line,
        "cell": f.cell,
        "fix": fix_dict(f.fix),
        "url": rule.url() if rule else None,
        "verification": verification_dict(verification),
    }


def verification_dict(v: Verification | None) -> dict | None:
    if v is None:
        return None
    return {"verdict": v.verdict, "evidence": v.evidence, "device": v.device, "seconds": v.seconds}


def fix_dict(fix: TextFix | None) -> dict | None:
    """ruff's ``fix``: applicability, message and the text edits (1-based columns), those adding
    the imports the fix needs included."""
    if fix is None:
        return None
    return {
        "applicability": fix.applicability,
        "message": fix.message,
        "edits": [edit_dict(e) for e in fix.all_edits],
    }


def edit_dict(e: TextEdit) -> dict:
    out = {
        "content": e.content,
        "location": {"row": e.line, "column": e.column},
        "end_location": {"row": e.end_line, "column": e.end_column},
    }
    if e.cell is not None:
        out["cell"] = e.cell
    return out
