"""torchlint's speed against LibCST's bare parse and the peers, on the same files in one run.

    python benchmarks/bench.py [CORPUS_DIR] [--only PACKAGE ...] [--no-peers] [--no-whole] [--no-flake8] [--first N]

For timm (and, unless --no-whole, for the whole corpus) it times, each as a separate command:
LibCST's bare ``parse_module`` of every file (one process); ``torchlint check`` cold
(``--no-cache``, all cores, and ``--jobs 1``), cold with the screen off (``TORCHLINT_NO_SCREEN=1``,
what every file cost before the screen) and warm (a second run with nothing changed);
TorchFix's CLI and flake8 with TorchFix (TorchFix 0.7.0, which pins an old libcst, in a
virtualenv of its own), and Fixit 2.2.1 with its default rules (another virtualenv). Then
flake8's cost with torchlint's plugin against flake8 alone, on timm and on files that do not
mention torch (the standard library). ``--first N``: also torchlint against TorchFix on the
first N files of timm (sorted by path), where start-up weighs most. It prints wall and CPU seconds (CPU counts every process of the
command), files per second, peak memory, and the ratios issue 8 sets targets for. torchlint's
bytecode is written first, as ``pip install`` writes it.

The corpus is fetched with ../shared/corpus-fetch when no directory is given; the peers'
virtualenvs are built on first use under ~/.cache/torchlint-bench. The machines here are shared
and noisy: compare the ratios of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = Path.home() / ".cache" / "torchlint-bench"
PEERS = {
    "torchfix": ["torchfix==0.7.0", "flake8==7.1.2"],
    "fixit": ["fixit==2.2.1"],
    "flake8": [],  # flake8 alone, at the version torchlint's environment has (filled in below)
}

PARSE_ALL = """
import sys, libcst
from pathlib import Path
for p in sorted(Path(sys.argv[1]).rglob('*.py')):
    try:
        libcst.parse_module(p.read_bytes())
    except Exception:
        pass
"""


@dataclass
class Run:
    name: str
    wall: float
    cpu: float
    rss_mb: float
    files: int

    def line(self) -> str:
        return (f"  {self.name:<36} wall {self.wall:7.1f}s  cpu {self.cpu:7.1f}s  "
                f"{self.files / self.wall:7.0f} files/s  peak {self.rss_mb:6.0f} MB")


def corpus_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    fetch = HERE.parent.parent / "shared" / "corpus-fetch"
    out = subprocess.run([str(fetch)], check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def venv(name: str) -> Path:
    """The bin/ of a peer's virtualenv, built on first use."""
    bin_dir = VENVS / name / "bin"
    if not (bin_dir / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
        packages = PEERS[name] or [f"flake8=={_version('flake8')}"]
        subprocess.run([str(bin_dir / "pip"), "install", "-q", *packages], check=True)
    return bin_dir


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def timed(name: str, cmd: list[str], files: int, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run a command; its wall time, the CPU time of all its processes, and the peak resident
    memory of the largest of them (what getrusage tells of waited-for children)."""
    script = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "wall = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(wall, u.ru_utime + u.ru_stime, u.ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *cmd], capture_output=True, text=True, cwd=cwd, check=True,
        env={**os.environ, **(env or {})},
    )
    wall, cpu, rss = out.stdout.split()
    return Run(name, float(wall), float(cpu), int(rss) / 1024, files)


def bench(target: Path, peers: bool) -> dict[str, Run]:
    files = sorted(target.rglob("*.py"))
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    print(f"\n{target.name}: {len(files)} files, {lines} lines")
    n = len(files)
    runs: dict[str, Run] = {}
    torchlint = [sys.executable, "-m", "torchlint", "check", "--select", "ALL", "--exit-zero"]
    runs["parse"] = timed("libcst parse_module (1 process)", [sys.executable, "-c", PARSE_ALL, str(target)], n)
    with tempfile.TemporaryDirectory() as cache:
        runs["cold"] = timed("torchlint check --no-cache", [*torchlint, "--no-cache", str(target)], n)
        runs["cold1"] = timed("torchlint check --no-cache --jobs 1", [*torchlint, "--no-cache", "--jobs", "1", str(target)], n)
        runs["unscreened"] = timed(
            "torchlint, TORCHLINT_NO_SCREEN=1", [*torchlint, "--no-cache", str(target)], n, env={"TORCHLINT_NO_SCREEN": "1"}
        )
        subprocess.run([*torchlint, "--cache-dir", cache, str(target)], stdout=subprocess.DEVNULL, check=True)
        runs["warm"] = timed("torchlint check (warm cache)", [*torchlint, "--cache-dir", cache, str(target)], n)
    if peers:
        tf = venv("torchfix")
        runs["torchfix"] = timed("TorchFix CLI (--select ALL)", [str(tf / "torchfix"), "--select", "ALL", str(target)], n)
        runs["flake8-torchfix"] = timed("flake8 with TorchFix (--select TOR)", [str(tf / "flake8"), "--select", "TOR", str(target)], n)
        fx = venv("fixit")
        runs["fixit"] = timed("Fixit (default rules)", [str(fx / "fixit"), "lint", str(target)], n, cwd=target)
    for run in runs.values():
        print(run.line())
    ratio = lambda a, b: runs[a].wall / runs[b].wall  # noqa: E731
    print(f"  cold/parse {ratio('cold', 'parse'):.2f} (target <= 0.35 on timm, 0.4 on the corpus); "
          f"cold --jobs 1/parse {ratio('cold1', 'parse'):.2f} (target <= 0.7); "
          f"no screen/parse {ratio('unscreened', 'parse'):.2f}; warm/cold {ratio('warm', 'cold'):.3f} (target <= 0.05)")
    if peers:
        print(f"  TorchFix/torchlint {ratio('torchfix', 'cold'):.1f}x (target >= 8); "
              f"flake8+TorchFix/torchlint {ratio('flake8-torchfix', 'cold'):.1f}x; Fixit/torchlint {ratio('fixit', 'cold'):.1f}x")
    return runs


def flake8_cost(target: Path) -> None:
    """flake8 with torchlint's plugin against flake8 alone (one process each): on ``target``, and
    on the standard library's modules that do not mention torch."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(stdlib.glob("*.py")) if b"torch" not in p.read_bytes()]
    with tempfile.TemporaryDirectory() as tmp:
        for p in files:
            shutil.copy(p, tmp)
        for name, where, count in ((target.name, target, len(list(target.rglob("*.py")))), ("standard-library files without torch", Path(tmp), len(files))):
            plain = venv("flake8") / "flake8"
            ours = Path(sys.executable).parent / "flake8"
            alone = timed("flake8 alone", [str(plain), "--jobs", "1", "--select", "E9,F63", str(where)], count)
            plugged = timed("flake8 with torchlint's plugin", [str(ours), "--jobs", "1", "--select", "E9,F63,TL", str(where)], count)
            print(f"\nflake8 on {count} {name}:")
            print(alone.line())
            print(plugged.line())
            print(f"  with plugin/alone {plugged.wall / alone.wall:.2f} (target <= 1.3 on timm)")


def bench_first(target: Path, n: int) -> None:
    """torchlint (cold, default jobs) against TorchFix's CLI on the first ``n`` files of
    ``target`` sorted by path, copied with their directories."""
    files = sorted(target.rglob("*.py"))[:n]
    with tempfile.TemporaryDirectory() as tmp:
        for p in files:
            copy = Path(tmp) / p.relative_to(target)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, copy)
        torchlint = [sys.executable, "-m", "torchlint", "check", "--select", "ALL", "--exit-zero", "--no-cache", tmp]
        ours = timed("torchlint check --no-cache", torchlint, n)
        tf = timed("TorchFix CLI (--select ALL)", [str(venv("torchfix") / "torchfix"), "--select", "ALL", tmp], n)
    print(f"\nthe first {n} files of {target.name}:")
    print(ours.line())
    print(tf.line())
    print(f"  TorchFix/torchlint {tf.wall / ours.wall:.1f}x (target >= 15)")


def compile_torchlint() -> None:
    """Write torchlint's bytecode, as ``pip install`` does. An editable install with
    PYTHONDONTWRITEBYTECODE set (as on these machines) would otherwise compile every module of
    torchlint again in each run, which a user's installed torchlint does not (and the peers,
    installed by pip, do not either)."""
    import compileall

    import torchlint

    compileall.compile_dir(str(Path(torchlint.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?")
    parser.add_argument("--only", action="append", default=[], help="a package directory of the corpus, e.g. timm-1.0.31")
    parser.add_argument("--no-peers", action="store_true", help="time only LibCST and torchlint")
    parser.add_argument("--no-whole", action="store_true", help="skip the run over the whole corpus")
    parser.add_argument("--no-flake8", action="store_true", help="skip flake8 with and without the plugin")
    parser.add_argument("--first", type=int, metavar="N", help="also torchlint against TorchFix on the first N files of timm")
    args = parser.parse_args()
    corpus = corpus_dir(args.corpus)
    compile_torchlint()
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    targets = [corpus / name for name in args.only] or [next(corpus.glob("timm-*"))]
    for target in targets:
        bench(target, not args.no_peers)
    if not args.no_whole and not args.only:
        bench(corpus, not args.no_peers)
    if args.first:
        bench_first(targets[0], args.first)
    if not args.no_flake8:
        flake8_cost(targets[0])


if __name__ == "__main__":
    main()
