"""Run every benchmark script and refresh its section of ``benchmarks/README.md``.

Each script in BENCHMARKS runs in its own subprocess (progress on stderr passes through; its report is what it
prints on stdout: one or more Markdown tables, each optionally preceded by a caption paragraph). The README section
of a script lies between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->`` and is replaced by the date
(UTC), the machine (CPU, cores, RAM, GPU, TensorFlow) and the report; text outside the markers is kept, and a script
without a section gets one appended. A script that fails keeps its old section. Run from the repository root::

    python benchmarks/run_all.py                      # everything, full settings (about 5 hours)
    python benchmarks/run_all.py --only memory        # one script (repeat --only for more)
    python benchmarks/run_all.py --quick --no-write   # smoke run of all, README untouched
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
README = HERE / "README.md"


@dataclass(frozen=True)
class Benchmark:
    """A script ``<folder>/<name>.py``; ``title`` heads a section appended to the README when it has none."""

    name: str
    title: str
    needs_display: bool = False


BENCHMARKS = (
    Benchmark("blockwise", "Block-wise prediction"),
    Benchmark("calibrate", "Calibration (adapt)"),
    Benchmark("classify", "Classifier"),
    Benchmark("cpu_kernels", "CPU kernels"),
    Benchmark("denoise", "Denoisers"),
    Benchmark("gui_latency", "GUI latency", needs_display=True),
    Benchmark("memory", "Memory"),
    Benchmark("sim_generator", "Simulated-patch generator"),
    Benchmark("unseen", "Unseen microscopes"),
)
_QUICK_OPTION = re.compile(r"""add_argument\(\s*["']--quick["']""")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def replace_section(text: str, name: str, body: str, title: str | None = None) -> str:
    """``text`` with the section of ``name`` replaced by ``body`` (appended under ``## title`` when missing)."""
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return f"{text.rstrip()}\n\n## {title or name}\n\n{block}\n"


def extract_report(stdout: str) -> str:
    """The Markdown tables in ``stdout`` with the caption paragraph before the first one and any text after it.

    Output without a table is kept verbatim in a code block.
    """
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", stdout.strip()) if p.strip()]
    first = next((i for i, p in enumerate(paragraphs) if p.lstrip().startswith("|")), None)
    if first is None:
        return f"```\n{stdout.strip()}\n```" if stdout.strip() else "(no output)"
    return "\n\n".join(paragraphs[max(first - 1, 0) :])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "no GPU"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "no GPU"
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return ", ".join(names) if names else "no GPU"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_summary() -> str:
    """One line: CPU model, cores, RAM, GPU, TensorFlow/Keras versions and the load when the run started."""
    import psutil

    cores = os.cpu_count() or 0
    ram = psutil.virtual_memory().total / 2**30
    load = f"; load average {os.getloadavg()[0]:.1f} at start" if hasattr(os, "getloadavg") else ""
    return (
        f"{_cpu_model()}, {cores} cores, {ram:.1f} GiB RAM, {_gpus()}; Python {platform.python_version()}, "
        f"TensorFlow {_version('tensorflow')}, Keras {_version('keras')}{load}"
    )


def supports_quick(script: Path) -> bool:
    return _QUICK_OPTION.search(script.read_text(encoding="utf-8")) is not None


def command_for(bench: Benchmark, script: Path, quick: bool) -> list[str] | None:
    """The command line, with ``xvfb-run -a`` for GUI scripts when no display is set; None when it cannot run."""
    command = [sys.executable, str(script), *(["--quick"] if quick and supports_quick(script) else [])]
    if bench.needs_display and not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            return None
        command = ["xvfb-run", "-a", *command]
    return command


def section_body(shown: str, report: str, machine: str, when: dt.datetime) -> str:
    """The README section: when (UTC), which command, on what machine, then the script's report."""
    return f"_{when:%Y-%m-%d %H:%M} UTC, `{shown}`; {machine}._\n\n{report}"


def _shown(script: Path, command: Sequence[str]) -> str:
    path = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else script.name
    return " ".join(["python", path, *command[command.index(str(script)) + 1 :]])


def run_benchmark(bench: Benchmark, folder: Path, quick: bool, timeout: float | None) -> tuple[str | None, str]:
    """(README body or None, a note for the console)."""
    script = folder / f"{bench.name}.py"
    if not script.is_file():
        return None, f"{bench.name}: skipped ({script.name} not found)"
    command = command_for(bench, script, quick)
    if command is None:
        return None, f"{bench.name}: skipped (needs a display: set DISPLAY or install xvfb-run)"
    when = dt.datetime.now(dt.UTC)
    machine = machine_summary()
    print(f"== {bench.name}: {' '.join(command)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{bench.name}: FAILED (still running after {timeout:g} s); section kept"
    if done.returncode != 0:
        return None, f"{bench.name}: FAILED (exit code {done.returncode}); section kept"
    print(done.stdout, flush=True)
    return section_body(_shown(script, command), extract_report(done.stdout), machine, when), f"{bench.name}: ok"


def write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def main(
    argv: Sequence[str] | None = None,
    *,
    benchmarks: Sequence[Benchmark] = BENCHMARKS,
    folder: Path = HERE,
    readme: Path = README,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [b.name for b in benchmarks]
    parser.add_argument("--only", action="append", choices=names, metavar="NAME", help=f"one of {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the scripts that support it")
    parser.add_argument("--no-write", action="store_true", help="print the results; leave the README as it is")
    parser.add_argument("--timeout", type=float, metavar="S", help="give up on a script after S seconds")
    args = parser.parse_args(argv)
    chosen = [b for b in benchmarks if not args.only or b.name in args.only]
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n"
    notes, failed = [], False
    for bench in chosen:
        body, note = run_benchmark(bench, folder, args.quick, args.timeout)
        notes.append(note)
        failed |= "FAILED" in note
        if body is not None:
            text = replace_section(text, bench.name, body, bench.title)
            if not args.no_write:  # after each script: a later failure keeps the earlier results
                write_text_atomically(readme, text)
    print("\n".join(notes), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
