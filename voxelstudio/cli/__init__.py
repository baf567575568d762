"""Command-line interface: ``voxelstudio <command> ...``.

Each sub-module registers its sub-commands and calls into :mod:`voxelstudio.tasks`; none holds logic of its own.
Errors users can act on become one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from voxelstudio import __version__
from voxelstudio.core.errors import VoxelStudioError, message_of

# Modules that each define ``register(subparsers)``. Importing them must stay cheap (no TensorFlow at module level).
COMMAND_MODULES = (
    "voxelstudio.cli.data_commands",
    "voxelstudio.cli.sim_commands",
    "voxelstudio.cli.calibrate_commands",
    "voxelstudio.cli.denoise_commands",
    "voxelstudio.cli.eval_commands",
    "voxelstudio.cli.classify_commands",
    "voxelstudio.cli.gui_commands",
    "voxelstudio.cli.doctor_commands",
    "voxelstudio.cli.model_commands",
)

EXIT_USAGE = 2
ML_COMMANDS = frozenset(
    {"train-denoiser", "adapt", "denoise", "train-classifier", "evaluate-classifier", "classify", "export-model"}
)
"""Commands that start Keras: ``KERAS_BACKEND`` is checked and the backend started first, with TensorFlow's native
start-up lines filtered from stderr."""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors (a missing or malformed option) on one line, like every other error, instead of the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="voxelstudio",
        description="View 3D microscope volumes and clean them with deep learning. "
        "Without a command, the desktop window opens.",
    )
    parser.add_argument("--version", action="version", version=f"voxelstudio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command group not built yet
        module.register(subparsers)
    parser.commands = subparsers.choices  # type: ignore[attr-defined]  # which parser _parse blames for a stray argument
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; an argument no parser takes is reported by its command's parser, whose --help lists the
    command's options (argparse would report it from the top level)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands = getattr(parser, "commands", {})
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _one_line_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> str:
    """Warnings as ``voxelstudio: warning: ...`` on one line (``--debug`` keeps Python's file:line form)."""
    return f"voxelstudio: warning: {' '.join(str(message).split())}\n"


def _fail(message: str) -> int:
    print(f"voxelstudio: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _start_backend(*, debug: bool) -> None:
    from voxelstudio.core.backends import select_backend
    from voxelstudio.ml.quiet_start import start_backend_quietly

    if debug:  # everything on stderr, as the backend prints it
        select_backend()
        from voxelstudio.ml import backend  # noqa: F401  # Keras started as in quiet mode (on TensorFlow, without JAX)
    else:
        start_backend_quietly()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # importing the command modules takes a moment: Ctrl-C there is an interruption too
        parser = build_parser()
        args = _parse(parser, argv)
        if args.command is None:  # plain ``voxelstudio`` opens the window
            args = _parse(parser, [*argv, "gui"])
    except KeyboardInterrupt:
        print("voxelstudio: interrupted", file=sys.stderr)
        return 130
    format_warning = warnings.formatwarning
    with warnings.catch_warnings():  # main() may run inside another program (tests, notebooks): filters restored
        try:
            if not args.debug:
                _one_line_warnings()
            return _run(args)
        finally:
            warnings.formatwarning = format_warning


def _one_line_warnings() -> None:
    """Our warnings once each, on one line; the reader libraries' silenced (the one-line error says it already)."""
    warnings.filterwarnings("ignore", module=r"(scipy|h5py|tifffile|numpy)(\.|$)")
    warnings.formatwarning = _one_line_warning
    warnings.showwarning = _once_per_message(warnings.showwarning)


def _once_per_message(show: Callable[..., None]) -> Callable[..., None]:
    """``show`` for each message's first time only: Python dedupes by line of code, so a file read twice (listed,
    then loaded) would warn twice. Not ``"once"`` filters, whose registry outlives this command."""
    seen: set[tuple[str, type[Warning]]] = set()

    def show_once(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        key = (str(message), category)
        if key not in seen:
            seen.add(key)
            show(message, category, *args, **kwargs)

    return show_once


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command in ML_COMMANDS:
            _start_backend(debug=args.debug)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("voxelstudio: interrupted", file=sys.stderr)
        return 130
    except (VoxelStudioError, OSError, ValueError) as exc:
        if args.debug:
            raise
        return _fail(message_of(exc))
    except MemoryError:
        if args.debug:
            raise
        return _fail("out of memory; try a smaller volume or more tiles")
    except Exception as exc:  # a defect of ours, or a case not foreseen: still one line, the traceback on request
        if args.debug:
            raise
        problem = f"{type(exc).__name__}: {message_of(exc)}"
        print(f"voxelstudio: internal error: {problem} (run again with --debug for the traceback, and please report "
              "it)", file=sys.stderr)  # fmt: skip
        return 1
