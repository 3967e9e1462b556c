"""GitHub Actions workflow commands: one ``::warning`` annotation per finding (``::error`` for
TL000), with the file relative to the repository root so that it lands on the pull request's diff.
Nothing else is printed: the annotations are the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torchlint.finding import Finding
from torchlint.notebook import cell_prefix, file_region
from torchlint.report.sarif import level, relative_path, repository_root

if TYPE_CHECKING:
    from torchlint.verify.runner import Verification


def escape_data(value: str) -> str:
    """A workflow command's message, escaped as @actions/core's ``escapeData``."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A workflow command's property value, escaped as @actions/core's ``escapeProperty``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def render(
    findings: Sequence[Finding],
    *,
    unsafe: bool = False,
    fixed: int = 0,
    verifications: Mapping[Finding, Verification] | None = None,
    root: Path | None = None,
) -> str:
    """``unsafe`` and ``fixed`` change nothing here; a ``--verify`` verdict is appended to the
    message. ``root``: the repository root paths are relative to (default: found from the cwd)."""
    root = repository_root(root)
    verifications = verifications or {}
    notebooks: dict = {}
    return "".join(annotation(f, root, verifications.get(f), notebooks) + "\n" for f in findings)


def annotation(f: Finding, root: Path, verification: Verification | None = None, notebooks: dict | None = None) -> str:
    """One annotation. A finding in a notebook points at its line in the notebook's file, and its
    message starts with the cell and the line in it."""
    path = relative_path(f.path, root) or Path(f.path).resolve().as_posix()
    line, column, end_line, end_column = file_region(f, notebooks)
    properties = {"file": path, "line": line, "col": column, "endLine": end_line, "endColumn": end_column, "title": f.code}
    message = f"{f.code} {cell_prefix(f)}{f.message}"
    if verification is not None:
        message += f"\n{verification.verdict}: {verification.evidence}"
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return f"::{level(f.code)} {props}::{escape_data(message)}"
