"""The ``concise`` format (``text`` is its old name): ``path:line:col: CODE message``, one per
line, then a summary, as ruff's ``--output-format concise``. A finding whose
fix ``--fix`` would apply is marked ``[*]`` after its code. With ``--verify``, each finding is
followed by an indented ``verdict: evidence`` line, and the summary says how many were confirmed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from torchlint.finding import Finding
from torchlint.fixes import FixResult, fixable
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
    """``unsafe``: unsafe fixes count as fixable (``--unsafe-fixes``); ``fixed``: how many
    findings ``--fix`` fixed (``findings`` are those that remain); ``verifications``: the
    ``--verify`` verdicts."""
    lines = []
    for f in findings:
        lines.append(f"{location(f)}: {f.code} {'[*] ' if fixable(f, unsafe) else ''}{f.message}")
        if verifications and f in verifications:
            v = verifications[f]
            lines.append(f"  {v.verdict}: {v.evidence}")
    return "\n".join([*lines, *summary(findings, unsafe, fixed, verifications)]) + "\n"


def summary(
    findings: Sequence[Finding], unsafe: bool, fixed: int, verifications: Mapping[Finding, Verification] | None
) -> list[str]:
    """The lines after the findings: how many, what ``--fix`` could do, what ``--verify`` found."""
    lines = []
    n = len(findings)
    if fixed:
        total = fixed + n
        lines.append(f"Found {_plural(total, 'finding')} ({fixed} fixed, {n} remaining).")
    elif findings:
        lines.append(f"Found {_plural(n, 'finding')}.")
    else:
        lines.append("All checks passed!")
    if hint := fix_hint(findings, unsafe):
        lines.append(hint)
    if verifications:
        lines.append(verification_summary(list(verifications.values())))
    return lines


def location(f: Finding) -> str:
    """``path:line:col``, or ``nb.ipynb:cell 4:3:9`` in a notebook (as ruff prints it)."""
    cell = f"cell {f.cell}:" if f.cell is not None else ""
    return f"{f.path}:{cell}{f.line}:{f.column}"


def verification_summary(verifications: Sequence[Verification]) -> str:
    """``Verified 8 findings on cpu: 5 confirmed, 0 refuted, 3 inconclusive.``"""
    counts = Counter(v.verdict for v in verifications)
    devices = Counter(v.device for v in verifications)
    verdicts = ", ".join(f"{counts[k]} {k}" for k in ("confirmed", "refuted", "inconclusive"))
    return f"Verified {_plural(len(verifications), 'finding')} on {devices.most_common(1)[0][0]}: {verdicts}."


def fix_hint(findings: Sequence[Finding], unsafe: bool) -> str:
    """ruff's line on what ``--fix`` (and ``--unsafe-fixes``) could do, or "" when nothing."""
    applicable = sum(fixable(f, unsafe) for f in findings)
    hidden = sum(f.fix is not None and not fixable(f, unsafe) for f in findings)
    option = f"{_plural(hidden, 'hidden fix', 'hidden fixes')} can be enabled with the `--unsafe-fixes` option"
    if applicable and hidden:
        return f"[*] {applicable} fixable with the `--fix` option ({option})."
    if applicable:
        return f"[*] {applicable} fixable with the `--fix` option."
    if hidden:
        return f"No fixes available ({option})."
    return ""


def render_statistics(findings: Sequence[Finding], *, unsafe: bool = False) -> str:
    """Counts per rule, most frequent first: ``count<TAB>code<TAB>name``; when any finding is
    fixable, the name is prefixed ``[*] `` for a rule with a fixable finding, ``[ ] `` otherwise."""
    counts = Counter((f.code, f.name) for f in findings)
    with_fix = {f.code for f in findings if fixable(f, unsafe)}
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def marker(code: str) -> str:
        if not with_fix:
            return ""
        return "[*] " if code in with_fix else "[ ] "

    return "".join(f"{n}\t{code}\t{marker(code)}{name}\n" for (code, name), n in rows)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def render_fixes(results: Sequence[FixResult]) -> str:
    """``--show-fixes``, as ruff's: the fixes ``--fix`` applied, per file and rule; "" when none.

        Fixed 3 findings:
        - model.py:
            2 × TL201 (dropout-ignores-eval)
    """
    fixed = [r for r in results if r.fixed]
    if not fixed:
        return ""
    lines = [f"Fixed {_plural(sum(r.fixed for r in fixed), 'finding')}:"]
    for r in fixed:
        lines.append(f"- {r.path}:")
        for code, n in sorted(r.fixed_codes.items()):
            rule = ALL_RULES.get(code)
            lines.append(f"    {n} × {code}" + (f" ({rule.name})" if rule else ""))
    return "\n".join(lines) + "\n\n"
