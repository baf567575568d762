"""Image quality and bead metrics (pure numpy/scipy/scikit-image): PSNR/SSIM/NRMSE, bead detection and FWHM."""

from voxelstudio.metrics.beads import assign_beads, bead_detection_scores, find_beads, match_beads
from voxelstudio.metrics.fwhm import bead_fwhm, fwhm_ratio
from voxelstudio.metrics.image import affine_fit, nrmse, psnr, ssim
from voxelstudio.metrics.pair import evaluate_pair

__all__ = [
    "affine_fit",
    "assign_beads",
    "bead_detection_scores",
    "bead_fwhm",
    "evaluate_pair",
    "find_beads",
    "fwhm_ratio",
    "match_beads",
    "nrmse",
    "psnr",
    "ssim",
]
