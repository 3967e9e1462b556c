"""TL302 unused-skip-tensor: a tensor kept for the skip connection in forward, then never used."""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import FunctionInfo, ModuleFacts
from torchlint.rules import Hit, Rule

# Words that mean "the tensor kept for the skip"; a local named by one of them, alone or with one
# word naming the stream (``x_skip``, ``residual_h``, ``skip_connection``), is a kept skip.
SKIP_WORDS = {"identity", "residual", "res", "shortcut", "skip"}
STREAM_WORDS = {"x", "h", "input", "inp", "in", "hidden", "feat", "feats", "connection", "conn", "out", "cut"}
# Names for the block's input kept aside: the same meaning, other spellings.
KEPT_INPUT_NAMES = {"inp", "x_in", "input_x", "x_input", "short_cut"}

_FORWARD = re.compile(r"^(forward|_forward\w*|forward_\w+)$")


def skip_named(name: str) -> bool:
    """``identity``, ``residual``, ``x_skip``, ``skip_connection``, ``inp``... but not ``skip_first``."""
    lowered = name.lower()
    if lowered.startswith("_"):
        return False  # unused on purpose, by convention
    if lowered in KEPT_INPUT_NAMES:
        return True
    words = [w for w in lowered.split("_") if w]
    if not words or not any(w in SKIP_WORDS for w in words) or len(words) > 2:
        return False
    return all(w in SKIP_WORDS or w in STREAM_WORDS for w in words)


class UnusedSkipTensor(Rule):
    code = "TL302"
    name = "unused-skip-tensor"
    summary = "a tensor kept for the skip connection (identity = x) in forward and never read"
    needles = ("identity", "res", "shortcut", "skip", "short_cut", "inp", "x_in")

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for fn in facts.functions:
            if not (fn.is_method and fn.cls and fn.cls.is_module and _FORWARD.match(fn.name)):
                continue
            for name, assigned in fn.assignments.items():
                if not skip_named(name) or fn.reads.get(name) or name in fn.params:
                    continue
                stmt = _first_kept_tensor(fn, assigned)
                if stmt is not None:
                    yield Hit(
                        stmt,
                        f"'{name}' is kept for the skip connection but never read: the skip is computed "
                        "and dropped, so the block is not residual (add it back, e.g. `out = out + "
                        f"{name}`)",
                        fn.cls,
                    )


def _first_kept_tensor(fn: FunctionInfo, assigned) -> cst.CSTNode | None:
    """The first plain ``name = <value>`` statement binding a value (not None, a constant or a
    tuple element unpacked from a call)."""
    for stmt, value in assigned:
        if not isinstance(stmt, (cst.Assign, cst.AnnAssign)) or value is None:
            continue
        if isinstance(stmt, cst.Assign) and not all(isinstance(t.target, cst.Name) for t in stmt.targets):
            continue
        if isinstance(value, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
            continue
        if isinstance(value, cst.Name) and value.value in ("None", "True", "False"):
            continue
        return stmt
    return None
