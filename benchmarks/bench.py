"""Time ``torchlint check`` over the real corpus next to LibCST's bare parse of the same files.

    python benchmarks/bench.py [CORPUS_DIR] [--only PACKAGE]

Fetches the corpus with ../shared/corpus-fetch when no directory is given. Both measurements run
in this one invocation, on the same files, so the ratio is meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def corpus_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    fetch = HERE.parent.parent / "shared" / "corpus-fetch"
    out = subprocess.run([str(fetch)], check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, float]:
    cpu0, t0 = child_cpu(), time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, child_cpu() - cpu0


PARSE_ALL = """
import sys, libcst
from pathlib import Path
for p in sorted(Path(sys.argv[1]).rglob('*.py')):
    try:
        libcst.parse_module(p.read_bytes())
    except Exception:
        pass
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?")
    parser.add_argument("--only", help="one package directory of the corpus, e.g. timm-1.0.31")
    args = parser.parse_args()
    target = corpus_dir(args.corpus)
    if args.only:
        target = target / args.only
    files = list(target.rglob("*.py"))
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    print(f"{target}: {len(files)} files, {lines} lines; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    parse_wall, parse_cpu = timed([sys.executable, "-c", PARSE_ALL, str(target)])
    check_wall, check_cpu = timed([sys.executable, "-m", "torchlint", "check", "--select", "ALL", "--exit-zero", str(target)])
    print(f"{'libcst parse_module':<28} wall {parse_wall:7.1f}s  cpu {parse_cpu:7.1f}s  {len(files) / parse_wall:6.0f} files/s")
    print(f"{'torchlint check (all rules)':<28} wall {check_wall:7.1f}s  cpu {check_cpu:7.1f}s  {len(files) / check_wall:6.0f} files/s")
    print(f"ratio check/parse (wall): {check_wall / parse_wall:.2f}")


if __name__ == "__main__":
    main()
