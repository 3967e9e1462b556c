"""Time the language server's re-lint of a generated 1,500-line model file (one finding per
class) after an edit, in process: the engine's check plus the conversion to LSP diagnostics.

    python benchmarks/lsp_relint.py [LINES]

Each round types one character into a different class's forward and checks the new text with the
document's tree, as the server does at every pause in typing; the first check of the document
(on open) and a check with no tree (a whole parse, as ``torchlint check`` does) are timed too.
Issue 7's target is well under 150 ms on this machine. Measured here, not asserted in tests.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from torchlint import lsp
from torchlint.incremental import DocumentTree

BLOCK = '''class Head{n}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        x = self.fc(x)
        return F.dropout(x, 0.5)


'''


def model_file(lines: int) -> str:
    text = "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
    n = 0
    while text.count("\n") < lines:
        text += BLOCK.format(n=n)
        n += 1
    return text


def timed(check) -> tuple[float, float, int]:
    """Wall and CPU milliseconds of one check (CPU time is what a loaded machine distorts least)."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = check()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, n


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    text = model_file(lines)
    units = lambda s: len(s.encode("utf-16-le")) // 2  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "big.py")
        Path(path).write_text(text, encoding="utf-8")
        lsp.check_document(text, path)  # imports, settings and the project index, once
        tree = DocumentTree()
        relint = lambda t: len(lsp.to_diagnostics(lsp.check_document(t, path, tree), t, units))  # noqa: E731
        whole = lambda t: len(lsp.to_diagnostics(lsp.check_document(t, path), t, units))  # noqa: E731
        opened_wall, opened_cpu, n = timed(lambda: relint(text))
        edits, wholes = [], []
        for i in range(9):
            at = text.index("x = self.fc(x)", len(text) * (2 * i + 1) // 20)
            text = text[:at] + "x = self.fc(x)  " + text[at + len("x = self.fc(x)"):]
            edits.append(timed(lambda: relint(text))[:2])
            wholes.append(timed(lambda: whole(text))[:2])

    def summary(runs: list[tuple[float, float]]) -> str:
        walls, cpus = sorted(w for w, _ in runs), sorted(c for _, c in runs)
        return (f"wall best {walls[0]:.0f} ms, median {walls[len(walls) // 2]:.0f} ms; "
                f"cpu best {cpus[0]:.0f} ms, median {cpus[len(cpus) // 2]:.0f} ms")

    print(f"{text.count(chr(10))} lines, {n} diagnostics")
    print(f"re-lint after an edit: {summary(edits)}")
    print(f"first check on open:   wall {opened_wall:.0f} ms, cpu {opened_cpu:.0f} ms")
    print(f"whole parse each time: {summary(wholes)}")


if __name__ == "__main__":
    main()
