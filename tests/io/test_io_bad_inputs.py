"""The malformed-input corpus (tests/data/make_bad_inputs.py): each file fails with a one-line VolumeReadError."""

from __future__ import annotations

import os

import pytest

from voxelstudio.io import VolumeReadError, list_variables, load_volume, summarize_file

# Corpus name prefixes whose error must say what is wrong, not only that something is.
EXPECTED_PROBLEM = {
    "zero_bytes": "file is empty",
    "folder": "is a folder",
    "truncated_npy": "truncated",
    "rank": "a volume must be 3-D",
    "empty": "is empty",
    "complex": "is complex",
    "nan": "NaN or Inf",
    "inf": "NaN or Inf",
    "neg_inf": "NaN or Inf",
    "beyond_float32": "float32 range",
    "huge": "of memory to load but only",
    "not_matlab_hdf5": "not a MATLAB 7.3 MAT-file",
    "cell_v": "cell array",
    "struct": "struct",
    "sparse": "sparse matrix",
    "char": "text",
    "refs": "HDF5 object reference",
    "ambiguous": "several arrays could be the volume",
    "bad_spacing": "three positive numbers",
}


def test_corpus_has_at_least_200_distinct_inputs(bad_inputs, bad_inputs_folder) -> None:
    assert len(bad_inputs.CASE_NAMES) >= 200
    assert len(set(bad_inputs.CASE_NAMES)) == len(bad_inputs.CASE_NAMES)
    assert sorted(os.listdir(bad_inputs_folder)) == sorted(bad_inputs.CASE_NAMES)
    suffixes = {os.path.splitext(name)[1] for name in bad_inputs.CASE_NAMES}
    assert {".mat", ".tif", ".tiff", ".npy", ".npz"} <= suffixes


@pytest.mark.timeout(10)
def test_bad_input_fails_with_one_line_naming_the_file(bad_inputs_folder, bad_input_name) -> None:
    path = bad_inputs_folder / bad_input_name

    with pytest.raises(VolumeReadError) as info:
        load_volume(path)

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for prefix, problem in EXPECTED_PROBLEM.items():
        if bad_input_name.startswith(prefix) and "bad_spacing.npz" not in bad_input_name:
            assert problem in message, message
    for describe in (list_variables, summarize_file):  # never anything but VolumeReadError
        try:
            describe(path)
        except VolumeReadError as exc:
            assert "\n" not in str(exc)
