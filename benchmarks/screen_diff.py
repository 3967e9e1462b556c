"""The screen's differential check: every finding with the screen on must also be found with it
off (``TORCHLINT_NO_SCREEN=1``) and the other way round, over a whole corpus.

    python benchmarks/screen_diff.py [CORPUS] [--select ALL] [--jobs N]

Each package directory of the corpus is checked by the CLI as a user would (``--no-cache``, with
its project index), once each way; prints every difference and the count (the screen is sound
when it prints 0 differences). The corpus is CORPUS, else ``$TORCHLINT_CORPUS``, else
``/work/corpus``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def findings(package: Path, select: str, jobs: str, screen: bool) -> set[tuple]:
    env = {**os.environ, "TORCHLINT_NO_SCREEN": "" if screen else "1"}
    out = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "--exit-zero", "--select", select,
         "--jobs", jobs, "--output-format", "json", str(package)],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    return {
        (f["filename"], f["location"]["row"], f["location"]["column"], f["code"], f["message"])
        for f in json.loads(out)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", default=os.environ.get("TORCHLINT_CORPUS", "/work/corpus"))
    parser.add_argument("--select", default="ALL")
    parser.add_argument("--jobs", default="2")
    args = parser.parse_args()
    packages = sorted(p for p in Path(args.corpus).iterdir() if p.is_dir())
    differences = total = 0
    for package in packages:
        on = findings(package, args.select, args.jobs, True)
        off = findings(package, args.select, args.jobs, False)
        total += len(off)
        for f in sorted(off - on):
            print("missed with the screen:", *f)
        for f in sorted(on - off):
            print("only with the screen:", *f)
        differences += len(off ^ on)
    print(f"{len(packages)} packages, {total} findings without the screen, {differences} differences")


if __name__ == "__main__":
    main()
