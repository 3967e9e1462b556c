"""Build a flagged module and an input for it, for the verifier's probes.

Constructor arguments come from the defaults, then from literal arguments at a call site of the
class in the same file, then from the parameter names. The input comes from the first layer reached
in module order; candidates are tried through forward, and one that only runs by broadcasting
against a parameter (the output's batch dimension does not follow the input's) is rejected.
"""

from __future__ import annotations

import ast
import collections.abc
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from torchlint.verify import tracing


class BuildError(Exception):
    """The module or its input could not be built; the message is the reason."""


SMALL = 16
NAMED_VALUES: list[tuple[str, object]] = [
    (r"(num_)?classes|n_classes|num_labels|n_out_classes", 10),
    (r"(num_)?heads?|n_heads?|nheads?", 2),
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


NO_INPUT = "no input runs through forward"
SIZES = (16, 8, 32, 64)  # tried in turn for the sizes a constructor takes


def instantiate(cls: type, path: str) -> tuple[nn.Module, str]:
    """An instance of ``cls`` and how its arguments were chosen; BuildError when it cannot."""
    return next(builds(cls, path, skip_self=True))


def builds(factory: Callable, path: str, *, skip_self: bool = False) -> Iterator[tuple[nn.Module, str]]:
    """Call ``factory`` (a class, or a function that returns a module) with arguments from each
    literal call site in the file, then from the defaults, the parameters' names and annotations
    with each of ``SIZES``: yield each module built and how its arguments were chosen (the caller
    takes the next when the module takes no input). BuildError when none could be built."""
    name = getattr(factory, "__name__", "the factory")
    target = factory.__init__ if skip_self else factory
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError) as error:
        raise BuildError(f"cannot read the signature of {name}: {error}") from None
    params = [p for p in list(signature.parameters.values())[1 if skip_self else 0:]
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    hints = _annotations(target)
    attempts: list[tuple[str, dict]] = []
    module = sys.modules.get(getattr(factory, "__module__", ""))
    namespace = vars(module) if module is not None else getattr(target, "__globals__", {})
    for site_args, site_kwargs in _call_sites(name, path, namespace):
        kwargs = _from_call_site(params, site_args, site_kwargs)
        if kwargs is not None and _fill_missing(params, kwargs, hints, SIZES[0]) is None:
            attempts.append(("arguments from the call site in the file", kwargs))
    missing: list[str] = []
    for size in SIZES:
        kwargs = {}
        missing = _fill_missing(params, kwargs, hints, size) or []
        if missing:
            break
        variants = [kwargs]
        if size == SIZES[0]:
            variants.append({**kwargs, **_flipped_options(params, hints)})
            variants.append({**kwargs, **_plural_lists(params, hints, size)})
            variants.append({**kwargs, **_identity_layers(params)})
        for variant in variants:
            if variant not in [a for _, a in attempts]:
                attempts.append(("", variant))
    if not attempts:
        shown = [f"{p} (annotated {_annotation_name(hints[p])})" if p in hints else p for p in missing]
        raise BuildError(f"cannot choose a value for {name}'s argument(s) {', '.join(shown)}")
    errors = []
    built = False
    for how, kwargs in attempts:
        tracing.forget_build()
        try:
            module = factory(**kwargs)
        except Exception as error:  # noqa: BLE001 - any failure of user code is a reason
            errors.append(f"{name}({_show(kwargs)}) raised {_first_line(error)}")
            continue
        if not isinstance(module, nn.Module):
            raise BuildError(f"{name}({_show(kwargs)}) returned {type(module).__name__}, not an nn.Module")
        built = True
        yield module, how or f"{name}({_show(kwargs)})"
    if not built:
        raise BuildError("; ".join(dict.fromkeys(errors[:3])))


def _flipped_options(params: list[inspect.Parameter], hints: dict) -> dict:
    """The boolean options turned the other way from their defaults (a branch behind a flag)."""
    flipped = {}
    for p in params:
        if isinstance(p.default, bool):
            flipped[p.name] = not p.default
        elif p.default is p.empty and hints.get(p.name) is bool:
            flipped[p.name] = True
    return flipped


def _plural_lists(params: list[inspect.Parameter], hints: dict, size: int) -> dict:
    """Lists of sizes for the required parameters that nothing else guesses and whose names are
    plural (``depths``, ``blocks_per_stage``): an int there is often iterated."""
    lists = {}
    for p in params:
        plural = any(word.endswith("s") and not word.endswith("ss") for word in p.name.lower().split("_"))
        if p.default is p.empty and p.name not in hints and _guess(p.name) is _NO_GUESS and plural:
            lists[p.name] = [size, size, size]
    return lists


_LAYER_ARGUMENT = re.compile(r"(\w+_)?(norm|act|activation|nonlinearity|layer|block|fn|func|module)(_\w+)?")
IDENTITY_STANDIN = "nn.Identity"


def _identity_layers(params: list[inspect.Parameter]) -> dict:
    """``nn.Identity`` for the required parameters named like a layer class (``norm``,
    ``act_layer``, ``norm_dec``): it takes any arguments. A verdict that such a build refutes
    does not stand (``probes``): the real layer may differ."""
    return {p.name: nn.Identity for p in params if p.default is p.empty and _LAYER_ARGUMENT.fullmatch(p.name.lower())}


def _annotation_name(annotation: object) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)


def candidate_inputs(module: nn.Module, device: str = "cpu") -> list[Candidate]:
    """Candidate inputs, best guess first: the module's own ``example_input_array``, sizes that
    forward's literal ``view``/``reshape`` calls expect, the first layer's input (for a
    convolution, a size that reaches the first Linear with its ``in_features``), then sizes found
    on the module and common shapes. A forward that also takes a recurrent state gets one."""
    found: list[Candidate] = _example_inputs(module, device)
    found.extend(_dense(shape, device) for shape in _literal_view_shapes(module))
    first = _first_layer(module)
    if first is not None:
        layer_inputs = _inputs_for_layer(first, device)
        if isinstance(first, nn.modules.conv._ConvNd) and layer_inputs:
            found.extend(_fitted_to_linear(module, first, device))
        found.extend(layer_inputs)
    sizes = _sizes_on(module)
    for size in sizes:
        found.append(_dense((size,), device))
    for shape in [(SMALL,), (3, 32, 32), (SMALL, 32, 32), (1, 28, 28), (SMALL, 64), (8, SMALL)]:
        found.append(_dense(shape, device))
    for size in sizes:
        found.append(_dense((size, 32, 32), device))
    if isinstance(first, nn.modules.conv._ConvNd) and len(first.kernel_size) == 2:
        found.append(_dense((first.in_channels, 224, 224), device))
    unique: dict[str, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.describe, candidate)
    arity = _required_inputs(module)
    if arity <= 1 or any(c.describe.startswith("example_input_array") for c in unique.values()):
        return list(unique.values())
    state = _recurrent_state(module, device) if arity == 2 else None
    if state is not None:
        return [_with_state(c, state) for c in unique.values()] + [_repeated(c, arity) for c in unique.values()]
    names = _input_names(module)[1:arity]
    named = [_with_named(c, names, device) for c in unique.values()] if any(_EXTRA_INPUTS.get(_kind(n)) for n in names) else []
    return named + [_repeated(c, arity) for c in unique.values()]


def _input_names(module: nn.Module) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


_KINDS = [
    ("time", r"t|time|times|timesteps?|noise_levels?|sigmas?|steps?"),
    ("mask", r"\w*mask"),
    ("label", r"y|labels?|class_labels?|classes|targets?|class_ids?"),
]
# For a further input of forward named like a time step, a mask or class labels: its value, made
# from the first input ``x`` (batch first).
_EXTRA_INPUTS: dict[str, Callable[[torch.Tensor, str], torch.Tensor]] = {
    "time": lambda x, device: torch.rand(x.shape[0], device=device),
    "mask": lambda x, device: torch.ones(x.shape[:2], dtype=torch.bool, device=device),
    "label": lambda x, device: torch.randint(0, 10, (x.shape[0],), device=device),
}


def _kind(name: str) -> str | None:
    return next((kind for kind, pattern in _KINDS if re.fullmatch(pattern, name.lower())), None)


def _with_named(candidate: Candidate, names: list[str], device: str) -> Candidate:
    """The candidate as the first input; a time step, mask or labels for the inputs named so; the
    candidate's shape again for the others."""
    def make(batch: int) -> tuple[torch.Tensor, ...]:
        first = candidate.make(batch)
        x = first[0]
        return (*first, *(_EXTRA_INPUTS[kind](x, device) if (kind := _kind(n)) else x.clone() for n in names))

    shown = ", ".join(f"{n} as {_kind(n) or 'the same'}" for n in names)
    return Candidate(f"{candidate.describe} with {shown}", make, candidate.batch_dim)


def _example_inputs(module: nn.Module, device: str) -> list[Candidate]:
    """Lightning's convention: ``self.example_input_array``, a tensor or a tuple of them (batch first)."""
    example = vars(module).get("example_input_array")
    tensors = (example,) if isinstance(example, torch.Tensor) else example
    if not isinstance(tensors, tuple) or not tensors or not all(isinstance(t, torch.Tensor) and t.dim() for t in tensors):
        return []
    shapes = [tuple(t.shape[1:]) for t in tensors]

    def make(batch: int) -> tuple[torch.Tensor, ...]:
        return tuple(_like(t, (batch, *shape), device) for t, shape in zip(tensors, shapes))

    shown = ", ".join(str((2, *shape)) for shape in shapes)
    return [Candidate(f"example_input_array-shaped {shown}", make)]


def _like(example: torch.Tensor, shape: tuple, device: str) -> torch.Tensor:
    if example.is_floating_point():
        return torch.randn(shape, dtype=example.dtype, device=device)
    high = max(int(example.max()) + 1, 2) if example.numel() else 2
    return torch.randint(0, high, shape, dtype=example.dtype, device=device)


_RESHAPES = {"view", "reshape"}


def _literal_view_shapes(module: nn.Module) -> list[tuple[int, ...]]:
    """Per-sample shapes that forward's ``x.view(-1, 1, 28, 28)`` / ``reshape(b, 784)`` calls name:
    every size but the first a literal; each shape as given and flattened."""
    try:
        source = inspect.getsource(type(module).forward)
        tree = ast.parse(_dedent(source))
    except (OSError, TypeError, SyntaxError, ValueError):
        return []
    shapes: list[tuple[int, ...]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _RESHAPES):
            continue
        args = node.args[0].elts if len(node.args) == 1 and isinstance(node.args[0], (ast.Tuple, ast.List)) else node.args
        sizes = [a.value for a in args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, int)]
        if len(args) < 2 or len(sizes) != len(args) - 1 or any(v < 1 for v in sizes):
            continue
        shape = tuple(sizes)
        shapes.append(shape)
        if len(shape) > 1:
            shapes.append((_product(shape),))
    return list(dict.fromkeys(shapes))[:4]


def _dedent(source: str) -> str:
    lines = source.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


class _ReachedLinear(Exception):
    def __init__(self, arriving: int, expected: int):
        self.arriving, self.expected = arriving, expected


def _fitted_to_linear(module: nn.Module, conv: nn.modules.conv._ConvNd, device: str) -> list[Candidate]:
    """A convolution input whose spatial size makes the first Linear that forward reaches receive
    its ``in_features`` (a flatten between them): found by running forward up to that Linear."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return []
    dims = len(conv.kernel_size)

    def stop(layer, args):
        arriving = args[0].shape[-1] if args and isinstance(args[0], torch.Tensor) else -1
        raise _ReachedLinear(arriving, layer.in_features)

    def reaching(size: int) -> _ReachedLinear | None:
        handles = [layer.register_forward_pre_hook(stop) for layer in linears]
        try:
            with torch.no_grad():
                module(torch.randn(1, conv.in_channels, *(size,) * dims, device=device))
        except _ReachedLinear as reached:
            return reached
        except Exception:  # noqa: BLE001 - this size does not reach a Linear
            return None
        finally:
            for handle in handles:
                handle.remove()
        return None

    starts = {1: (64, 256), 2: (64, 224), 3: (16, 32)}[dims]
    start, first = next(((s, r) for s in starts if (r := reaching(s)) is not None), (0, None))
    if first is None or first.arriving <= 0 or first.arriving == first.expected:
        return []
    estimate = start * (first.expected / first.arriving) ** (1 / dims)
    for size in sorted(range(max(2, int(estimate) - 12), int(estimate) + 13), key=lambda s: abs(s - estimate)):
        got = reaching(size)
        if got is not None and got.arriving == got.expected:
            dense = _dense((conv.in_channels, *(size,) * dims), device)
            return [Candidate(f"{dense.describe} (it gives the first Linear its {got.expected} in_features)", dense.make)]
    return []


def _recurrent_state(module: nn.Module, device: str) -> Callable[[int], object] | None:
    """For ``forward(x, hidden)``: the module's own ``init_hidden(batch)``, else zeros shaped for
    its first LSTM ((h, c)), GRU or RNN (h)."""
    rnn = next((m for m in module.modules() if isinstance(m, nn.RNNBase)), None)
    if rnn is None:
        return None
    for name in ("init_hidden", "init_state", "initHidden", "begin_state", "init_hidden_state"):
        method = getattr(module, name, None)
        if callable(method):
            def own(batch: int, method=method):
                try:
                    return method(batch)
                except TypeError:
                    return method(batch, device)
            return own
    layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
    hidden = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size

    def zeros(batch: int) -> object:
        h = torch.zeros(layers, batch, hidden, device=device)
        if isinstance(rnn, nn.LSTM):
            return h, torch.zeros(layers, batch, rnn.hidden_size, device=device)
        return h

    return zeros


def _with_state(candidate: Candidate, state: Callable[[int], object]) -> Candidate:
    def make(batch: int) -> tuple:
        return (*candidate.make(batch), state(batch))

    return Candidate(f"{candidate.describe} and a recurrent state for that batch", make, candidate.batch_dim)


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
    raise BuildError(f"{NO_INPUT} (" + "; ".join(reasons[:3]) + ")")


def check_candidate(module: nn.Module, candidate: Candidate) -> tuple[bool, object]:
    """(True, output for batch 2) when the candidate runs with batch 2 and 3 and the output's batch
    dimension follows; (False, reason) otherwise."""
    tracing.mark_input(candidate.describe)
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
        return [Candidate(f"integer ids (2, 8) below {n}", lambda b: (torch.randint(0, n, (b, 8), device=device),)),
                Candidate(f"integer ids (8, 2) below {n} (sequence first)",
                          lambda b: (torch.randint(0, n, (8, b), device=device),), 1)]
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


def _fill_missing(params: list[inspect.Parameter], kwargs: dict, hints: dict, size: int) -> list[str] | None:
    """Complete ``kwargs`` for the required parameters: from the name (when the annotation agrees),
    the annotation, else ``size`` for a parameter neither names nor annotates. The parameters it
    could not fill, or None when all are."""
    missing = []
    for p in params:
        if p.name in kwargs or p.default is not p.empty:
            continue
        value = _value_for(p.name, hints.get(p.name, _NO_GUESS), size)
        if value is _NO_GUESS:
            missing.append(p.name)
        else:
            kwargs[p.name] = value
    return missing or None


_CONFIG_ARGUMENT = re.compile(r"args|opts?|config|cfg|conf|hparams|hp|params|settings|(\w+_)?(config|cfg|args|opts)")


class SynthConfig:
    """A stand-in for a configuration object (``args``, ``cfg``, ``hparams``): each attribute or
    key read gets the value its name suggests (``cfg.num_heads`` 2, ``args.dropout`` 0.5), else the
    size. ``repr`` lists what the module read."""

    def __init__(self, size: int):
        object.__setattr__(self, "_size", size)
        object.__setattr__(self, "_read", {})

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name not in self._read:
            value = _guess(name)
            self._read[name] = self._size if value is _NO_GUESS or value == SMALL and not isinstance(value, bool) else value
        return self._read[name]

    __getitem__ = __getattr__

    def get(self, name: str, default: object = None) -> object:
        return default if default is not None else getattr(self, name)

    def __contains__(self, name: str) -> bool:
        return True

    def __repr__(self) -> str:
        return "<config: " + ", ".join(f"{k}={v!r}" for k, v in self._read.items()) + ">"


def _value_for(name: str, annotation: object, size: int) -> object:
    guess = _guess(name)
    if guess == SMALL and not isinstance(guess, bool):
        guess = size
    if guess is _NO_GUESS and _CONFIG_ARGUMENT.fullmatch(name.lower()) and _from_annotation(annotation, size) is _NO_GUESS:
        return SynthConfig(size)
    if annotation is _NO_GUESS or annotation is inspect.Parameter.empty:
        return size if guess is _NO_GUESS else guess
    typed = _from_annotation(annotation, size)
    if guess is not _NO_GUESS and (typed is _NO_GUESS or _same_kind(guess, typed)):
        return guess
    return typed


def _same_kind(a: object, b: object) -> bool:
    kinds = (bool, int, float, str, list, tuple, type(None))
    return next((k for k in kinds if isinstance(a, k)), None) is next((k for k in kinds if isinstance(b, k)), None)


def _from_annotation(annotation: object, size: int) -> object:
    """A value of the annotated type: int, float, bool, sequences and tuples of ints, Optional."""
    if annotation is bool:
        return False
    if annotation is int:
        return size
    if annotation is float:
        return 0.1
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        for option in options:
            value = _from_annotation(option, size)
            if value is not _NO_GUESS:
                return value
        return None if type(None) in args else _NO_GUESS
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _from_annotation(args[0], size)
            return _NO_GUESS if item is _NO_GUESS else (item, item, item)
        items = [_from_annotation(a, size) for a in args]
        return _NO_GUESS if not items or _NO_GUESS in items else tuple(items)
    if origin in (list, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable):
        item = _from_annotation(args[0], size) if args else size
        return _NO_GUESS if item is _NO_GUESS else [item, item, item]
    return _NO_GUESS


def _annotations(function: Callable) -> dict:
    """The parameter annotations of ``function``, string annotations evaluated where they can be."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - a name the annotations use is missing: take them one by one
        pass
    found = {}
    namespace = getattr(function, "__globals__", {})
    for name, annotation in getattr(function, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))  # noqa: S307 - the user's own annotation
            except Exception:  # noqa: BLE001
                continue
        found[name] = annotation
    return found


def _call_sites(name: str, path: str, namespace: dict) -> list[tuple[list, dict]]:
    """The arguments of each call ``Name(...)`` in the file whose arguments are literals, or
    modules built from literals (``Wrap(Attention(64))``, the class found in ``namespace``)."""
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return []
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee_name(node.func) == name:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            try:
                args = [_site_value(a, namespace) for a in node.args]
                kwargs = {k.arg: _site_value(k.value, namespace) for k in node.keywords}
            except (ValueError, SyntaxError, TypeError):
                continue
            sites.append((args, kwargs))
    return sites


def _site_value(node: ast.expr, namespace: dict) -> object:
    """A literal, or an nn.Module of the file built from literals; ValueError otherwise."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        cls = namespace.get(node.func.id)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            try:
                return cls(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the user's constructor
                raise ValueError(str(error)) from None
    return ast.literal_eval(node)


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
    return ", ".join(f"{k}={IDENTITY_STANDIN if v is nn.Identity else repr(v)}" for k, v in kwargs.items())


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
