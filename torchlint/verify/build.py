"""Build a flagged module and an input for it, for the verifier's probes.

Constructor arguments come from the defaults, then from literal arguments at a call site of the
class in the same file, then from the parameter names. The input comes from the first layer reached
in module order; candidates are tried through forward, and one that only runs by broadcasting
against a parameter (the output's batch dimension does not follow the input's) is rejected.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn


class BuildError(Exception):
    """The module or its input could not be built; the message is the reason."""


SMALL = 16
NAMED_VALUES: list[tuple[str, object]] = [
    (r"(num_)?classes|n_classes|num_labels|n_out_classes", 10),
    (r"(num_)?heads|n_heads|nhead", 2),
    (r"(num_)?layers|n_layers|depth|num_blocks", 2),
    (r"kernel(_size)?|ksize|k", 3),
    (r"stride|dilation|groups", 1),
    (r"padding|pad", 1),
    (r"p|dropout|drop|drop_rate|dropout_p|attn_dropout|p_drop", 0.5),
    (r"eps|epsilon", 1e-5),
    (r"momentum", 0.1),
    (r"vocab(_size)?|num_embeddings|n_tokens|num_tokens", 100),
    (r"sizes|dims|layer_sizes|hidden_sizes|widths|channels_list", [SMALL, SMALL, SMALL]),
    (r"device", "cpu"),
    (r"dtype", None),
    (r"(use_|with_|has_|is_)?\w*(bias|batch_first|bidirectional|affine|inplace|residual|norm)", False),
    ((r"(in|out)_?(channels|ch|features|dim|planes|size)|c_(in|out)|d_(in|out|hidden|model|ff)|"
     r"(in|out)planes|planes|channels|ch|features|dim|hidden|hidden_(size|dim)|d_model|embed_dim|"
     r"emb(edding)?_dim|width|n_embd|n_hidden|ninp|nhid|input_size|size|n_in|n_out|n_features"), SMALL),
]


@dataclass
class Candidate:
    """A way to make an input: ``make(batch)`` builds it with that batch size at ``batch_dim``."""

    describe: str
    make: Callable[[int], tuple[torch.Tensor, ...]]
    batch_dim: int = 0


def instantiate(cls: type, path: str) -> tuple[nn.Module, str]:
    """An instance of ``cls`` and how its arguments were chosen; BuildError when it cannot."""
    signature = inspect.signature(cls.__init__)
    params = [p for p in list(signature.parameters.values())[1:]
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    attempts: list[tuple[str, dict]] = []
    for site_args, site_kwargs in _call_sites(cls.__name__, path):
        kwargs = _from_call_site(params, site_args, site_kwargs)
        if kwargs is not None and _fill_missing(params, kwargs):
            attempts.append(("arguments from the call site in the file", kwargs))
    named: dict = {}
    if _fill_missing(params, named):
        attempts.append(("default and name-derived arguments", named))
    if not attempts:
        missing = [p.name for p in params if p.default is p.empty and _guess(p.name) is _NO_GUESS]
        raise BuildError(f"cannot choose a value for {cls.__name__}'s argument(s) {', '.join(missing)}")
    errors = []
    for how, kwargs in attempts:
        try:
            return cls(**kwargs), how
        except Exception as error:  # noqa: BLE001 - any failure of user code is a reason
            errors.append(f"{cls.__name__}({_show(kwargs)}) raised {_first_line(error)}")
    raise BuildError("; ".join(errors))


def candidate_inputs(module: nn.Module, device: str = "cpu") -> list[Candidate]:
    """Candidate inputs, best guess first: from the first layer, then from sizes found on the module."""
    found: list[Candidate] = []
    first = _first_layer(module)
    if first is not None:
        found.extend(_inputs_for_layer(first, device))
    sizes = _sizes_on(module)
    for size in sizes:
        found.append(_dense((size,), device))
    for shape in [(SMALL,), (3, 32, 32), (SMALL, 32, 32), (1, 28, 28), (SMALL, 64), (8, SMALL)]:
        found.append(_dense(shape, device))
    for size in sizes:
        found.append(_dense((size, 32, 32), device))
    unique: dict[str, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.describe, candidate)
    arity = _required_inputs(module)
    return [_repeated(c, arity) for c in unique.values()] if arity > 1 else list(unique.values())


def _required_inputs(module: nn.Module) -> int:
    """How many positional arguments forward requires (each gets a tensor of the same shape)."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def _repeated(candidate: Candidate, arity: int) -> Candidate:
    def make(batch: int) -> tuple[torch.Tensor, ...]:
        return tuple(t for _ in range(arity) for t in candidate.make(batch))

    return Candidate(f"{arity} inputs, each {candidate.describe}", make, candidate.batch_dim)


def synthesize_input(module: nn.Module, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """An input that runs through ``module.forward``; BuildError with the reasons when none does."""
    return pick_input(module, device)[0].make(2)


def pick_input(module: nn.Module, device: str = "cpu") -> tuple[Candidate, object]:
    """The first candidate input that runs and whose batch follows into the output, with that output."""
    reasons = []
    for candidate in candidate_inputs(module, device):
        ok, detail = check_candidate(module, candidate)
        if ok:
            return candidate, detail
        reasons.append(f"{candidate.describe}: {detail}")
    raise BuildError("no input runs through forward (" + "; ".join(reasons[:3]) + ")")


def check_candidate(module: nn.Module, candidate: Candidate) -> tuple[bool, object]:
    """(True, output for batch 2) when the candidate runs with batch 2 and 3 and the output's batch
    dimension follows; (False, reason) otherwise."""
    outputs = []
    for batch in (2, 3):
        torch.manual_seed(0)
        try:
            with torch.no_grad():
                outputs.append(module(*candidate.make(batch)))
        except Exception as error:  # noqa: BLE001
            return False, f"forward raised {_first_line(error)}"
    shapes = [[tuple(t.shape) for t in tensors_in(out)] for out in outputs]
    if not shapes[0]:
        return False, "forward returned no tensor"
    if len(shapes[0]) == len(shapes[1]):
        for a, b in zip(*shapes):
            if len(a) == len(b) and any(x == 2 and y == 3 for x, y in zip(a, b)):
                return True, outputs[0]
    return False, "the output's batch dimension does not follow the input's (it only runs by broadcasting)"


def tensors_in(value: object) -> Iterator[torch.Tensor]:
    """The tensors in an output: a tensor, or nested tuples, lists and dicts of them."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)


def _first_layer(module: nn.Module) -> nn.Module | None:
    for sub in module.modules():
        if sub is not module and not list(sub.children()) and _is_input_layer(sub):
            return sub
        if isinstance(sub, (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer)) and sub is not module:
            return sub
    return None


def _is_input_layer(layer: nn.Module) -> bool:
    return isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear, nn.Bilinear, nn.Embedding, nn.RNNBase,
                              nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))


def _inputs_for_layer(layer: nn.Module, device: str) -> list[Candidate]:
    if isinstance(layer, nn.modules.conv._ConvNd):
        c = layer.in_channels
        dims = len(layer.kernel_size)
        spatial = {1: [(64,), (128,)], 2: [(32, 32), (64, 64)], 3: [(8, 16, 16)]}[dims]
        return [_dense((c, *s), device) for s in spatial]
    if isinstance(layer, nn.Linear):
        return [_dense((layer.in_features,), device), _dense((8, layer.in_features), device)]
    if isinstance(layer, nn.Embedding):
        n = layer.num_embeddings
        return [Candidate(f"integer ids (2, 8) below {n}",
                          lambda b: (torch.randint(0, n, (b, 8), device=device),))]
    if isinstance(layer, nn.RNNBase):
        size = layer.input_size
        if layer.batch_first:
            return [_dense((8, size), device)]
        return [Candidate(f"a (8, 2, {size}) sequence", lambda b: (torch.randn(8, b, size, device=device),), 1)]
    if isinstance(layer, nn.MultiheadAttention):
        e = layer.embed_dim
        if layer.batch_first:
            return [Candidate(f"query=key=value (2, 8, {e})", lambda b: (torch.randn(b, 8, e, device=device),) * 3)]
        return [Candidate(f"query=key=value (8, 2, {e})", lambda b: (torch.randn(8, b, e, device=device),) * 3, 1)]
    if isinstance(layer, nn.modules.batchnorm._NormBase):
        c = layer.num_features
        by_class = {"1d": [(c,), (c, 64)], "2d": [(c, 32, 32)], "3d": [(c, 8, 16, 16)]}
        return [_dense(s, device) for s in by_class.get(type(layer).__name__[-2:], [(c, 32, 32)])]
    if isinstance(layer, nn.LayerNorm):
        return [_dense(tuple(layer.normalized_shape), device), _dense((8, *layer.normalized_shape), device)]
    if isinstance(layer, nn.GroupNorm):
        return [_dense((layer.num_channels, 32, 32), device)]
    return []


def _dense(shape: tuple[int, ...], device: str) -> Candidate:
    shown = ", ".join(map(str, (2, *shape)))
    return Candidate(f"a ({shown}) tensor", lambda b: (torch.randn(b, *shape, device=device),))


def _sizes_on(module: nn.Module) -> list[int]:
    """Sizes a layer-less forward may expect: the dims of the module's tensors, then its int attributes."""
    sizes: list[int] = []
    for value in vars(module).values():
        if isinstance(value, torch.Tensor):
            sizes.extend(value.shape)
    for name in ("_parameters", "_buffers"):
        for value in getattr(module, name, {}).values():
            if value is not None:
                sizes.extend(value.shape)
    for value in vars(module).values():
        if isinstance(value, int) and not isinstance(value, bool) and 1 < value <= 4096:
            sizes.append(value)
    return list(dict.fromkeys(s for s in sizes if s > 1))


_NO_GUESS = object()


def _guess(name: str) -> object:
    for pattern, value in NAMED_VALUES:
        if re.fullmatch(pattern, name.lower()):
            return list(value) if isinstance(value, list) else value
    return _NO_GUESS


def _fill_missing(params: list[inspect.Parameter], kwargs: dict) -> bool:
    """Complete ``kwargs`` from defaults and names; False when a required argument has no guess."""
    for p in params:
        if p.name in kwargs or p.default is not p.empty:
            continue
        value = _guess(p.name)
        if value is _NO_GUESS:
            return False
        kwargs[p.name] = value
    return True


def _call_sites(name: str, path: str) -> list[tuple[list, dict]]:
    """Literal arguments of each call ``Name(...)`` in the file (calls with a non-literal skipped)."""
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return []
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee_name(node.func) == name:
            try:
                args = [ast.literal_eval(a) for a in node.args]
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            except (ValueError, SyntaxError, TypeError):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            sites.append((args, kwargs))
    return sites


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _from_call_site(params: list[inspect.Parameter], args: list, kwargs: dict) -> dict | None:
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(args) > len(positional) or any(k not in {p.name for p in params} for k in kwargs):
        return None
    chosen = {p.name: a for p, a in zip(positional, args)}
    chosen.update(kwargs)
    return chosen


def _show(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
