"""Score torchlint on a blind set: hand-written files with a known answer per file.

A blind set is a directory written by someone who had not read torchlint's rules, fixtures or
pages, with ``TRUTH.jsonl`` beside the code: one object per file, ``{"file": "bugs/07_x.py",
"bug": "TL101" | null, "line": N | null, "class": ..., "spelling": ..., "note": ...}``. Each
file holds at most one bug; files without one are correct code, many of them built to look
like a bug.

The set is checked as the CLI checks a directory (default rules, the project index, ``--no-cache``)
and the findings are joined with the truth:

- *hit*: the file's bug reported with its code at its line;
- *miss*: it is not;
- *false alarm*: any finding in a file without a bug;
- *also reported*: other findings in a file with a bug (read them: the same mistake seen by a
  second rule, as TL301 on the class whose skip TL302 finds dropped, or a new problem).

    python benchmarks/blind_set.py /work/blind [--select TL101,TL102]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path


def findings(root: Path, select: str | None) -> dict[str, list[tuple[str, int, str]]]:
    """``torchlint check`` of the set: per file relative to it, (code, line, message)."""
    cmd = [sys.executable, "-m", "torchlint", "check", "--no-cache", "--output-format", "json", "--exit-zero", "."]
    if select:
        cmd[4:4] = ["--select", select]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True).stdout
    found: dict[str, list[tuple[str, int, str]]] = {}
    for f in json.loads(out):
        rel = Path(f["filename"]).resolve().relative_to(root.resolve()).as_posix()
        found.setdefault(rel, []).append((f["code"], f["location"]["row"], f["message"]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the blind set: its code and TRUTH.jsonl")
    parser.add_argument("--select", help="codes to check (default: the default rules)")
    args = parser.parse_args(argv)
    truth = [json.loads(line) for line in (args.root / "TRUTH.jsonl").read_text().splitlines() if line.strip()]
    found = findings(args.root, args.select)
    hits, misses, alarms, also = Counter(), [], [], []
    bugs = Counter(t["bug"] for t in truth if t["bug"])
    for t in truth:
        got = found.pop(t["file"], [])
        if not t["bug"]:
            alarms += [(t["file"], *g) for g in got]
            continue
        hit = [g for g in got if g[0] == t["bug"] and g[1] == t["line"]]
        if hit:
            hits[t["bug"]] += 1
        else:
            misses.append(t)
        also += [(t["file"], *g) for g in got if g not in hit]
    clean = sum(1 for t in truth if not t["bug"])
    print(f"blind set {args.root}: {len(truth)} files, {sum(bugs.values())} with a bug, {clean} without")
    print(f"{'code':6} {'bugs':>5} {'hits':>5} {'recall':>7}")
    for code in sorted(bugs):
        print(f"{code:6} {bugs[code]:5} {hits[code]:5} {hits[code] / bugs[code]:7.3f}")
    total = sum(bugs.values())
    print(f"{'all':6} {total:5} {sum(hits.values()):5} {sum(hits.values()) / max(total, 1):7.3f}")
    print(f"false alarms in the {clean} files without a bug: {len(alarms)}")
    for t in misses:
        print(f"  miss: {t['file']}:{t['line']} {t['bug']} ({t.get('spelling', '')})")
    for path, code, line, message in alarms:
        print(f"  false alarm: {path}:{line} {code} {message[:100]}")
    for path, code, line, message in also:
        print(f"  also reported: {path}:{line} {code} {message[:100]}")
    for path, items in sorted(found.items()):
        for code, line, message in items:
            print(f"  not in the truth: {path}:{line} {code} {message[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
