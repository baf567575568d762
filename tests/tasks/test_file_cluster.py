"""tasks.file_cluster: many small files as whole-file tasks on a real 2-process dask LocalCluster give the
in-process outputs, load the model once per worker (logged), resume, cancel and fail without partial outputs."""

from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np
import pytest

from tests.tasks.test_blockwise import tiny_model
from voxelstudio.core.atomic import is_temporary
from voxelstudio.core.errors import Cancelled, VoxelStudioError
from voxelstudio.core.progress import CancelToken
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.tasks.denoise import denoise_files
from voxelstudio.tasks.file_cluster import check_scheduler, loads_summary, local_workers

SPACING = (0.1, 0.2, 0.5)
LOADS = "voxelstudio.tasks.file_cluster"


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Four tiny scans: three .npy and one single-block OME-Zarr store."""
    folder = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        np.save(folder / f"scan{i}.npy", rng.random((14 + i, 12, 5)).astype(np.float32))
        paths.append(folder / f"scan{i}.npy")
    save_volume(Volume(rng.random((16, 13, 6)).astype(np.float32), spacing=SPACING), folder / "store.ome.zarr")
    return [*paths, folder / "store.ome.zarr"]


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path, "unet")  # a new path: the workers' caches have not seen it


def outputs_of(folder):
    return {p.name: load_volume(p) for p in sorted(folder.iterdir()) if not p.name.endswith(".json")}


def test_files_on_two_workers_equal_in_process_and_load_the_model_once_per_worker(
    cluster, scans, model, tmp_path, caplog
):
    reference = denoise_files(scans, model_path=model, out_dir=tmp_path / "ref", fmt="zarr")
    seen = []
    with caplog.at_level(logging.INFO, logger=LOADS):
        written = denoise_files(
            scans, model_path=model, out_dir=tmp_path / "dist", fmt="zarr", scheduler=cluster, report=seen.append
        )
    assert [p.name for p in written] == [p.name for p in reference]
    expected, found = outputs_of(tmp_path / "ref"), outputs_of(tmp_path / "dist")
    assert sorted(found) == sorted(expected) == ["scan0.ome.zarr", "scan1.ome.zarr", "scan2.ome.zarr", "store.ome.zarr"]
    for name, volume in expected.items():
        np.testing.assert_allclose(found[name].data, volume.data, rtol=1e-5, atol=1e-6)
        assert found[name].spacing == pytest.approx(volume.spacing)
    assert found["store.ome.zarr"].spacing == pytest.approx(SPACING)
    assert all((tmp_path / "dist" / f"{name}.json").is_file() for name in found)
    loads = [r.getMessage() for r in caplog.records if "loaded the model" in r.getMessage()]
    workers = {line.split()[1] for line in loads}
    assert 1 <= len(loads) <= 2 and len(workers) == len(loads)  # each worker that ran a file loaded it once
    assert all(w.startswith("tcp://") for w in workers)
    assert [p.done for p in seen][-1] == 4 and {p.total for p in seen} == {4}  # a progress bar over files


def test_resume_skips_finished_files_and_redoes_only_the_missing_one(cluster, scans, model, tmp_path):
    out = tmp_path / "out"
    denoise_files(scans, model_path=model, out_dir=out, fmt="npy", scheduler=cluster)
    (out / "scan1.npy").unlink()  # its sidecar stays: an interrupted run's leftover, replaced
    (out / "scan2.npy.json").unlink()  # written last: without it scan2.npy is unfinished
    redone = {"scan1.npy", "scan1.npy.json", "scan2.npy", "scan2.npy.json"}
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in redone}
    seen = []
    denoise_files(scans, model_path=model, out_dir=out, fmt="npy", scheduler=cluster, resume=True, report=seen.append)
    assert seen[0].done == 2 and "kept 2 finished" in seen[0].message
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in redone} == kept
    assert redone <= {p.name for p in out.iterdir()}
    assert load_volume(out / "scan1.npy").shape == (15, 12, 5)


def test_cancel_leaves_only_whole_outputs(cluster, scans, model, tmp_path):
    token = CancelToken()

    def report(progress):
        if progress.done >= 1:
            token.cancel()

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        denoise_files(scans, model_path=model, out_dir=out, fmt="npy", scheduler=cluster, report=report, cancel=token)
    # a task already running when the run was cancelled finishes its file (module docstring of file_cluster): its
    # temporary is renamed to a whole output once it is written, which a look straight after the cancel can catch
    deadline = time.monotonic() + 60
    while any(is_temporary(p) for p in out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    outputs = [p for p in out.iterdir() if not p.name.endswith(".json")]
    assert not any(is_temporary(p) for p in outputs)  # nothing half-written is left behind either
    for path in outputs:
        source = next(s for s in scans if s.name.split(".")[0] == path.name.split(".")[0])
        assert load_volume(path).shape == load_volume(source).shape  # complete, never half-written


def test_a_bad_file_is_one_line_naming_it_and_leaves_no_output_for_it(cluster, scans, model, tmp_path):
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"not a numpy file")
    inputs = [*scans[:2], bad]
    with pytest.raises(VoxelStudioError, match=r"broken\.npy") as caught:
        denoise_files(inputs, model_path=model, out_dir=tmp_path / "out", fmt="npy", scheduler=cluster)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "broken.npy").exists()


def test_local_cluster_size_and_load_summary(monkeypatch):
    assert local_workers("local:3") == 3
    with pytest.raises(ValueError, match="local:N"):
        local_workers("local:zero")
    assert 1 <= local_workers("local") <= 64
    with pytest.raises(VoxelStudioError, match=r"local:100000: starting 100000 workers needs about .* GiB of memory"):
        local_workers("local:100000")  # refused before a process starts
    assert loads_summary({"tcp://a": 1, "tcp://b": 1}) == "model loaded once on each of 2 workers"
    assert loads_summary({"tcp://a": 2, "tcp://b": 0}) == "model loads per worker: tcp://a 2, tcp://b 0"


def test_a_single_block_store_runs_where_the_scheduler_is_local(scans, model, tmp_path):
    shutil.copytree(scans[3], tmp_path / "only.ome.zarr")
    store = tmp_path / "only.ome.zarr"
    (out,) = denoise_files([store], model_path=model, out_dir=tmp_path / "o", fmt="zarr", scheduler="local:1")
    assert load_volume(out).shape == (16, 13, 6) and out.name == "only.ome.zarr"
    (mat,) = denoise_files([store], model_path=model, out_dir=tmp_path / "m", scheduler="local:1")
    assert load_volume(mat).shape == (16, 13, 6) and mat.suffix == ".mat"


def test_a_large_file_is_denoised_on_the_driver_and_local_workers_share_the_cores(scans, model, tmp_path, monkeypatch):
    from voxelstudio.tasks import file_cluster
    from voxelstudio.tasks.denoise import FileOptions
    from voxelstudio.tasks.denoise_cluster import whole_file

    big = scans[0]
    monkeypatch.setattr(file_cluster, "WHOLE_FILE_BYTES", big.stat().st_size - 1)
    assert not whole_file(big, FileOptions()) and whole_file(scans[3], FileOptions())
    (out,) = denoise_files([big], model_path=model, out_dir=tmp_path / "o", fmt="npy", scheduler="local:1")
    np.testing.assert_allclose(
        np.load(out), np.load(denoise_files([big], model_path=model, out_dir=tmp_path / "i", fmt="npy")[0]), atol=1e-6
    )
    with file_cluster.dask_client("local:2") as client:
        threads = client.run(lambda: os.environ.get("TF_NUM_INTRAOP_THREADS"))
    assert set(threads.values()) == {str(max(1, (os.cpu_count() or 1) // 2))}


def test_a_malformed_local_scheduler_stops_before_any_work(scans, tmp_path):
    with pytest.raises(ValueError, match="expected local or local:N"):
        denoise_files([scans[0]], model_path=tmp_path / "absent.keras", out_dir=tmp_path / "o", scheduler="local:x")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("address", ["bogus", "tcp:/host:8786", "host:port", ""])
def test_a_malformed_scheduler_address_stops_before_any_work(scans, tmp_path, address):
    with pytest.raises(ValueError, match="expected a scheduler address"):
        denoise_files([scans[0]], model_path=tmp_path / "absent.keras", out_dir=tmp_path / "o", scheduler=address)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "tls://scheduler.lab:8786", "scheduler.lab:8786"])
def test_well_formed_scheduler_addresses_pass_the_check(address):
    check_scheduler(address)
