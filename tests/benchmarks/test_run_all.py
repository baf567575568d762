"""benchmarks/run_all.py: section replacement between markers, report extraction, and a run with fake scripts."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("benchmarks_run_all", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


README = """# Benchmarks

Intro kept.

## Fake

Notes before the markers stay.

<!-- bench:fake:start -->
old table
<!-- bench:fake:end -->

Reading it: notes after the markers stay too.

## Other

<!-- bench:other:start -->
other results
<!-- bench:other:end -->
"""

FAKE = """
import argparse, sys
parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()
print("loading data ...", file=sys.stderr)
print("progress chatter on stdout")
print()
print("3 things measured, quick={}".format(args.quick))
print()
print("| what | value |")
print("|---|---:|")
print("| answer | 42 |")
"""


def test_replace_section_changes_only_its_markers(run_all):
    text = run_all.replace_section(README, "fake", "new table\n")
    assert "<!-- bench:fake:start -->\nnew table\n<!-- bench:fake:end -->" in text
    assert "old table" not in text and "other results" in text
    assert text.replace("new table", "old table") == README
    assert run_all.replace_section(text, "fake", "new table") == text  # idempotent


def test_a_script_without_a_section_gets_one_appended(run_all):
    text = run_all.replace_section(README, "memory", "| a |\n|---|", title="Memory")
    assert text.startswith(README.rstrip())
    assert text.endswith("## Memory\n\n<!-- bench:memory:start -->\n| a |\n|---|\n<!-- bench:memory:end -->\n")


def test_extract_report_keeps_caption_tables_and_what_follows(run_all):
    out = "chatter\n\ncaption line\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nTiled: 3 s\n"
    assert run_all.extract_report(out) == "caption line\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nTiled: 3 s"
    assert run_all.extract_report("| a |\n|---|\n") == "| a |\n|---|"
    assert run_all.extract_report("value  3\n") == "```\nvalue  3\n```"


def test_main_runs_scripts_and_refreshes_their_sections(run_all, tmp_path, capsys):
    (tmp_path / "fake.py").write_text(FAKE)
    (tmp_path / "other.py").write_text("import sys\nprint('| x |')\nsys.exit(3)\n")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    benches = [run_all.Benchmark("fake", "Fake"), run_all.Benchmark("other", "Other"),
               run_all.Benchmark("missing", "Missing")]  # fmt: skip

    code = run_all.main(["--quick"], benchmarks=benches, folder=tmp_path, readme=readme)

    assert code == 1  # "other" failed
    text = readme.read_text()
    section = re.search(r"<!-- bench:fake:start -->\n(.*?)\n<!-- bench:fake:end -->", text, re.DOTALL).group(1)
    header, report = section.split("\n\n", 1)
    assert re.fullmatch(r"_\d{4}-\d\d-\d\d \d\d:\d\d UTC, `python fake\.py --quick`; .+ cores, .+ GiB RAM, .+_", header)
    assert "TensorFlow " in header and f", {run_all._gpus()};" in header
    assert report == "3 things measured, quick=True\n\n| what | value |\n|---|---:|\n| answer | 42 |"
    assert "<!-- bench:other:start -->\nother results\n<!-- bench:other:end -->" in text  # a failure keeps it
    assert "Notes before the markers stay." in text and "Reading it: notes after the markers stay too." in text
    assert "bench:missing" not in text
    notes = capsys.readouterr().err
    assert "fake: ok" in notes and "other: FAILED (exit code 3)" in notes
    assert "missing: skipped (missing.py not found)" in notes


def test_only_and_no_write(run_all, tmp_path):
    (tmp_path / "fake.py").write_text("import sys\nprint('| t |', sys.argv[1:])\n")  # takes no --quick
    readme = tmp_path / "README.md"
    readme.write_text(README)
    benches = [run_all.Benchmark("fake", "Fake"), run_all.Benchmark("other", "Other")]
    assert run_all.main(["--only", "fake", "--no-write"], benchmarks=benches, folder=tmp_path, readme=readme) == 0
    assert readme.read_text() == README
    assert run_all.main(["--only", "fake", "--quick"], benchmarks=benches, folder=tmp_path, readme=readme) == 0
    assert "`python fake.py`;" in readme.read_text()  # no --quick for a script that does not take it
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nope"], benchmarks=benches, folder=tmp_path, readme=readme)


def test_the_repository_readme_has_sections_for_the_existing_tables(run_all):
    text = run_all.README.read_text()
    for name in (benchmark.name for benchmark in run_all.BENCHMARKS):
        start, end = run_all.markers(name)
        assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end)
