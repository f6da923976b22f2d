"""svg-quality: predict VTracer's vectorization fidelity (SSIM) for a logo and parameter set."""

__version__ = "0.1.0"
