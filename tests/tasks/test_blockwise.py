"""tasks.blockwise: block-wise Zarr denoising equals whole-volume tiled prediction, resumes, and runs on a real
dask.distributed LocalCluster with the same output."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tiny_denoisers import tiny_model  # beside this file

from voxelstudio.core.errors import Cancelled, VolumeReadError, VolumeWriteError, VoxelStudioError
from voxelstudio.core.progress import CancelToken
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.io.zarr_ import compute, open_lazy
from voxelstudio.tasks.blockwise import block_grid, denoise_store

SHAPE = (37, 29, 13)  # odd sizes: the U-Net pads the volume, blocks must cut on the same grid
BLOCK = (16, 12, 8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blockwise")
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    save_volume(Volume(data, spacing=(0.1, 0.2, 0.3)), folder / "in.ome.zarr")
    return folder, data, {arch: tiny_model(folder, arch) for arch in ("simple", "unet")}


def whole_volume(model_path, data, spacing=None):
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    return predict_volume(load_model(model_path), data, spacing=spacing)[0]


def read(path):
    return compute(path, open_lazy(path).data)


def interrupted_after_two_blocks(source, out, model, block=BLOCK):
    """A run stopped (as by Ctrl-C) once two blocks are done: its temporary store stays for --resume."""
    token = CancelToken()

    def stop_after_two(progress):
        if progress.done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        denoise_store(source, out, model_path=model, block=block, report=stop_after_two, cancel=token)


@pytest.mark.parametrize("arch", ["simple", "unet"])
def test_blockwise_equals_whole_volume_tiled_prediction(setup, tmp_path, arch):
    folder, data, models = setup
    result = denoise_store(folder / "in.ome.zarr", tmp_path / "out.ome.zarr", model_path=models[arch], block=BLOCK)
    assert result.provenance["blockwise"]["blocks"] == len(block_grid(SHAPE, BLOCK)) == 18
    np.testing.assert_allclose(read(result.path), whole_volume(models[arch], data), rtol=1e-5, atol=1e-6)
    assert load_volume(result.path).spacing == pytest.approx((0.1, 0.2, 0.3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]  # no temporary left
    assert all(n <= 1 for n in result.provenance["blockwise"]["model_loads_per_process"].values())


def test_a_model_that_takes_the_voxel_size_gets_the_stores_or_the_one_given(setup, tmp_path):
    folder, data, _ = setup
    model = tiny_model(tmp_path, "unet", spacing_input=True)
    result = denoise_store(folder / "in.ome.zarr", tmp_path / "own.ome.zarr", model_path=model, block=BLOCK)
    own = read(result.path)
    np.testing.assert_allclose(own, whole_volume(model, data, (0.1, 0.2, 0.3)), rtol=1e-5, atol=1e-6)
    given = (0.2, 0.2, 0.2)
    result = denoise_store(
        folder / "in.ome.zarr", tmp_path / "given.ome.zarr", model_path=model, block=BLOCK, voxel_size=given
    )
    np.testing.assert_allclose(read(result.path), whole_volume(model, data, given), rtol=1e-5, atol=1e-6)
    assert np.abs(read(result.path) - own).max() > 1e-4
    assert load_volume(result.path).spacing == pytest.approx(given)
    with pytest.raises(VoxelStudioError, match=r"in\.ome\.zarr: .*voxel size.*lateral 1 µm is outside"):
        denoise_store(folder / "in.ome.zarr", tmp_path / "far.ome.zarr", model_path=model, voxel_size=(1, 1, 0.2))
    assert not (tmp_path / "far.ome.zarr").exists()


def test_a_models_input_shift_moves_each_block_as_it_moves_the_whole_volume(setup, tmp_path):
    """Blocks cut the volume along z (13 planes in blocks of 8): each reads the shift's reach beyond its faces."""
    folder, data, models = setup
    model = tiny_model(tmp_path, "unet", input_shift=(0.0, -0.4, 0.62), flipped_input_shift=(0.0, 0.0, 1.3))
    result = denoise_store(folder / "in.ome.zarr", tmp_path / "out.ome.zarr", model_path=model, block=BLOCK)
    np.testing.assert_allclose(read(result.path), whole_volume(model, data), rtol=1e-5, atol=1e-6)
    assert np.abs(read(result.path) - whole_volume(models["unet"], data)).max() > 1e-3  # the same weights, unmoved
    tta = denoise_store(folder / "in.ome.zarr", tmp_path / "tta.ome.zarr", model_path=model, block=BLOCK,
                        uncertainty_out=tmp_path / "spread.ome.zarr")  # fmt: skip
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    np.testing.assert_allclose(
        read(tta.path), predict_volume(load_model(model), data, tta=True)[0], rtol=1e-5, atol=1e-6
    )


def test_blocks_move_by_the_shift_in_the_stores_voxels_when_it_was_measured_on_others(setup, tmp_path):
    """Measured on 0.1-µm voxels, the shift is half as many columns and a third as many planes of this store's
    0.1 x 0.2 x 0.3 µm voxels, as whole-volume denoising of the same file moves it."""
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    folder, data, _ = setup
    model = tiny_model(tmp_path, "unet", input_shift=(0.0, -0.8, 1.5), shift_spacing=(0.1, 0.1, 0.1))
    result = denoise_store(folder / "in.ome.zarr", tmp_path / "out.ome.zarr", model_path=model, block=BLOCK)
    scaled = load_model(model).for_spacing((0.1, 0.2, 0.3))
    assert scaled.input_shift == pytest.approx((0.0, -0.4, 0.5))
    assert result.provenance["model"]["input_shift_vox"] == pytest.approx([0.0, -0.4, 0.5])
    np.testing.assert_allclose(read(result.path), predict_volume(scaled, data)[0], rtol=1e-5, atol=1e-6)


def test_a_memory_limit_tiles_the_blocks_finer_with_the_same_output(setup, tmp_path, monkeypatch, caplog):
    from voxelstudio.tasks import block_predict

    folder, data, models = setup
    real, plans = block_predict.block_plan, []

    def recorded(cfg, shape, tile_shape, memory_limit=None, **options):
        assert options["baseline"] > 100_000_000  # this process, with TensorFlow
        plans.append(real(cfg, shape, tile_shape, memory_limit, **options))
        return plans[-1]

    monkeypatch.setattr(block_predict, "block_plan", recorded)
    monkeypatch.setattr(block_predict, "_WARNED_LIMITS", set())
    out = tmp_path / "out.ome.zarr"  # 1 MB: nothing left for tiles, the smallest ones
    result = denoise_store(folder / "in.ome.zarr", out, model_path=models["unet"], block=BLOCK, memory_limit=1_000_000)
    assert result.provenance["blockwise"]["memory_limit"] == 1_000_000
    assert len(plans) == 18 and any(p.tile_shape != p.padded_shape for p in plans)
    np.testing.assert_allclose(read(out), whole_volume(models["unet"], data), rtol=1e-5, atol=1e-6)
    assert any("even the smallest tiles" in r.getMessage() for r in caplog.records)


def test_workers_in_this_process_warn_once_and_leave_no_forwarding(setup, tmp_path, monkeypatch, caplog):
    from dask.distributed import Client, LocalCluster

    from voxelstudio.tasks import block_predict

    folder, _, models = setup
    monkeypatch.setattr(block_predict, "_WARNED_LIMITS", set())
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        denoise_store(folder / "in.ome.zarr", tmp_path / "out.ome.zarr", model_path=models["simple"], block=BLOCK,
                      client=client, memory_limit=1_000_000)  # fmt: skip
        plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
    assert len([r for r in caplog.records if "even the smallest tiles" in r.getMessage()]) == 1  # no echo loop
    assert not [name for names in plugins.values() for name in names if name.startswith("forward-logging")]


def test_cancelled_run_leaves_no_output_and_resumes(setup, tmp_path):
    folder, data, models = setup
    token, seen = CancelToken(), []

    def report(p):
        seen.append(p.done)
        if p.done == 5:
            token.cancel()

    out = tmp_path / "out.ome.zarr"
    with pytest.raises(Cancelled):
        denoise_store(folder / "in.ome.zarr", out, model_path=models["unet"], block=BLOCK, report=report, cancel=token)
    assert not out.exists()
    temporaries = [p.name for p in tmp_path.iterdir()]
    assert len(temporaries) == 1 and temporaries[0].startswith(".out.ome.zarr.")
    result = denoise_store(folder / "in.ome.zarr", out, model_path=models["unet"], block=BLOCK, resume=True)
    assert result.provenance["blockwise"]["resumed_blocks"] == 5
    np.testing.assert_allclose(read(out), whole_volume(models["unet"], data), rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]
    with pytest.raises(VolumeWriteError, match="already exists"):
        denoise_store(folder / "in.ome.zarr", out, model_path=models["unet"], block=BLOCK)


def test_bad_input_store_leaves_nothing(setup, tmp_path):
    import zarr

    _, _, models = setup
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(VolumeReadError, match="no array"):
        denoise_store(tmp_path / "empty.zarr", tmp_path / "out.ome.zarr", model_path=models["simple"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.zarr"]


def test_local_cluster_with_two_processes_gives_the_same_output(setup, tmp_path, caplog):
    from dask.distributed import Client, LocalCluster

    folder, _, models = setup
    reference = denoise_store(folder / "in.ome.zarr", tmp_path / "ref.ome.zarr", model_path=models["unet"], block=BLOCK)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = denoise_store(
            folder / "in.ome.zarr", tmp_path / "dist.ome.zarr", model_path=models["unet"], block=BLOCK,
            scheduler=cluster.scheduler_address, memory_limit=1_000_000,  # the smallest tiles: same output
        )  # fmt: skip
        with Client(cluster.scheduler_address) as client:  # forwarding ended with the run
            plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
    np.testing.assert_allclose(read(result.path), read(reference.path), rtol=1e-5, atol=1e-6)
    warned = [r for r in caplog.records if "even the smallest tiles" in r.getMessage()]
    assert warned and all(r.levelname == "WARNING" for r in warned)  # said in a worker, shown here
    assert not [name for names in plugins.values() for name in names if name.startswith("forward-logging")]
    loads = result.provenance["blockwise"]["model_loads_per_process"]
    workers = {k: n for k, n in loads.items() if k != str(os.getpid())}  # this process loaded it for the sample
    assert 1 <= len(workers) <= 2 and all(n == 1 for n in workers.values())  # each worker loaded the model once


def test_a_block_that_fails_keeps_finished_blocks_for_resume(setup, tmp_path, monkeypatch):
    from voxelstudio.core.errors import VoxelStudioError
    from voxelstudio.tasks import blockwise

    folder, data, models = setup
    real, calls = blockwise.predict_block, []

    def flaky(job, start, stop):
        calls.append(start)
        if len(calls) == 4:
            raise RuntimeError("worker lost")
        return real(job, start, stop)

    monkeypatch.setattr(blockwise, "predict_block", flaky)
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(VoxelStudioError, match=r"failed \(RuntimeError: worker lost\).*--resume"):
        denoise_store(folder / "in.ome.zarr", out, model_path=models["simple"], block=BLOCK)
    assert not out.exists()
    monkeypatch.setattr(blockwise, "predict_block", real)
    result = denoise_store(folder / "in.ome.zarr", out, model_path=models["simple"], block=BLOCK, resume=True)
    assert result.provenance["blockwise"]["resumed_blocks"] == 3
    np.testing.assert_allclose(read(out), whole_volume(models["simple"], data), rtol=1e-5, atol=1e-6)


def test_a_block_that_cannot_be_read_keeps_finished_blocks_for_resume(setup, tmp_path, monkeypatch):
    """An unreadable chunk may be passing (a network file system, a copy in progress): the finished blocks are kept
    (they were deleted as if the input were bad), and --resume goes on once it reads."""
    from voxelstudio.tasks import blockwise

    folder, data, models = setup
    real, calls = blockwise.predict_block, []

    def unreadable(job, start, stop):
        calls.append(start)
        if len(calls) == 4:
            raise VolumeReadError(folder / "in.ome.zarr", "a chunk cannot be read (EIO)")
        return real(job, start, stop)

    monkeypatch.setattr(blockwise, "predict_block", unreadable)
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(VolumeReadError, match=r"\(EIO\); the 3 finished block\(s\) are kept: .* with --resume"):
        denoise_store(folder / "in.ome.zarr", out, model_path=models["simple"], block=BLOCK)
    monkeypatch.setattr(blockwise, "predict_block", real)
    result = denoise_store(folder / "in.ome.zarr", out, model_path=models["simple"], block=BLOCK, resume=True)
    assert result.provenance["blockwise"]["resumed_blocks"] == 3
    np.testing.assert_allclose(read(out), whole_volume(models["simple"], data), rtol=1e-5, atol=1e-6)


def test_a_store_written_again_with_the_same_shape_is_not_resumed(setup, tmp_path):
    """Only the shape and dtype told stores apart: blocks of the old data were kept beside the new, with the old
    data's normalisation."""
    _, _, models = setup
    source, out = tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr"
    save_volume(Volume(np.random.default_rng(4).random(SHAPE).astype(np.float32)), source)
    interrupted_after_two_blocks(source, out, models["unet"])
    save_volume(Volume(3.0 * np.random.default_rng(5).random(SHAPE).astype(np.float32)), source, overwrite=True)
    with pytest.raises(ValueError, match=r"in\.ome\.zarr: written again since the interrupted run"):
        denoise_store(source, out, model_path=models["unet"], block=BLOCK, resume=True)
    assert not out.exists()


def test_block_wise_tta_equals_whole_volume_tta(setup, tmp_path):
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    _, _, models = setup
    data = np.random.default_rng(1).random((21, 18, 7)).astype(np.float32)  # odd: turned volumes pad differently
    save_volume(Volume(data), tmp_path / "small.ome.zarr")
    result = denoise_store(
        tmp_path / "small.ome.zarr", tmp_path / "out.ome.zarr", model_path=models["unet"], block=(12, 10, 7),
        uncertainty_out=tmp_path / "spread.ome.zarr",
    )  # fmt: skip
    mean, spread, _ = predict_volume(load_model(models["unet"]), data, tta=True)
    np.testing.assert_allclose(read(result.path), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read(tmp_path / "spread.ome.zarr"), spread, rtol=1e-4, atol=1e-6)
    assert spread.max() > 0 and result.provenance["tiling"]["transforms"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr", "small.ome.zarr", "spread.ome.zarr"]


def test_resume_after_an_interruption_between_the_uncertainty_and_the_output(setup, tmp_path, monkeypatch):
    """The uncertainty store is published first: interrupted before the output, --resume still finishes the job."""
    from voxelstudio.tasks import blockwise

    _, _, models = setup
    save_volume(Volume(np.random.default_rng(2).random((12, 10, 7)).astype(np.float32)), tmp_path / "in.ome.zarr")
    original, calls = blockwise.publish_directory, []

    def interrupted_on_the_output(source, target, **options):
        calls.append(target.name)
        if target.name == "out.ome.zarr" and calls.count("out.ome.zarr") == 1:
            raise KeyboardInterrupt
        return original(source, target, **options)

    monkeypatch.setattr(blockwise, "publish_directory", interrupted_on_the_output)
    arguments = {"model_path": models["unet"], "block": (12, 10, 7), "uncertainty_out": tmp_path / "spread.ome.zarr"}
    with pytest.raises(KeyboardInterrupt):
        denoise_store(tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr", **arguments)
    assert (tmp_path / "spread.ome.zarr").exists() and not (tmp_path / "out.ome.zarr").exists()
    result = denoise_store(tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr", resume=True, **arguments)
    assert result.path.exists() and (tmp_path / "spread.ome.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ome.zarr", "out.ome.zarr", "spread.ome.zarr"]


def test_axis_map_follows_the_tta_transforms():
    from voxelstudio.ml.inference import TTA_TRANSFORMS, forward_transform
    from voxelstudio.tasks.block_predict import axis_map

    x = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    for turns, flip in TTA_TRANSFORMS:
        expected = forward_transform(x, turns, flip)
        moved = x.transpose([original for original, _ in axis_map(turns, flip)])
        flips = tuple(slice(None, None, -1) if reverse else slice(None) for _, reverse in axis_map(turns, flip))
        np.testing.assert_array_equal(moved[flips], expected)


@pytest.mark.slow
def test_a_killed_dask_worker_does_not_spoil_the_output(setup, tmp_path):
    import signal

    from dask.distributed import Client, LocalCluster

    folder, data, models = setup
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster.scheduler_address) as client:
            victims = list(client.run(os.getpid).values())
        killed = []

        def report(p):
            if p.done == 3 and not killed:  # mid-run: blocks are running on both workers
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])

        result = denoise_store(
            folder / "in.ome.zarr", tmp_path / "out.ome.zarr", model_path=models["unet"], block=BLOCK,
            scheduler=cluster.scheduler_address, report=report,
        )  # fmt: skip
    assert killed
    np.testing.assert_allclose(read(result.path), whole_volume(models["unet"], data), rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]


@pytest.mark.parametrize("sampled", [True, False])
def test_nan_in_the_input_is_refused_by_name_and_leaves_nothing(setup, tmp_path, monkeypatch, sampled):
    """NaN where the normalisation sample reads it stops the run before any folder; NaN the sample misses stops
    it at its block, naming where, and the blocks done so far are not kept (bad input is not resumed)."""
    from voxelstudio.tasks import block_sample

    _, _, models = setup
    data = np.random.default_rng(3).random(SHAPE).astype(np.float32)
    data[(0, 0, 0) if sampled else (20, 15, 10)] = np.nan
    store = tmp_path / "nan.zarr"
    import zarr

    zarr.open_array(str(store), mode="w", shape=data.shape, dtype="f4")[:] = data
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 8)  # its one chunk, every 13th voxel: not z, y, x = 20, 15, 10
    where = "" if sampled else r" in the block at voxel \(y, x, z\) \(0, 0, 16\)"  # a bare array is read as z, y, x
    with pytest.raises(VolumeReadError, match=rf"nan\.zarr: the array contains NaN or Inf values{where}"):
        denoise_store(store, tmp_path / "out.ome.zarr", model_path=models["simple"], block=BLOCK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.zarr"]


def test_a_store_replaced_with_another_shape_is_not_resumed_from_the_old_blocks(setup, tmp_path):
    _, _, models = setup
    source, out = tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr"
    save_volume(Volume(np.random.default_rng(4).random(SHAPE).astype(np.float32)), source)
    interrupted_after_two_blocks(source, out, models["unet"])
    cropped = np.random.default_rng(5).random((30, 29, 13)).astype(np.float32)
    save_volume(Volume(cropped), source, overwrite=True)  # re-exported at the same path, another shape
    result = denoise_store(source, out, model_path=models["unet"], block=BLOCK, resume=True)
    assert result.provenance["blockwise"]["resumed_blocks"] == 0
    np.testing.assert_allclose(read(out), whole_volume(models["unet"], cropped), rtol=1e-5, atol=1e-6)


def test_an_interruption_after_the_last_block_resumes_by_publishing_only(setup, tmp_path, monkeypatch):
    """Removing the per-block markers takes a while on a big store: interrupted there, --resume recomputes nothing."""
    import shutil

    from voxelstudio.tasks import blockwise

    folder, data, models = setup
    remove, calls = shutil.rmtree, []

    def interrupted_while_removing_the_markers(path, *args, **kwargs):
        if Path(path).name == blockwise.DONE:
            calls.append(path)
        if Path(path).name == blockwise.DONE and len(calls) == 1:
            raise KeyboardInterrupt
        return remove(path, *args, **kwargs)

    monkeypatch.setattr(blockwise.shutil, "rmtree", interrupted_while_removing_the_markers)
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(KeyboardInterrupt):
        denoise_store(folder / "in.ome.zarr", out, model_path=models["unet"], block=BLOCK)
    assert not out.exists()
    result = denoise_store(folder / "in.ome.zarr", out, model_path=models["unet"], block=BLOCK, resume=True)
    blocks = result.provenance["blockwise"]["blocks"]
    assert blocks > 1 and result.provenance["blockwise"]["resumed_blocks"] == blocks
    np.testing.assert_allclose(read(out), whole_volume(models["unet"], data), rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]
    assert not (out / blockwise.RUN).exists() and not (out / blockwise.DONE).exists()


def test_resume_never_replaces_an_uncertainty_store_another_job_wrote(setup, tmp_path):
    _, _, models = setup
    save_volume(Volume(np.random.default_rng(6).random((12, 10, 7)).astype(np.float32)), tmp_path / "in.ome.zarr")
    theirs = np.random.default_rng(7).random((12, 10, 7)).astype(np.float32)
    save_volume(Volume(theirs), tmp_path / "spread.ome.zarr")  # the user's, or another run's
    arguments = {"model_path": models["unet"], "block": (12, 10, 7), "uncertainty_out": tmp_path / "spread.ome.zarr"}
    with pytest.raises(VolumeWriteError, match=r"spread\.ome\.zarr: already exists"):
        denoise_store(tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr", resume=True, **arguments)
    np.testing.assert_array_equal(load_volume(tmp_path / "spread.ome.zarr").data, theirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ome.zarr", "spread.ome.zarr"]


def test_the_default_block_is_whole_input_chunks_up_to_the_default_chunk():
    """Blocks of thin or small input chunks recomputed the network's halo many times over (one plane: 16x slower)."""
    from voxelstudio.tasks.blockwise import default_block

    assert default_block((1, 1024, 1024)) == (256, 256, 64)  # (H, W, Z) from (Z, Y, X) chunks
    assert default_block((32, 32, 32)) == (256, 256, 64)
    assert default_block((48, 100, 300)) == (200, 256, 48)
    assert default_block((64, 256, 256)) == (256, 256, 64)


def test_the_files_progress_never_falls_back_while_the_levels_are_written(setup, tmp_path):
    """The pyramid step after the blocks has no length: it showed the file at 0 % until it was written."""
    from voxelstudio.tasks.denoise import denoise_files

    folder, _, models = setup
    seen = []
    denoise_files([folder / "in.ome.zarr"], model_path=models["simple"], out_dir=tmp_path, fmt="zarr", block=BLOCK,
                  report=lambda p: seen.append((p.fraction, p.message)))  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("lower-resolution levels" in m and f == 1.0 for f, m in seen)


def test_the_output_keeps_the_inputs_place_in_space(setup, tmp_path):
    """The input's OME-NGFF translation was dropped: a denoised tile no longer overlaid its raw."""
    import zarr

    from voxelstudio.io.zarr_ import create_store

    _, data, models = setup
    create_store(tmp_path / "tile.ome.zarr", SHAPE, (0.1, 0.2, 0.3), "tile", (8, 16, 16), (5.0, 7.0, 1.5))[...] = (
        data.transpose(2, 0, 1)
    )
    out = tmp_path / "out.ome.zarr"
    denoise_store(tmp_path / "tile.ome.zarr", out, model_path=models["simple"], block=BLOCK)
    [level] = zarr.open_group(str(out), mode="r").attrs["multiscales"][0]["datasets"]
    assert level["coordinateTransformations"][1] == {"type": "translation", "translation": [1.5, 5.0, 7.0]}


def test_a_second_run_of_the_same_job_leaves_the_running_ones_blocks_alone(setup, tmp_path):
    """It removed the first run's temporary store (not to be resumed) while that run was writing into it."""
    from voxelstudio.core.atomic import holding

    folder, _, models = setup
    out = tmp_path / "out.ome.zarr"
    interrupted_after_two_blocks(folder / "in.ome.zarr", out, models["simple"])
    [temporary] = tmp_path.iterdir()
    with holding(temporary):  # as the first run does while it writes
        for resume in (False, True):
            with pytest.raises(VolumeWriteError, match="another run of the same job is writing it now"):
                denoise_store(folder / "in.ome.zarr", out, model_path=models["simple"], block=BLOCK, resume=resume)
        assert len(list((temporary / ".voxelstudio-done").iterdir())) == 2


def test_resuming_with_other_settings_says_so_and_leaves_no_hidden_store(setup, tmp_path):
    """Another --block made another job: the resume started over in silence and the first run's hidden store, as
    big as the output, stayed for good."""
    folder, _, models = setup
    out = tmp_path / "out.ome.zarr"
    interrupted_after_two_blocks(folder / "in.ome.zarr", out, models["simple"])
    with pytest.warns(UserWarning, match="had other settings .* so it is not resumed"):
        result = denoise_store(folder / "in.ome.zarr", out, model_path=models["simple"], block=(8, 8, 8), resume=True)
    assert result.provenance["blockwise"]["resumed_blocks"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]
