"""A corpus of malformed volume files: every one must make ``load_volume`` raise a one-line VolumeReadError.

``make_bad_inputs(folder)`` writes them (seeded) and returns their paths; ``CASE_NAMES`` lists the file names up
front so tests can parametrize over them. ``python tests/data/make_bad_inputs.py OUTDIR`` writes them for a look.

Decision recorded here: int64/uint64 extremes are finite numbers and load (as float32); they are not bad inputs.
"""

from __future__ import annotations

import functools
import io
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.sparse
import tifffile
from scipy.io.matlab import MatlabObject

SEED = 1234
TRUNCATIONS_PER_FORMAT = 12
GARBAGE_PER_FORMAT = 6
HUGE = (10_000, 10_000, 10_000)  # 10**12 elements
_SHAPE = (6, 5, 4)
_MAT73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 01 00:00:00 2024 HDF5 schema 1.00 .".ljust(116)
    + b"\x00" * 8
    + b"\x00\x02IM"
)
SUFFIX_OF_KIND = {"mat5": "mat", "mat5z": "mat", "mat73": "mat", "tif": "tif", "npy": "npy", "npz": "npz"}
Builder = Callable[[Path], None]


def _volume(dtype: str = "float64") -> np.ndarray:
    return np.random.default_rng(SEED).random(_SHAPE).astype(dtype)


# ---- writers used by the cases (independent of voxelstudio.io, so they test it rather than mirror it) ----
def _with(write: Callable[..., object], *args: object, **kwargs: object) -> Builder:
    """A builder calling ``write(path, *args, **kwargs)``: np.save, scipy.io.savemat, tifffile.imwrite, ..."""
    return lambda path: write(path, *args, **kwargs)


def _mat73(fill: Callable[[h5py.File], None], *, header: bytes | None = _MAT73_HEADER, userblock: int = 512) -> Builder:
    def build(path: Path) -> None:
        with h5py.File(path, "w", userblock_size=userblock) as file:
            fill(file)
        if header is not None:
            with open(path, "r+b") as handle:
                handle.write(header)

    return build


def _dataset(name: str, data: np.ndarray, matlab_class: str | None = "double", **attrs: object) -> Builder:
    """A v7.3 file holding one dataset, transposed and tagged the way MATLAB does it."""
    tags = {"MATLAB_class": np.bytes_(matlab_class)} if matlab_class else {}
    return _mat73(lambda file: file.create_dataset(name, data=np.asarray(data).T).attrs.update({**tags, **attrs}))


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@functools.cache
def valid_bytes(kind: str) -> bytes:
    """A small valid file of each kind, as bytes (for truncation and header reuse)."""
    volume = _volume()
    builders = {
        "mat5": _with(scipy.io.savemat, {"voxel": volume, "voxel_size_um": np.array([[0.1, 0.1, 0.3]])}),
        "mat5z": _with(scipy.io.savemat, {"voxel": volume}, do_compression=True),
        "mat73": _dataset("voxel", volume),
        "tif": _with(
            tifffile.imwrite, volume.astype("float32").transpose(2, 0, 1), imagej=True, metadata={"axes": "ZYX"}
        ),
        "npy": _with(np.save, volume),
        "npz": _with(np.savez, voxel=volume),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"valid.{SUFFIX_OF_KIND[kind]}"
        builders[kind](path)
        return path.read_bytes()


def _truncated(kind: str, index: int) -> Builder:
    def build(path: Path) -> None:
        raw = valid_bytes(kind)
        end = len(raw) - (8 if kind == "mat5" else 1)  # mat5: cut into the data, not only its padding
        if kind == "tif":  # cut into the image data (the IFDs of later pages after it are not needed)
            with tifffile.TiffFile(io.BytesIO(raw)) as tif:
                end = tif.pages.first.dataoffsets[0] + tif.series[0].nbytes
        offsets = np.random.default_rng([SEED, index, len(kind)]).integers(1, end, size=1)
        path.write_bytes(raw[: int(offsets[0])])

    return build


def _garbage_after_header(kind: str, index: int) -> Builder:
    def build(path: Path) -> None:
        rng = np.random.default_rng([SEED, 99, index, len(kind)])
        noise = rng.integers(0, 256, size=int(rng.integers(16, 900)), dtype=np.uint8).tobytes()
        header = {
            "mat5": valid_bytes("mat5")[:128],
            "mat73": _MAT73_HEADER.ljust(512, b"\0") + b"\x89HDF\r\n\x1a\n",
            "tif": b"II*\x00\x08\x00\x00\x00",
            "npy": _npy_header(_SHAPE),  # 960 bytes of data promised, fewer given
            "npz": valid_bytes("npz")[:60],
        }[kind]
        path.write_bytes(header + noise)

    return build


def _patched_mat5_dims(compress: bool) -> Builder:
    """A v5 file whose dims sub-element claims HUGE, with the original few bytes of data."""

    def build(path: Path) -> None:
        old = struct.pack("<2I3i", 5, 12, *_SHAPE)
        new = struct.pack("<2I3i", 5, 12, *HUGE)
        raw = valid_bytes("mat5z" if compress else "mat5")
        if not compress:
            path.write_bytes(raw.replace(old, new, 1))
            return
        element = zlib.decompress(raw[136:]).replace(old, new, 1)
        packed = zlib.compress(element)
        path.write_bytes(raw[:128] + struct.pack("<2I", 15, len(packed)) + packed)

    return build


def _patched_tiff_size(path: Path) -> None:
    raw = bytearray(valid_bytes("tif"))
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        offsets = [p.tags[t].valueoffset for p in tif.pages for t in ("ImageWidth", "ImageLength")]
    for offset in offsets:
        raw[offset : offset + 4] = struct.pack("<I", 1_000_000)
    path.write_bytes(bytes(raw))


def _cell_mat73(file: h5py.File, matlab_class: str | None = "cell") -> None:
    target = file.create_group("#refs#").create_dataset("a", data=_volume())
    refs = file.create_dataset("voxel", shape=(2, 1), dtype=h5py.ref_dtype)
    refs[0, 0] = refs[1, 0] = target.ref
    if matlab_class:
        refs.attrs["MATLAB_class"] = np.bytes_(matlab_class)


def _group_mat73(file: h5py.File, matlab_class: str, **attrs: object) -> None:
    group = file.create_group("voxel")
    group.attrs.update({"MATLAB_class": np.bytes_(matlab_class), **attrs})
    group.create_dataset("data", data=np.arange(3.0))


def _zip_member(content: bytes) -> Builder:
    def build(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("voxel.npy", content)

    return build


def _cases() -> dict[str, Builder]:
    """File name -> builder, in a fixed order."""
    rng = np.random.default_rng(SEED)
    vol = _volume()
    nan, inf = vol.copy(), vol.copy()
    nan[1, 2, 3], inf[0, 0, 0] = np.nan, np.inf
    ranks = {0: np.float64(1.5), 1: np.arange(5.0), 2: np.ones((5, 1)), 4: np.ones((3, 4, 5, 2))}
    ranks |= {5: np.ones((2, 3, 2, 2, 2)), 6: np.ones((2,) * 6)}
    cases: dict[str, Builder] = {}
    for suffix in (".mat", ".tif", ".tiff", ".npy", ".npz"):
        cases[f"zero_bytes{suffix}"] = _with(Path.write_bytes, b"")
        cases[f"folder{suffix}"] = lambda path: path.mkdir(exist_ok=True)
    cases["unknown_type.raw"] = _with(Path.write_bytes, vol.tobytes())
    cases["no_suffix"] = _with(Path.write_bytes, vol.tobytes())
    not_mat = {
        "text": b"hello, this is not a MAT-file\n" * 20,
        "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "jpeg": b"\xff\xd8\xff\xe0" + bytes(300),
        "json": b'{"voxel": [[1, 2], [3, 4]]}',
        "zip": valid_bytes("npz"),
        "tiff": valid_bytes("tif"),
        "npy": valid_bytes("npy"),
        "header_only": valid_bytes("mat5")[:128],
    }
    not_mat |= {f"random{i}": rng.integers(0, 256, 64 + 97 * i, dtype=np.uint8).tobytes() for i in range(5)}
    for label, content in not_mat.items():
        cases[f"not_mat_{label}.mat"] = _with(Path.write_bytes, content)
    for suffix in (".tif", ".npy", ".npz"):
        cases[f"text{suffix}"] = _with(Path.write_bytes, b"plain text, wrong suffix\n" * 10)
        cases[f"random{suffix}"] = _with(Path.write_bytes, rng.integers(0, 256, 777, dtype=np.uint8).tobytes())
    for kind, suffix in SUFFIX_OF_KIND.items():
        for i in range(TRUNCATIONS_PER_FORMAT):
            cases[f"truncated_{kind}_{i:02d}.{suffix}"] = _truncated(kind, i)
    for kind in ("mat5", "mat73", "tif", "npy", "npz"):
        for i in range(GARBAGE_PER_FORMAT):
            cases[f"garbage_{kind}_{i}.{SUFFIX_OF_KIND[kind]}"] = _garbage_after_header(kind, i)
    for rank, array in ranks.items():
        cases[f"rank{rank}_v5.mat"] = _with(scipy.io.savemat, {"voxel": array})
        cases[f"rank{rank}_v73.mat"] = _dataset("voxel", array)
        cases[f"rank{rank}.npy"] = _with(np.save, array)
        cases[f"rank{rank}.npz"] = _with(np.savez, voxel=array)
    cases["rank4.tif"] = _with(
        tifffile.imwrite, np.ones((2, 3, 5, 4), "float32"), imagej=True, metadata={"axes": "TZYX"}
    )
    cases["rank5.tif"] = _with(
        tifffile.imwrite, np.ones((2, 3, 2, 5, 4), "float32"), imagej=True, metadata={"axes": "TZCYX"}
    )
    cases["rank6.tif"] = _with(tifffile.imwrite, np.ones((2, 2, 2, 2, 5, 4), "float32"), photometric="minisblack")
    cases["rgb.tif"] = _with(tifffile.imwrite, np.zeros((6, 5, 3), "uint8"), photometric="rgb")
    empty = np.zeros((0, 5, 4))
    cases["empty_v5.mat"] = _with(scipy.io.savemat, {"voxel": empty})
    cases["empty_v73.mat"] = _dataset("voxel", np.array([0, 5, 4], "uint64"), MATLAB_empty=np.uint8(1))
    cases["empty_dataset_v73.mat"] = _dataset("voxel", empty)
    cases["empty.npy"] = _with(np.save, empty)
    cases["empty.npz"] = _with(np.savez, voxel=empty)
    complex_vol = vol + 1j
    cases["complex_v5.mat"] = _with(scipy.io.savemat, {"voxel": complex_vol})
    cases["complex_v73.mat"] = _dataset("voxel", np.rec.fromarrays([vol, vol], names="real,imag"))
    cases["complex.npy"] = _with(np.save, complex_vol)
    cases["complex.npz"] = _with(np.savez, voxel=complex_vol)
    cases["struct_v5.mat"] = _with(scipy.io.savemat, {"voxel": {"a": vol}})
    cases["cell_v5.mat"] = _with(scipy.io.savemat, {"voxel": np.array([vol, "x"], dtype=object)})
    cases["sparse_v5.mat"] = _with(scipy.io.savemat, {"voxel": scipy.sparse.csc_matrix(np.eye(4))})
    cases["char_v5.mat"] = _with(scipy.io.savemat, {"voxel": "not numbers"})
    obj = MatlabObject(np.array([[(1.0,)]], dtype=[("a", "O")]), classname="scan")
    cases["object_v5.mat"] = _with(scipy.io.savemat, {"voxel": obj})
    cases["cell_other_name_v5.mat"] = _with(scipy.io.savemat, {"data": np.array([vol], dtype=object)})
    cases["cell_v73.mat"] = _mat73(_cell_mat73)
    cases["refs_double_v73.mat"] = _mat73(lambda f: _cell_mat73(f, "double"))
    cases["refs_no_class_v73.mat"] = _mat73(lambda f: _cell_mat73(f, None))
    cases["struct_v73.mat"] = _mat73(lambda f: _group_mat73(f, "struct"))
    cases["sparse_v73.mat"] = _mat73(lambda f: _group_mat73(f, "double", MATLAB_sparse=np.uint64(3)))
    cases["char_v73.mat"] = _dataset("voxel", np.frombuffer(b"text", "u1").astype("u2"), "char")
    cases["string_v73.mat"] = _dataset("voxel", np.ones((1, 6), "u4"), "string", MATLAB_object_decode=3)
    cases["external_link_v73.mat"] = _mat73(lambda f: f.__setitem__("voxel", h5py.ExternalLink("gone.h5", "/x")))
    cases["not_matlab_hdf5.mat"] = _mat73(lambda f: f.create_dataset("voxel", data=vol), header=None, userblock=0)
    cases["not_matlab_hdf5_userblock.mat"] = _mat73(lambda f: f.create_dataset("voxel", data=vol), header=None)
    cases["hdf5_other_header.mat"] = _mat73(lambda f: f.create_dataset("voxel", data=vol), header=b"HDF5 user block")
    not_numbers = {"object": np.array([vol, None], dtype=object), "text": np.array(["a", "b"])}
    not_numbers |= {"record": np.zeros(_SHAPE, "f8,i4"), "dates": np.zeros(_SHAPE, "datetime64[s]")}
    for label, array in not_numbers.items():
        cases[f"{label}.npy"] = _with(np.save, array)
        cases[f"{label}.npz"] = _with(np.savez, voxel=array)
    for label, array in {"nan": nan, "inf": inf, "neg_inf": -inf, "beyond_float32": vol * 1e300}.items():
        cases[f"{label}_v5.mat"] = _with(scipy.io.savemat, {"voxel": array})
        cases[f"{label}.npy"] = _with(np.save, array)
    for label, array in {"nan": nan, "inf": inf}.items():
        cases[f"{label}_v73.mat"] = _dataset("voxel", array)
        cases[f"{label}.tif"] = _with(tifffile.imwrite, array.astype("float32").transpose(2, 0, 1), imagej=True)
        cases[f"{label}.npz"] = _with(np.savez, voxel=array)
    cases["huge_v5.mat"] = _patched_mat5_dims(compress=False)
    cases["huge_v5_compressed.mat"] = _patched_mat5_dims(compress=True)
    double = {"MATLAB_class": np.bytes_("double")}  # below: chunked and never written, so the file stays tiny
    cases["huge_v73.mat"] = _mat73(
        lambda f: f.create_dataset("voxel", HUGE, "f8", chunks=(16,) * 3).attrs.update(double)
    )
    cases["huge.npy"] = _with(Path.write_bytes, _npy_header(HUGE) + bytes(128))
    cases["huge.npz"] = _zip_member(_npy_header(HUGE) + bytes(64))
    cases["huge.tif"] = _patched_tiff_size
    cases["v4_vector.mat"] = _with(scipy.io.savemat, {"voxel": np.ones((5, 1))}, format="4")
    cases["ambiguous_v5.mat"] = _with(scipy.io.savemat, {"a": vol, "b": vol})
    cases["bad_spacing_v5.mat"] = _with(scipy.io.savemat, {"voxel": vol, "voxel_size_um": np.array([[0.1, -1.0, 0.3]])})
    cases["bad_spacing.npz"] = _with(np.savez, voxel=vol, spacing=np.array([0.1, 0.2]))
    cases["bad_spacing.tif"] = _with(
        tifffile.imwrite, vol.astype("float32").T, imagej=True, metadata={"spacing": -2.0, "unit": "um"}
    )
    return cases


CASE_NAMES: tuple[str, ...] = tuple(_cases())


def make_bad_inputs(folder: str | Path) -> list[Path]:
    """Write every malformed input into ``folder`` (created if needed) and return their paths, in CASE_NAMES order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in _cases().items():
        path = folder / name
        build(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    written = make_bad_inputs(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    print(f"wrote {len(written)} malformed inputs to {written[0].parent}")
