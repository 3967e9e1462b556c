"""Time the language server's re-lint of a generated 1,500-line model file (one finding per
class), in process: the engine's check plus the conversion to LSP diagnostics.

    python benchmarks/lsp_relint.py [LINES]

Issue 7's target is well under 150 ms on this machine. Measured here, not asserted in tests.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from torchlint import lsp

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


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    text = model_file(lines)
    units = lambda s: len(s.encode("utf-16-le")) // 2  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "big.py")
        Path(path).write_text(text, encoding="utf-8")
        lsp.to_diagnostics(lsp.check_document(text, path), text, units)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            diagnostics = lsp.to_diagnostics(lsp.check_document(text, path), text, units)
            times.append(time.perf_counter() - start)
    print(f"{text.count(chr(10))} lines, {len(diagnostics)} diagnostics: best {min(times) * 1000:.0f} ms, "
          f"median {sorted(times)[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
