"""``--verify`` measured: each finding's verdict, the share confirmed, and the time it takes.

    python benchmarks/verify_set.py [PATH ...] [--rule-pages] [--jobs N] [--timeout S]

PATHs default to tests/verify_set (research-style model files whose third-party imports this
environment lacks) unless ``--rule-pages`` is given, which adds the "## Example" blocks of the rule
pages, each written to a temporary file. Only the rules that have a probe are checked. It prints one line per finding
(verdict and evidence), the counts per verdict for those rules and for the mission rules (TL101,
TL102, TL201, TL202, TL301, TL302, TL304), then the time: the first finding alone (a fresh worker
that imports torch and the file), the whole run, and per further finding.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from torchlint.engine import Selection, check_paths  # noqa: E402
from torchlint.rules import PARSE_ERROR_CODE  # noqa: E402
from torchlint.verify import verify_findings  # noqa: E402
from torchlint.verify.probes import PROBES  # noqa: E402

MISSION = ("TL101", "TL102", "TL201", "TL202", "TL301", "TL302", "TL304")
_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def example_blocks(directory: Path) -> list[Path]:
    """The rule pages' ``## Example`` code blocks, one file each in ``directory``."""
    written = []
    for page in sorted((ROOT / "rules").glob("TL*.md")):
        text = page.read_text(encoding="utf-8")
        section = re.search(r"^## Example\n(.*?)(?=^## )", text, re.M | re.S)
        for n, block in enumerate(_FENCE.findall(section.group(1) if section else "")):
            path = directory / f"{page.stem.split('-')[0]}_example_{n}.py"
            path.write_text(block, encoding="utf-8")
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or directories (default: tests/verify_set, unless --rule-pages)")
    parser.add_argument("--rule-pages", action="store_true", help="also the rule pages' bad examples")
    parser.add_argument("--jobs", type=int, default=None, help="workers at a time (default: up to 4)")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="torchlint-pages-") as pages:
        paths = list(args.paths) or ([] if args.rule_pages else [str(ROOT / "tests" / "verify_set")])
        paths += [str(p) for p in example_blocks(Path(pages))] if args.rule_pages else []
        selection = Selection(codes=frozenset([PARSE_ERROR_CODE, *PROBES]), root=ROOT)
        findings = [f for f in check_paths(paths, selection) if f.code in PROBES]
        if not findings:
            sys.exit("no finding of a rule with a probe under those paths")
        start = time.perf_counter()
        verify_findings(findings[:1], device="cpu", timeout=args.timeout, jobs=1)
        first = time.perf_counter() - start
        start = time.perf_counter()
        results = verify_findings(findings, device="cpu", timeout=args.timeout, jobs=args.jobs)
        whole = time.perf_counter() - start
    for f in findings:
        v = results[f]
        print(f"{Path(f.path).name}:{f.line} {f.code} {v.verdict}: {v.evidence}")
    print()
    for label, codes in (("rules with a probe", set(PROBES)), ("mission rules", set(MISSION))):
        counts = Counter(results[f].verdict for f in findings if f.code in codes)
        total = sum(counts.values())
        if total:
            print(f"{label}: {total} findings, {counts['confirmed']} confirmed ({counts['confirmed'] / total:.0%}), "
                  f"{counts['refuted']} refuted, {counts['inconclusive']} inconclusive")
    files = len({f.path for f in findings})
    further = (whole - first) / (len(findings) - 1) if len(findings) > 1 else 0.0
    print(f"time: first finding alone {first:.1f} s; all {len(findings)} findings in {files} files {whole:.1f} s "
          f"(workers: {args.jobs or 'up to 4'}); {further:.2f} s per further finding")


if __name__ == "__main__":
    main()
