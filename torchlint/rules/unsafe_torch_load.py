"""TL601 unsafe-torch-load: ``torch.load`` that may unpickle arbitrary code."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts, find_arg
from torchlint.rules import Hit, Rule

LOADS = ("torch.load", "torch.serialization.load")


class UnsafeTorchLoad(Rule):
    code = "TL601"
    name = "unsafe-torch-load"
    summary = "torch.load without weights_only=True: loading the file can run arbitrary code"
    needles = ("load",)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _ in facts.calls_to(*LOADS):
            arg, _ = find_arg(call.node, "weights_only")
            if arg is None and any(a.star == "**" for a in call.node.args):
                continue  # weights_only is keyword-only: only **kwargs can carry it
            if arg is None:
                yield Hit(
                    call.node,
                    "torch.load() without weights_only=True unpickles the file, which can run "
                    "arbitrary code (the default before PyTorch 2.6); pass weights_only=True, or "
                    "load weights with safetensors",
                )
            elif isinstance(arg.value, cst.Name) and arg.value.value == "False":
                yield Hit(
                    call.node,
                    "torch.load(weights_only=False) unpickles the file, which can run arbitrary "
                    "code; pass weights_only=True (allow-list your own classes with "
                    f"torch.serialization.add_safe_globals), or mark a trusted file with '# noqa: {self.code}'",
                )
