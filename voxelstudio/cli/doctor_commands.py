"""``voxelstudio doctor [--json]``: versions, Keras backends and their devices, OpenGL, Qt, memory and disk."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="what this machine offers: backends and GPUs, OpenGL, Qt, memory",
        description="Report Python, VoxelStudio and Keras versions, each Keras backend (installed or not, version, "
        "devices with memory), the OpenGL renderer VTK gets, the Qt platform plugin, free memory and disk. "
        "Exits 0 even when a backend is missing.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.doctor import environment_report, format_report

    report = environment_report(qt_probe="voxelstudio.gui.probe")  # run as a child process, never imported
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
