"""The simulated microscope whose bead scans the calibration and adaptation tests use (one definition for them all)."""

from __future__ import annotations

from voxelstudio.sim import SimParams
from voxelstudio.sim.params import OpticsParams

TRUTH = SimParams(
    optics=OpticsParams(na=1.1, ns=1.33, depth_um=4.0, pixel_um=0.1, z_step_um=0.2),
    bead_density=8e-5, photons=300.0, read_noise=2.0, offset=100.0,
)  # fmt: skip
"""An NA 1.1 oil objective 4 µm into water, 0.1 x 0.1 x 0.2 µm voxels, 300 photons per bead, read noise 2."""
