"""Run TorchFix and torchlint over the same directory and compare what they report.

    python benchmarks/torchfix_compare.py CORPUS [--torchfix PATH] [--limit N] [--torchfix-output DIR]

TorchFix (archived; ``pip install torchfix==0.7.0`` in a virtualenv of its own, it pins
libcst<1.6) runs with ``--select ALL``; torchlint runs the codes that supersede TorchFix's
(TL7, TL404, TL601, off-by-default ones included). Prints both tools' counts per code, the lines
TorchFix flags that torchlint does not, and the lines torchlint flags that TorchFix does not.
A finding is matched by file, line and code family; a finding inside a multi-line import
counts at the statement's first line (TorchFix reports imports at the statement, torchlint at
each imported name).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

# TorchFix's codes and the torchlint codes that supersede them (TOR901 is internal to the
# pytorch/pytorch repository and has no counterpart).
SUPERSEDED_BY = {
    "TOR001": {"TL701", "TL702"},  # removed function: TL701, or TL702 when target-version predates the removal
    "TOR004": {"TL701", "TL702"},
    "TOR101": {"TL701", "TL702"},
    "TOR103": {"TL701", "TL702"},
    "TOR002": {"TL404"},
    "TOR003": {"TL703"},
    "TOR102": {"TL601"},
    "TOR104": {"TL704"},
    "TOR105": {"TL704"},
    "TOR106": {"TL705"},
    "TOR107": {"TL705"},
    "TOR201": {"TL706"},
    "TOR202": {"TL707"},
    "TOR203": {"TL708"},
    "TOR401": {"TL709"},
}
TORCHLINT_CODES = "TL7,TL404,TL601"
_TORCHFIX_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<code>TOR\d+) (?P<message>.*)$")
_FAILED = re.compile(r"^Failed to codemod (?P<path>.+)$")


def run_torchfix(torchfix: str, directory: str, saved: Path | None) -> tuple[list[tuple[str, int, str, str]], list[str]]:
    """TorchFix's findings and the files it failed on. TorchFix takes minutes on a large corpus:
    with ``saved``, its output is read from ``saved/stdout.txt`` and ``saved/stderr.txt`` when
    they exist, and written there otherwise."""
    if saved is not None and (saved / "stdout.txt").exists():
        stdout = (saved / "stdout.txt").read_text(encoding="utf-8")
        stderr = (saved / "stderr.txt").read_text(encoding="utf-8")
    else:
        out = subprocess.run(
            [torchfix, "--select", "ALL", "--show-stderr", directory], capture_output=True, text=True, check=False
        )
        stdout, stderr = out.stdout, out.stderr
        if saved is not None:
            saved.mkdir(parents=True, exist_ok=True)
            (saved / "stdout.txt").write_text(stdout, encoding="utf-8")
            (saved / "stderr.txt").write_text(stderr, encoding="utf-8")
    return _parse_torchfix(stdout, stderr)


def _parse_torchfix(stdout: str, stderr: str) -> tuple[list[tuple[str, int, str, str]], list[str]]:
    found = []
    for line in stdout.splitlines():
        m = _TORCHFIX_LINE.match(line)
        if m:
            found.append((str(Path(m["path"]).resolve()), int(m["line"]), m["code"], m["message"]))
    failed = sorted({str(Path(m["path"]).resolve()) for line in stderr.splitlines() if (m := _FAILED.match(line))})
    return found, failed


def run_torchlint(directory: str) -> list[tuple[str, int, str, str]]:
    out = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--isolated", "--no-project", "--select", TORCHLINT_CODES,
         "--output-format", "json", "--exit-zero", directory],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"torchlint failed: {out.stderr}")
    return [
        (str(Path(f["filename"]).resolve()), f["location"]["row"], f["code"], f["message"])
        for f in json.loads(out.stdout)
    ]


@cache
def _import_starts(path: str) -> dict[int, int]:
    """Each line of a multi-line import statement -> the statement's first line."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (SyntaxError, ValueError, OSError):
        return {}
    starts = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node.end_lineno and node.end_lineno > node.lineno:
            for line in range(node.lineno, node.end_lineno + 1):
                starts[line] = node.lineno
    return starts


def _key(path: str, line: int) -> tuple[str, int]:
    return path, _import_starts(path).get(line, line)


def compare(torchfix_found, torchlint_found):
    """(TorchFix findings torchlint misses, torchlint findings TorchFix has no counterpart of)."""
    ours = defaultdict(set)
    for path, line, code, _ in torchlint_found:
        ours[_key(path, line)].add(code)
    theirs = defaultdict(set)
    for path, line, code, _ in torchfix_found:
        theirs[_key(path, line)] |= SUPERSEDED_BY.get(code, set())
    missed = [f for f in torchfix_found if f[2] in SUPERSEDED_BY and not (SUPERSEDED_BY[f[2]] & ours[_key(f[0], f[1])])]
    extra = [f for f in torchlint_found if f[2] not in theirs[_key(f[0], f[1])]]
    return missed, extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--torchfix", default=shutil.which("torchfix") or "/work/torchfix-venv/bin/torchfix")
    parser.add_argument("--limit", type=int, default=50, help="lines to print per list (default 50; 0: all)")
    parser.add_argument("--torchfix-output", type=Path, metavar="DIR", help="read TorchFix's saved output from DIR (stdout.txt, stderr.txt), or save it there")
    args = parser.parse_args(argv)

    torchfix_found, failed = run_torchfix(args.torchfix, args.directory, args.torchfix_output)
    torchlint_found = run_torchlint(args.directory)
    missed, extra = compare(torchfix_found, torchlint_found)
    root = str(Path(args.directory).resolve()) + "/"

    def show(rows):
        rows = sorted(rows)
        for path, line, code, message in rows[: args.limit or None]:
            print(f"  {path.removeprefix(root)}:{line}: {code} {message[:150]}")
        if args.limit and len(rows) > args.limit:
            print(f"  ... {len(rows) - args.limit} more")

    print("TorchFix 0.7.0 --select ALL, findings per code:")
    for code, n in sorted(Counter(f[2] for f in torchfix_found).items()):
        print(f"  {code} {n:5d}   -> {', '.join(sorted(SUPERSEDED_BY.get(code, {'(none)'})))}")
    print(f"  files TorchFix failed on (no findings from them): {len(failed)}")
    for path in failed[: args.limit or None]:
        print(f"    {path.removeprefix(root)}")
    print(f"torchlint --select {TORCHLINT_CODES}, findings per code:")
    for code, n in sorted(Counter(f[2] for f in torchlint_found).items()):
        print(f"  {code} {n:5d}")
    print(f"TorchFix lines torchlint does not flag: {len(missed)}")
    show(missed)
    print(f"torchlint lines TorchFix does not flag: {len(extra)}")
    show(extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
