"""The CLI entry point: version, error handling and the default command."""

from __future__ import annotations

import argparse
import warnings

import pytest

from voxelstudio import __version__, cli
from voxelstudio.core.errors import VolumeReadError


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def _parser_with(func) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("boom").set_defaults(func=func)
    sub.add_parser("gui").set_defaults(func=lambda args: 7)
    return parser


def test_user_errors_become_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise VolumeReadError("scan.mat", "file is truncated\n(expected 4096 more bytes)")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(boom))
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "scan.mat: file is truncated (expected 4096 more bytes)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["denoise", "x.mat", "--voxel-size", "abc"], "voxelstudio denoise: error: argument --voxel-size"),
        (["evaluate", "--pred", "p.mat"], "voxelstudio evaluate: error: the following arguments are required"),
        (["no-such-command"], "voxelstudio: error: argument COMMAND: invalid choice"),
        (["denoise", "x.mat", "--tiles", "64"], "voxelstudio denoise: error: unrecognized arguments: --tiles 64"),
    ],
)
def test_usage_errors_are_one_line_with_where_to_look(argv, message, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(message) and line.endswith("--help)")


def test_ctrl_c_while_the_commands_load_is_an_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> argparse.ArgumentParser:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["info", "x.mat"]) == 130
    assert capsys.readouterr().err == "voxelstudio: interrupted\n"


def test_an_unforeseen_failure_is_one_line_with_where_to_find_more(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise AttributeError("'NoneType' object has no attribute 'items'")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(boom))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("voxelstudio: internal error: AttributeError: 'NoneType' object has no attribute 'items'")
    assert "--debug" in err
    with pytest.raises(AttributeError):
        cli.main(["--debug", "boom"])


def test_debug_flag_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise VolumeReadError("scan.mat", "bad")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(boom))
    with pytest.raises(VolumeReadError):
        cli.main(["--debug", "boom"])


def test_no_command_runs_the_gui_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(lambda args: 0))
    assert cli.main([]) == 7


def test_every_command_module_registers_without_importing_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from voxelstudio.cli import build_parser; build_parser(); "
        "bad = [m for m in ('tensorflow', 'keras', 'PySide6', 'pyvista') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_each_warning_is_shown_once_and_the_callers_filters_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def warn_from_two_places(args: argparse.Namespace) -> int:
        warnings.warn("scan.tif: unknown unit", stacklevel=1)
        warnings.warn("scan.tif: unknown unit", stacklevel=1)  # another line: Python alone would show it again
        warnings.warn("other.tif: unknown unit", stacklevel=1)
        return 0

    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: shown.append(str(message)))
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(warn_from_two_places))
    filters, show, format_warning = list(warnings.filters), warnings.showwarning, warnings.formatwarning

    assert cli.main(["boom"]) == 0

    assert shown == ["scan.tif: unknown unit", "other.tif: unknown unit"]
    assert (warnings.filters, warnings.showwarning, warnings.formatwarning) == (filters, show, format_warning)
