"""How much of a directory each rule's screen lets through to LibCST, every file screened.

    python benchmarks/screen_share.py DIRECTORY [--default]

For each rule (every rule, or with ``--default`` the default ones) whose text needles match: the
files and the share of the characters whose screen passes, and the share of the characters of
the files it is the only rule to pass; then the share some rule passes (what LibCST would still
parse if every file were screened) and the CPU seconds of CPython's parse and of the screens.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from torchlint import screen
from torchlint.engine import rules_for
from torchlint.rules import ALL_RULES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--default", action="store_true", help="only the rules enabled by default")
    args = parser.parse_args()
    codes = frozenset(c for c, rule in ALL_RULES.items() if rule.default_enabled or not args.default)
    files = sorted(args.directory.rglob("*.py"))
    chars, alone = Counter(), Counter()
    passed = Counter()
    total = any_rule = 0
    parse_seconds = screen_seconds = 0.0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        total += len(text)
        started = time.process_time()
        info = screen.read(text)
        parse_seconds += time.process_time() - started
        if info is None:
            continue
        started = time.process_time()
        passing = [rule.code for rule in screen.passing(rules_for(text, codes), info)]
        screen_seconds += time.process_time() - started
        for code in passing:
            passed[code] += 1
            chars[code] += len(text)
        if len(passing) == 1:
            alone[passing[0]] += len(text)
        any_rule += len(text) if passing else 0
    print(f"{len(files)} files, {total} characters: some rule passes {any_rule / total:.2f} of them; "
          f"CPython's parse {parse_seconds:.1f} s, the screens {screen_seconds:.1f} s of CPU")
    for code, count in passed.most_common():
        print(f"  {code}  {count:5} files  {chars[code] / total:.2f} of the characters  (alone {alone[code] / total:.3f})")


if __name__ == "__main__":
    main()
