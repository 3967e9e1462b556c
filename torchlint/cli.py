"""The command line: ``torchlint check``, ``torchlint rules``, ``torchlint rule CODE``,
``torchlint clean``, ``torchlint lsp``.

Exit status, as ruff's: 0 no findings, 1 findings, 2 usage, configuration or internal error.
With ``--fix``, the findings that remain count; with ``--diff``, 1 when there is a diff.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from torchlint import __version__, add_noqa, cache, config, engine, fixes, index
from torchlint.config import ConfigError
from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE, PARSE_ERROR_NAME, PARSE_ERROR_SUMMARY, rule_doc

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: ``torchlint: error: ...``, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"torchlint: error: {message}\n")


def _code_list(value: str) -> list[str]:
    try:
        return [config.validate_code(c) for c in value.split(",") if c.strip()]
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _target_version(value: str) -> tuple[int, int]:
    try:
        return config.parse_target_version(value, "--target-version")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--target-version ")) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _jobs(value: str) -> int:
    if value == "auto":
        return _cores()
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes (1 or more) or 'auto', got {value!r}")
    return jobs


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torchlint", description="Find the PyTorch bugs that do not crash.")
    parser.add_argument("--version", action="version", version=f"torchlint {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="check files and directories (default: .)")
    check.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    check.add_argument("--output-format", choices=config.OUTPUT_FORMATS, help="full (default: each finding with its source lines), concise (one line each; text is its old name), json, sarif (SARIF 2.1.0, for code scanning) or github (workflow annotations); default: output-format in the configuration, else full")
    check.add_argument("--select", type=_code_list, help="comma-separated codes or prefixes to enable (replaces the configured set)")
    check.add_argument("--ignore", type=_code_list, default=[], help="codes or prefixes to disable")
    check.add_argument("--extend-select", type=_code_list, default=[], help="codes or prefixes to enable in addition")
    check.add_argument("--target-version", type=_target_version, metavar="X.Y", help="the oldest PyTorch the project supports: decides which deprecations apply (default: the latest)")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    check.add_argument("--statistics", action="store_true", help="print the number of findings per rule instead of the findings")
    check.add_argument("--config", type=Path, help="the configuration file for every file (default: for each file, the nearest torchlint.toml or pyproject.toml with [tool.torchlint])")
    check.add_argument("--isolated", action="store_true", help="ignore every configuration file")
    check.add_argument("--fix", action="store_true", help="apply the safe fixes, then report what remains")
    check.add_argument("--unsafe-fixes", action="store_true", help="also apply (with --fix, --diff) or offer the unsafe fixes")
    check.add_argument("--show-fixes", action=argparse.BooleanOptionalAction, default=None, help="with --fix, list the fixes applied, per file and rule (default: show-fixes in the configuration, else no)")
    check.add_argument("--add-noqa", action="store_true", help="add a `# noqa: CODE` to every line with a finding, merged with an existing `# noqa`, and write nothing else")
    check.add_argument("--diff", action="store_true", help="print a diff of what --fix would change and write nothing (exit 1 when there is one)")
    check.add_argument("--extension", action="append", default=[], metavar="EXT:LANG", help="read files ending in .EXT as LANG (python or ipynb), e.g. ipynb:python; comma-separated, repeatable (default: py, pyi: python; ipynb: ipynb)")
    check.add_argument("--no-project", action="store_true", help="check each file on its own, without the project index")
    check.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N", help="check files in N processes (default: auto, one per core)")
    check.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    check.add_argument("--cache-dir", type=Path, metavar="DIR", help="the cache directory (default: .torchlint_cache in the project root, or $TORCHLINT_CACHE_DIR)")
    check.add_argument("--verify", action="store_true", help="run each flagged model in a sandboxed subprocess and confirm or refute the finding (needs torch)")
    check.add_argument("--verify-device", choices=["auto", "cpu", "cuda", "mps", "meta"], default="auto", help="the device the verifier runs on (default: auto, cuda then mps then cpu)")
    check.add_argument("--verify-timeout", type=_seconds, default=20.0, metavar="S", help="seconds allowed for a file's import and for each finding (default: 20)")
    check.add_argument("--verify-import", choices=["definitions", "full"], default="definitions", help="run only the file's definitions (default) or all its top-level code")

    sub.add_parser("rules", help="list every rule")
    rule = sub.add_parser("rule", help="print a rule's documentation page")
    rule.add_argument("code")
    sub.add_parser("lsp", help="start the language server on stdio (needs the lsp extra)")
    clean = sub.add_parser("clean", help="remove the cache directories under the current directory")
    clean.add_argument("--cache-dir", type=Path, metavar="DIR", help="also remove this cache directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            status = _check(args)
        elif args.command == "rules":
            status = _rules()
        elif args.command == "lsp":
            status = _lsp()
        elif args.command == "clean":
            status = _clean(args)
        else:
            status = _rule(args.code)
        sys.stdout.flush()
        return status
    except ConfigError as e:
        print(f"torchlint: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except FileNotFoundError as e:
        print(f"torchlint: error: no such file or directory: {e.args[0]}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as the docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    except engine.InternalError as e:
        print(f"torchlint: internal error {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # an internal error must still be one line and exit 2
        print(f"torchlint: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR


def _check(args: argparse.Namespace) -> int:
    from torchlint.report import DEFAULT_FORMAT, FORMATS, text

    if args.verify:
        from torchlint import verify

        if verify.torch_missing():
            raise ConfigError(verify.TORCH_MISSING)
    overrides = {
        "select": args.select, "ignore": args.ignore, "extend_select": args.extend_select,
        "extension": config.parse_extensions(args.extension), "target_version": args.target_version,
    }
    if args.config and not args.config.is_file():
        raise ConfigError(f"--config: no such file: {args.config}")
    if args.isolated or args.config:  # one configuration (or none) for every file
        settings = config.load(None if args.isolated else args.config)
        selection = config.selection(settings, **overrides)
    else:  # each file's nearest configuration, as ruff's
        settings = config.load(config.find_config(Path(args.paths[0])))
        selection = config.per_file_selection(Path(args.paths[0]), **overrides)
    root = index.find_root(Path(args.paths[0]))
    cache_dir = args.cache_dir or settings.cache_dir or cache.default_dir(root)
    jobs = args.jobs if args.jobs is not None else _cores()
    project = None
    if settings.project_index and not args.no_project:
        project = index.loader(root, cache_dir, use_cache=not args.no_cache, jobs=jobs, save=not args.diff)
    results_cache = None
    if not args.no_cache:
        results_cache = cache.ResultCache(cache_dir, lambda: project().digest if project is not None else None)
    unsafe = args.unsafe_fixes
    if args.add_noqa:
        if args.fix or args.diff:
            raise ConfigError("--add-noqa cannot be used with --fix or --diff")
        return _add_noqa(add_noqa.add_noqa_paths(args.paths, selection, project))
    if args.diff:
        return _diff(fixes.fix_paths(args.paths, selection, project, unsafe, False, results_cache, jobs), unsafe)
    fixed = 0
    if args.fix:
        results = fixes.fix_paths(args.paths, selection, project, unsafe, True, results_cache, jobs)
        _tell_problems(results)
        findings = sorted(f for r in results for f in r.remaining)
        fixed = sum(r.fixed for r in results)
        show_fixes = args.show_fixes if args.show_fixes is not None else settings.show_fixes
        if show_fixes and args.output_format in (None, "full", "concise", "text") and not args.statistics:
            sys.stdout.write(text.render_fixes(results))
    else:
        findings = engine.check_paths(args.paths, selection, project, results_cache, jobs)
    if args.statistics:
        out = text.render_statistics(findings, unsafe=unsafe)
    else:
        verifications = _verify(findings, args) if args.verify else None
        output_format = args.output_format or settings.output_format or DEFAULT_FORMAT
        out = FORMATS[output_format](findings, unsafe=unsafe, fixed=fixed, verifications=verifications)
    sys.stdout.write(out)
    return EXIT_FINDINGS if findings and not args.exit_zero else EXIT_CLEAN


def _verify(findings: list[engine.Finding], args: argparse.Namespace) -> dict:
    """``--verify``: a verification per finding, with a progress line on stderr when it is a
    terminal."""
    from torchlint import verify

    progress = _show_progress if sys.stderr.isatty() else None
    try:
        return verify.verify_findings(
            findings, device=args.verify_device, timeout=args.verify_timeout, import_mode=args.verify_import, progress=progress
        )
    finally:
        if progress:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _show_progress(n: int, total: int, path: str) -> None:
    sys.stderr.write(f"\r\x1b[K[{n}/{total}] verifying {path}")
    sys.stderr.flush()


def _diff(results: list[fixes.FixResult], unsafe: bool) -> int:
    """``--diff``: the diffs on stdout, what they fix on stderr; exit 1 when there is a diff, as
    ruff (``--exit-zero`` does not change that)."""
    _tell_problems(results)
    changed = [r for r in results if r.changed]
    sys.stdout.write("".join(r.diff() for r in changed))
    sys.stdout.flush()
    n = sum(r.fixed for r in changed)
    summary = f"Would fix {n} finding{'s' if n != 1 else ''}" if n else "No findings would be fixed"
    hidden = sum(f.fix is not None and not fixes.fixable(f, unsafe) for r in results for f in r.remaining)
    if hidden:
        summary += f" ({hidden} hidden fix{'es' if hidden != 1 else ''} can be enabled with the `--unsafe-fixes` option)"
    print(summary + ".", file=sys.stderr)
    return EXIT_FINDINGS if changed else EXIT_CLEAN


def _add_noqa(results: list) -> int:
    """``--add-noqa``: one line on stderr for each file left as it was and why, then ruff's
    ``Added N noqa directives.``; exit 0."""
    for r in results:
        if r.problem:
            print(f"torchlint: not adding noqa to {r.path}: {r.problem}", file=sys.stderr)
        elif r.left:
            print(f"torchlint: {r.path}: {r.left} finding(s) on lines that cannot take a comment", file=sys.stderr)
    n = sum(r.added for r in results)
    print(f"Added {n} noqa directive{'s' if n != 1 else ''}.", file=sys.stderr)
    return EXIT_CLEAN


def _tell_problems(results: list[fixes.FixResult]) -> None:
    """One line on stderr for each file left untouched (or not fixed to the end), and why."""
    for r in results:
        if r.problem:
            print(f"torchlint: {r.path}: {r.problem}" if r.changed else f"torchlint: not fixing {r.path}: {r.problem}", file=sys.stderr)


def _lsp() -> int:
    try:
        from torchlint import lsp
    except ImportError as e:
        if (e.name or "").partition(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise ConfigError("the language server needs pygls: pip install 'torchlint[lsp]'") from None
    lsp.serve()
    return EXIT_CLEAN


def _clean(args: argparse.Namespace) -> int:
    """Remove every ``.torchlint_cache`` under the current directory (as ``ruff clean``), the
    one ``$TORCHLINT_CACHE_DIR`` names, and ``--cache-dir``."""
    found = [Path(d) / name for d, names, _ in os.walk(".") for name in names if name == cache.CACHE_DIR]
    if os.environ.get("TORCHLINT_CACHE_DIR"):
        found.append(Path(os.environ["TORCHLINT_CACHE_DIR"]))
    if args.cache_dir:
        found.append(args.cache_dir)
    for directory in cache.clean(list(dict.fromkeys(found))):
        print(f"Removing cache at: {directory}", file=sys.stderr)
    return EXIT_CLEAN


def _rules() -> int:
    print(f"{PARSE_ERROR_CODE}  {PARSE_ERROR_NAME:<34} on   {PARSE_ERROR_SUMMARY}")
    for code, rule in ALL_RULES.items():
        state = "on " if rule.default_enabled else "off"
        why = "" if rule.default_enabled else f" [off by default: {rule.off_reason}]"
        print(f"{code}  {rule.name:<34} {state}  {rule.summary}{why}")
    return EXIT_CLEAN


def _rule(code: str) -> int:
    code = code.upper()
    page = rule_doc(code)
    if page is None:
        raise ConfigError(f"unknown rule code {code!r} (see `torchlint rules`)")
    sys.stdout.write(page.read_text(encoding="utf-8"))
    return EXIT_CLEAN
