"""How much of a directory each rule's screen lets through to LibCST, every file screened.

    python benchmarks/screen_share.py DIRECTORY [--default] [--regions]

For each rule (every rule, or with ``--default`` the default ones) whose text needles match: the
files and the share of the characters whose screen passes, and the share of the characters of
the files it is the only rule to pass; then the share some rule passes (what LibCST would still
parse if every file were screened) and the CPU seconds of CPython's parse and of the screens.

``--regions`` also estimates region parsing: in each file some screen passes, each top-level
class and function is screened on its own (with the file's other top-level statements, which
are kept), and the share of the characters still kept is printed with the screens' CPU cost.
No rule is checked, so this is an upper bound on what region parsing could save with these
screens (a region another one depends on would have to be kept as well).
"""

from __future__ import annotations

import argparse
import ast
import time
from collections import Counter
from pathlib import Path

from torchlint import screen
from torchlint.engine import rules_for
from torchlint.rules import ALL_RULES

_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def kept_by_regions(text: str, info: screen.TreeInfo, rules: list) -> int:
    """The characters of the file kept when each top-level definition is screened on its own:
    the other top-level statements, and the definitions some rule's screen passes."""
    lines = text.splitlines(keepends=True)
    body = info.tree.body
    rest = [s for s in body if not isinstance(s, _DEFINITIONS)]

    def source(s: ast.stmt) -> str:
        start = min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", [])])
        return "".join(lines[start - 1 : s.end_lineno])

    kept = sum(len(source(s)) for s in rest)
    for definition in (s for s in body if isinstance(s, _DEFINITIONS)):
        region = screen.TreeInfo(source(definition) + "".join(map(source, rest)), ast.Module(body=[*rest, definition], type_ignores=[]))
        if any(rule.screen(region) for rule in rules):
            kept += len(source(definition))
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--default", action="store_true", help="only the rules enabled by default")
    parser.add_argument("--regions", action="store_true", help="also screen each top-level class and function on its own")
    args = parser.parse_args()
    codes = frozenset(c for c, rule in ALL_RULES.items() if rule.default_enabled or not args.default)
    files = sorted(args.directory.rglob("*.py"))
    chars, alone = Counter(), Counter()
    passed = Counter()
    total = any_rule = by_regions = 0
    parse_seconds = screen_seconds = region_seconds = 0.0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        total += len(text)
        started = time.process_time()
        info = screen.read(text)
        parse_seconds += time.process_time() - started
        if info is None:
            continue
        started = time.process_time()
        rules = [rule for rule in rules_for(text, codes) if rule.screen(info)]
        screen_seconds += time.process_time() - started
        for rule in rules:
            passed[rule.code] += 1
            chars[rule.code] += len(text)
        if len(rules) == 1:
            alone[rules[0].code] += len(text)
        any_rule += len(text) if rules else 0
        if args.regions and rules:
            started = time.process_time()
            by_regions += kept_by_regions(text, info, rules)
            region_seconds += time.process_time() - started
    print(f"{len(files)} files, {total} characters: some rule passes {any_rule / total:.2f} of them; "
          f"CPython's parse {parse_seconds:.1f} s, the screens {screen_seconds:.1f} s of CPU")
    if args.regions:
        print(f"screened by top-level definition: {by_regions / total:.2f} of the characters kept; "
              f"those screens {region_seconds:.1f} s of CPU more")
    for code, count in passed.most_common():
        print(f"  {code}  {count:5} files  {chars[code] / total:.2f} of the characters  (alone {alone[code] / total:.3f})")


if __name__ == "__main__":
    main()
