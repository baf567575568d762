"""Richardson-Lucy deconvolution: the classical baseline the denoisers are compared with.

It narrows beads when the PSF is right, but does not remove haze and turns noise into false peaks as the iterations
go on (the iteration count is the only regularisation).

Steps of :func:`richardson_lucy_volume`:

1. the input is normalised with its 2nd and 99.8th percentiles (background/offset to 0, bright beads to about 1)
   and negatives are clipped, since RL assumes non-negative data with no camera offset;
2. the PSF (an array, a volume file, or simulated from optics) is clipped to non-negative values and scaled to sum 1;
3. the volume is extended by half the PSF size on every side and deconvolved with the measured voxels marked
   (Bertero & Boccacci's boundary treatment, see :func:`richardson_lucy`), then cropped back. Z is often only a few
   PSF lengths deep: plain zero or mirror padding leaves beads near the top and bottom slices pulled onto the border
   as false peaks.

The result is in those normalised units (background 0), float32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.fft import irfftn, next_fast_len, rfftn

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume
from voxelstudio.sim import OpticsParams, make_psf

PSF_MAX_SHAPE = (31, 31, 31)
"""Largest simulated PSF (H, W, Z) in voxels; smaller volumes get the largest odd size that fits."""

EPSILON = 1e-6
"""Floor of the re-blurred estimate in the RL ratio (inputs are normalised to about [0, 1])."""

MIN_OBSERVED_WEIGHT = 0.05
"""Voxels outside the measured volume that receive less than this fraction of their light into it are not solved."""

PsfSource = np.ndarray | Volume | str | Path


class _FftBlur:
    """Convolution with a fixed kernel ('same' size, as ``scipy.signal.fftconvolve``), its transfer computed once."""

    def __init__(self, kernel: np.ndarray, image_shape: tuple[int, ...]) -> None:
        full = [n + m - 1 for n, m in zip(image_shape, kernel.shape, strict=True)]
        self._fft_shape = [next_fast_len(n, real=True) for n in full]
        self._transfer = rfftn(kernel, self._fft_shape)
        starts = [(m - 1) // 2 for m in kernel.shape]
        self._crop = tuple(slice(s, s + n) for s, n in zip(starts, image_shape, strict=True))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return irfftn(rfftn(image, self._fft_shape) * self._transfer, self._fft_shape)[self._crop]


def richardson_lucy(
    image: np.ndarray,
    psf: np.ndarray,
    iterations: int,
    *,
    observed: np.ndarray | None = None,
    epsilon: float = EPSILON,
    before_iteration: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The standard RL update ``x <- x * (psf* conv (image / max(psf conv x, epsilon)))`` from a flat 0.5 start.

    Matches ``skimage.restoration.richardson_lucy(image, psf, iterations, clip=False)`` wherever the re-blurred
    estimate stays above ``epsilon``; the estimate is kept non-negative against FFT round-off.

    ``observed`` (0/1, the image's shape) marks the voxels that were measured when ``image`` was zero-padded: the
    update then ignores the padding and is divided by ``psf* conv observed`` (Bertero & Boccacci 2005), so light
    from objects just outside the measured volume is explained by them rather than piled onto the border slices;
    voxels that barely reach the measured volume (weight below :data:`MIN_OBSERVED_WEIGHT`) stay 0.
    ``before_iteration(i)`` is called before iteration ``i`` (0-based), e.g. to report progress or cancel.
    """
    dtype = np.float32 if image.dtype == np.float32 else np.float64
    image = np.asarray(image, dtype=dtype)
    psf = np.asarray(psf, dtype=dtype)
    blur = _FftBlur(psf, image.shape)
    blur_adjoint = _FftBlur(psf[::-1, ::-1, ::-1], image.shape)
    estimate = np.full(image.shape, 0.5, dtype=dtype)
    if observed is not None:
        mask = np.asarray(observed, dtype=dtype)
        weight = blur_adjoint(mask)
        reachable = weight >= MIN_OBSERVED_WEIGHT
        inverse_weight = np.where(reachable, 1 / np.maximum(weight, MIN_OBSERVED_WEIGHT), 0).astype(dtype)
        estimate *= reachable
    for i in range(iterations):
        if before_iteration is not None:
            before_iteration(i)
        ratio = image / np.maximum(blur(estimate), epsilon)
        update = blur_adjoint(ratio) if observed is None else blur_adjoint(ratio * mask) * inverse_weight
        estimate = np.maximum(estimate * update, 0).astype(dtype, copy=False)
    return estimate


def _odd_fit(limit: int, length: int) -> int:
    size = min(limit, length)
    return size if size % 2 == 1 else size - 1


def _simulated_psf(volume: Volume, optics: OpticsParams | None) -> tuple[np.ndarray, str]:
    optics = OpticsParams() if optics is None else optics
    if not isinstance(optics, OpticsParams):
        raise ValueError(f"optics must be OpticsParams, got {type(optics).__name__}")
    spacing = volume.known_spacing
    if spacing is None:  # a PSF simulated at a guessed voxel size would blur the wrong amount
        raise ValueError(
            f"{volume.label}: voxel size not in the file, and the simulated PSF needs it; give --voxel-size Y,X,Z "
            "in µm (in the window: View settings) or a measured PSF (--psf)"
        )
    shape = tuple(_odd_fit(m, n) for m, n in zip(PSF_MAX_SHAPE, volume.shape, strict=True))
    psf = make_psf(optics, shape, spacing)
    spacing_text = ", ".join(f"{s:g}" for s in spacing)
    return np.asarray(psf), f"simulated (NA {optics.na:g}, {optics.wavelength_um:g} um, voxel {spacing_text} um)"


def _loaded_psf(psf: PsfSource, spacing: tuple[float, float, float] | None) -> tuple[np.ndarray, str]:
    """The PSF's values and a label; ValueError when both it and the volume state voxel sizes that differ (a PSF
    sampled three times finer along z blurs three times too long)."""
    if isinstance(psf, (str, Path)):
        psf, label = load_volume(psf), str(psf)
    elif isinstance(psf, Volume):
        label = psf.name or "psf volume"
    else:
        return np.asarray(psf), "array"
    stated = psf.known_spacing
    if stated is not None and spacing is not None and not np.allclose(stated, spacing, rtol=0.01):
        raise ValueError(f"{label}: voxel size {stated} differs from the volume's {spacing}; resample it first")
    return np.asarray(psf.data), label


def _unit_psf(psf: np.ndarray, label: str) -> np.ndarray:
    if psf.ndim != 3:
        raise ValueError(f"{label}: a PSF must be 3-D (H, W, Z), got shape {psf.shape}")
    psf = np.clip(np.nan_to_num(psf.astype(np.float32), nan=0.0), 0, None)
    total = float(psf.sum(dtype=np.float64))
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"{label}: the PSF has no positive values")
    return psf / np.float32(total)


def _centred_on_peak(psf: np.ndarray, label: str) -> np.ndarray:
    """``psf`` padded with zeros so that its brightest voxel is the centre of an odd-sized kernel, the origin the
    convolution takes (a 16-voxel PSF peaking at index 8 would otherwise move every bead by a voxel)."""
    peak = np.unravel_index(int(np.argmax(psf)), psf.shape)
    pads = []
    for axis, (p, m) in enumerate(zip(peak, psf.shape, strict=True)):
        if m > 2 and p in (0, m - 1):
            raise ValueError(
                f"{label}: the PSF's brightest voxel is on its edge along {'yxz'[axis]} (index {p} of {m}); a PSF is "
                "centred on its brightest voxel"
            )
        half = max(p, m - 1 - p)
        pads.append((half - p, half - (m - 1 - p)))
    return np.pad(psf, pads) if any(before or after for before, after in pads) else psf


def richardson_lucy_volume(
    volume: Volume,
    *,
    psf: PsfSource | None = None,
    optics: OpticsParams | None = None,
    iterations: int = 20,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> Volume:
    """Deconvolve ``volume`` with ``iterations`` Richardson-Lucy steps (see the module docstring).

    ``psf`` is an (H, W, Z) array, a Volume or a volume file, centred on its brightest voxel. Without it the PSF is
    simulated with :func:`voxelstudio.sim.make_psf` from ``optics`` (default ``OpticsParams()``, NA 1.4 oil) on
    the volume's voxel size; a volume whose voxel size is unknown (1, 1, 1) is refused (ValueError naming it).
    Reports one progress step per iteration and raises :class:`~voxelstudio.core.errors.Cancelled` between
    iterations once ``cancel`` is set.
    """
    if int(iterations) < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    iterations = int(iterations)
    title = "Richardson-Lucy"
    if psf is None:
        report(Progress(0, iterations, "simulating PSF"))
        kernel, psf_label = _simulated_psf(volume, optics)
        kernel = _unit_psf(kernel, psf_label)
    else:  # a measured PSF's origin is its brightest voxel; a simulated one's is its centre (aberrations move the peak)
        kernel, psf_label = _loaded_psf(psf, volume.known_spacing)
        kernel = _centred_on_peak(_unit_psf(kernel, psf_label), psf_label)

    normalizer = PercentileNormalizer()
    low, high = normalizer.input_range(volume.data)
    image = np.maximum(normalizer.before(volume.data, (low, high)), 0)
    margins = [(m // 2, m // 2) for m in kernel.shape]
    padded = np.pad(image, margins)
    observed = np.pad(np.ones(image.shape, dtype=np.float32), margins)

    def before_iteration(i: int) -> None:
        if cancel is not None:
            cancel.raise_if_cancelled("deconvolution")
        report(Progress(i, iterations, title, {"iteration": i}))

    result = richardson_lucy(padded, kernel, iterations, observed=observed, before_iteration=before_iteration)
    report(Progress(iterations, iterations, title, {"iteration": iterations}))
    inside = tuple(slice(m, m + n) for (m, _), n in zip(margins, volume.shape, strict=True))
    metadata = {
        "deconvolution": "richardson-lucy",
        "iterations": iterations,
        "psf": psf_label,
        "normalised_from": [low, high],
    }
    name = f"{volume.name}_rl" if volume.name else "deconvolved"
    return volume.replace(data=result[inside], name=name, source=None, metadata=metadata)
