"""SARIF 2.1.0, as GitHub code scanning reads it: one run whose driver lists every rule torchlint
knows, and one result per finding located by a URI relative to the repository root (``%SRCROOT%``).
Columns count characters (``columnKind``: ``unicodeCodePoints``), 1-based; end columns exclusive."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from torchlint import __version__
from torchlint.finding import Finding
from torchlint.notebook import cell_prefix, file_region
from torchlint.report.json_format import verification_dict
from torchlint.rules import ALL_RULES, DOCS_URL, PARSE_ERROR_CODE, PARSE_ERROR_NAME, PARSE_ERROR_SUMMARY, rule_doc

if TYPE_CHECKING:
    from torchlint.verify.runner import Verification

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/torchlint/torchlint"
SRCROOT = "%SRCROOT%"


def level(code: str) -> str:
    """A file that cannot be checked is an error; every rule's finding is a warning."""
    return "error" if code == PARSE_ERROR_CODE else "warning"


def repository_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: the cwd) holding ``.git``, else ``start``."""
    start = (start or Path.cwd()).resolve()
    return next((d for d in (start, *start.parents) if (d / ".git").exists()), start)


def relative_path(path: str, root: Path) -> str | None:
    """``path`` relative to ``root`` with forward slashes, or None when it lies outside."""
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def render(
    findings: Sequence[Finding],
    *,
    unsafe: bool = False,
    fixed: int = 0,
    verifications: Mapping[Finding, Verification] | None = None,
    root: Path | None = None,
) -> str:
    """``unsafe`` and ``fixed`` change nothing here; a ``--verify`` verdict goes in the result's
    ``properties``. ``root``: the repository root URIs are relative to (default: found from the cwd)."""
    root = repository_root(root)
    rules = rule_descriptors()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    verifications = verifications or {}
    notebooks: dict = {}
    run = {
        "tool": {
            "driver": {
                "name": "torchlint",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": [result(f, index, root, verifications.get(f), notebooks) for f in findings],
    }
    log = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def rule_descriptors() -> list[dict]:
    """A ``reportingDescriptor`` for TL000 and then each rule, in code order."""
    known = [(PARSE_ERROR_CODE, PARSE_ERROR_NAME, PARSE_ERROR_SUMMARY, True)]
    known += [(code, rule.name, rule.summary, rule.default_enabled) for code, rule in ALL_RULES.items()]
    return [
        {
            "id": code,
            "name": name,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": what_it_finds(code) or summary},
            "helpUri": DOCS_URL.format(code=code, name=name),
            "defaultConfiguration": {"level": level(code), "enabled": enabled},
        }
        for code, name, summary, enabled in known
    ]


def what_it_finds(code: str) -> str:
    """The text of the "What it finds" section of the rule's page, its paragraphs each on one line."""
    page = rule_doc(code)
    if page is None:
        return ""
    section = re.search(r"^## What it finds\s*\n(.*?)(?=^## |\Z)", page.read_text(encoding="utf-8"), re.M | re.S)
    if section is None:
        return ""
    paragraphs = re.split(r"\n\s*\n", section.group(1).strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def result(f: Finding, index: Mapping[str, int], root: Path, verification: Verification | None, notebooks: dict | None = None) -> dict:
    """One result. A finding in a notebook points at its line in the notebook's file, and its
    message starts with the cell and the line in it."""
    relative = relative_path(f.path, root)
    if relative is None:
        artifact = {"uri": Path(f.path).resolve().as_uri()}
    else:
        artifact = {"uri": quote(relative, safe="/"), "uriBaseId": SRCROOT}
    # a finding without an end (TL000) marks one character
    line, column, end_line, end_column = file_region(f, notebooks)
    region = {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}
    out = {
        "ruleId": f.code,
        "ruleIndex": index[f.code],
        "level": level(f.code),
        "message": {"text": cell_prefix(f) + f.message},
        "locations": [{"physicalLocation": {"artifactLocation": artifact, "region": region}}],
    }
    if verification is not None:
        out["properties"] = {"verification": verification_dict(verification)}
    return out
