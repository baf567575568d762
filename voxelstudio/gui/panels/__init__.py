"""Side panels of the main window: view settings, training, denoising and metrics."""
