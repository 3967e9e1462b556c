"""The dynamic verifier (``torchlint check --verify``): run a flagged model in a sandboxed child
process and prove or refute each finding. Importing this package does not import torch."""

from __future__ import annotations

from torchlint.verify.runner import (
    TORCH_MISSING,
    Verification,
    torch_missing,
    verify_findings,
)

__all__ = ["TORCH_MISSING", "Verification", "torch_missing", "verify_findings"]
