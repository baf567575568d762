"""Fuzzing the readers: valid small files with mutated or truncated bytes only ever raise VolumeReadError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxelstudio.io import VolumeReadError, list_variables, load_volume, summarize_file

KINDS = ("mat5", "mat5z", "mat73", "tif", "npy", "npz")


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    mutations=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=12),
    keep_fraction=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_mutated_files_raise_only_volume_read_errors(bad_inputs, kind, mutations, keep_fraction) -> None:
    data = bytearray(bad_inputs.valid_bytes(kind))
    for position, value in mutations:
        data[position % len(data)] = value
    if keep_fraction is not None:
        data = data[: max(1, int(len(data) * keep_fraction))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"mutated.{bad_inputs.SUFFIX_OF_KIND[kind]}"
        path.write_bytes(bytes(data))
        for read in (load_volume, list_variables, summarize_file):
            try:
                read(path)
            except VolumeReadError as exc:
                assert "\n" not in str(exc)
                assert path.name in str(exc)
