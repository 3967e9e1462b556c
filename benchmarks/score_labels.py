"""Precision on the corpus, from labels: torchlint's findings joined with the hand labels of
benchmarks/labels/*.jsonl (format in benchmarks/labels/README.md) by (path relative to the corpus,
line, code).

Per rule it prints the findings, how many carry a label, the count of each label and the
precision, (bug + worth-a-look) / labelled; then the findings that have no label yet and the
labels that match no finding any more (stale: the rule moved or stopped reporting there).

    .venv/bin/python benchmarks/score_labels.py [--corpus DIR] [--select TL1,TL2,TL3,TL4,TL5]
    .venv/bin/python benchmarks/score_labels.py --from-json findings.json   # a `check --output-format json` run

The corpus is ``--corpus``, else $TORCHLINT_CORPUS, else /work/corpus. The check runs the
torchlint of the Python running this script, with --no-cache. Always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

LABELS_DIR = Path(__file__).resolve().parent / "labels"
LABELS = ("bug", "worth-a-look", "false-alarm")
DEFAULT_SELECT = "TL1,TL2,TL3,TL4,TL5"

Key = tuple[str, int, str]  # (path relative to the corpus, line, code)


def run_torchlint(corpus: Path, select: str) -> list[dict]:
    """The findings of ``torchlint check`` on the corpus, as its JSON output gives them."""
    command = [
        sys.executable, "-m", "torchlint", "check", "--no-cache", "--select", select,
        "--output-format", "json", "--exit-zero", str(corpus),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def finding_keys(findings: list[dict], corpus: Path, select: str) -> dict[Key, str]:
    """Each selected finding's key, and its message."""
    prefixes = tuple(p.strip() for p in select.split(",") if p.strip())
    root = corpus.resolve()
    out = {}
    for f in findings:
        if not f["code"].startswith(prefixes):
            continue
        path = Path(f["filename"])
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        out[(rel, f["location"]["row"], f["code"])] = f["message"]
    return out


def read_labels(labels_dir: Path) -> dict[Key, dict]:
    """Every label of every ``*.jsonl`` file in ``labels_dir`` (a later line wins on the same key)."""
    out = {}
    for file in sorted(labels_dir.glob("*.jsonl")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            label = json.loads(line)
            if label.get("label") not in LABELS:
                raise SystemExit(f"{file}:{number}: label must be one of {', '.join(LABELS)}")
            out[(label["path"], int(label["line"]), label["code"])] = label
    return out


def score(findings: dict[Key, str], labels: dict[Key, dict]) -> dict[str, dict]:
    """Per code: findings, labelled, the count of each label, and precision (None: no label)."""
    rows: dict[str, dict] = defaultdict(lambda: {"findings": 0, "labelled": 0, **{name: 0 for name in LABELS}})
    for key in findings:
        row = rows[key[2]]
        row["findings"] += 1
        if key in labels:
            row["labelled"] += 1
            row[labels[key]["label"]] += 1
    for row in rows.values():
        good = row["bug"] + row["worth-a-look"]
        row["precision"] = good / row["labelled"] if row["labelled"] else None
    return dict(sorted(rows.items()))


def report(findings: dict[Key, str], labels: dict[Key, dict], prefixes: tuple[str, ...]) -> str:
    rows = score(findings, labels)
    lines = [f"{'rule':6} {'findings':>8} {'labelled':>8} {'bug':>5} {'worth-a-look':>12} {'false-alarm':>11} {'precision':>9}"]
    total: Counter = Counter()
    for code, row in rows.items():
        precision = f"{row['precision']:.3f}" if row["precision"] is not None else "-"
        lines.append(
            f"{code:6} {row['findings']:8} {row['labelled']:8} {row['bug']:5} {row['worth-a-look']:12} "
            f"{row['false-alarm']:11} {precision:>9}"
        )
        total.update({k: v for k, v in row.items() if k != "precision"})
    good = total["bug"] + total["worth-a-look"]
    overall = f"{good / total['labelled']:.3f}" if total["labelled"] else "-"
    lines.append(
        f"{'all':6} {total['findings']:8} {total['labelled']:8} {total['bug']:5} {total['worth-a-look']:12} "
        f"{total['false-alarm']:11} {overall:>9}"
    )
    unlabelled = sorted(k for k in findings if k not in labels)
    lines += ["", f"unlabelled findings ({len(unlabelled)}):"]
    lines += [f"  {path}:{line} {code} {_short(findings[(path, line, code)])}" for path, line, code in unlabelled]
    stale = sorted(k for k in labels if k not in findings and k[2].startswith(prefixes))
    lines += ["", f"stale labels, matching no finding ({len(stale)}):"]
    lines += [f"  {path}:{line} {code} [{labels[(path, line, code)]['label']}]" for path, line, code in stale]
    return "\n".join(lines)


def _short(message: str, limit: int = 140) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", default=os.environ.get("TORCHLINT_CORPUS", "/work/corpus"),
        help="the corpus directory (default $TORCHLINT_CORPUS, else /work/corpus)",
    )
    parser.add_argument("--select", default=DEFAULT_SELECT, help=f"codes or prefixes (default {DEFAULT_SELECT})")
    parser.add_argument("--from-json", metavar="FILE", help="read the findings from a `check --output-format json` output")
    parser.add_argument("--labels", default=str(LABELS_DIR), help="directory of *.jsonl label files")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if args.from_json:
        raw = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    else:
        raw = run_torchlint(corpus, args.select)
    prefixes = tuple(p.strip() for p in args.select.split(",") if p.strip())
    print(report(finding_keys(raw, corpus, args.select), read_labels(Path(args.labels)), prefixes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
