"""Side panels of the main window: view settings, training, denoising, metrics,
classification and line profiles."""
