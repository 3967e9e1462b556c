"""``path:line:col: CODE message``, one per line, then a summary, as ruff prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from torchlint.engine import Finding


def render(findings: Sequence[Finding]) -> str:
    lines = [f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}" for f in findings]
    if findings:
        n = len(findings)
        lines.append(f"Found {n} finding{'s' if n != 1 else ''}.")
    else:
        lines.append("All checks passed!")
    return "\n".join(lines) + "\n"


def render_statistics(findings: Sequence[Finding]) -> str:
    """Counts per rule, most frequent first: ``count<TAB>code<TAB>name``."""
    counts = Counter((f.code, f.name) for f in findings)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "".join(f"{n}\t{code}\t{name}\n" for (code, name), n in rows)
