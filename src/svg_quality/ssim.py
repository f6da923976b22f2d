"""SSIM as DESIGN.md defines it, fast enough to score many renderings of one logo.

Wang et al. 2004 on ITU-R 601 luma: Gaussian window (sigma 1.5, truncated at 3.5
sigma = 11 taps), K1 0.01, K2 0.03, data range 255, population (not sample)
covariance, and the mean taken over the image cropped by the window radius. This
is exactly what ``skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)`` computes; tests hold the
two within 1e-4 on real VTracer renderings.

Why it is faster than calling skimage per rendering:

* Every parameter set of a logo is compared against the *same* logo, so the logo's
  local mean and variance are computed once (:class:`SSIMReference`) and reused.
* float32 instead of float64, with values centred on 128 before filtering so that
  E[x^2] - E[x]^2 loses little precision (the Gaussian weights sum to one, so the
  shift cancels exactly in the (co)variances and is added back to the means).
* The three per-rendering images (y, y^2, x*y) are filtered as one stacked array,
  one separable 1-D pass per axis.
* Only pixels at least the window radius away from the border are averaged, and
  their windows never leave the image, so the filter's border mode cannot change
  the result (we still use skimage's ``mode="reflect"``), and only those pixels are
  filtered in the second pass.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SIGMA = 1.5
TRUNCATE = 3.5  # skimage's choice for gaussian_weights: an 11-tap window at sigma 1.5
K1 = 0.01
K2 = 0.03
DATA_RANGE = 255.0
RADIUS = int(TRUNCATE * SIGMA + 0.5)  # 5, as scipy.ndimage computes it
WIN_SIZE = 2 * RADIUS + 1  # 11
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601

_C1 = (K1 * DATA_RANGE) ** 2
_C2 = (K2 * DATA_RANGE) ** 2
_SHIFT = 128.0  # centring offset, see the module docstring


def luma(rgb: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``[H, W, 3]`` RGB (any real dtype, 0..255) -> ``[H, W]`` ITU-R 601 luma."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape [H, W, 3], got shape {rgb.shape}")
    return rgb.astype(dtype, copy=False) @ LUMA_WEIGHTS.astype(dtype)


def _kernel() -> np.ndarray:
    # scipy.ndimage.gaussian_filter1d's order-0 kernel (symmetric, so no flip needed)
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    phi = np.exp(-0.5 / SIGMA**2 * x * x)
    return phi / phi.sum()


_KERNEL = _kernel()


def _blur_valid(stack: np.ndarray) -> np.ndarray:
    """Gaussian-filter the last two axes of ``stack`` ([..., H, W]) as skimage does, keeping
    only the pixels SSIM averages: ``[..., H - 2r, W - 2r]``.

    Cropping the columns after the horizontal pass is exact: the kept columns' windows lie
    inside the image, and the vertical pass then never needs the dropped ones.
    """
    r = RADIUS
    out = ndimage.correlate1d(stack, _KERNEL, axis=-1, output=np.float32, mode="reflect")
    out = ndimage.correlate1d(out[..., r:-r], _KERNEL, axis=-2, output=np.float32, mode="reflect")
    return out[..., r:-r, :]


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2 or min(shape) < WIN_SIZE:
        raise ValueError(
            f"SSIM needs an image of at least {WIN_SIZE}x{WIN_SIZE} pixels (the Gaussian window); "
            f"got shape {shape}"
        )


class SSIMReference:
    """The logo's side of SSIM, computed once; :meth:`score` compares a rendering to it.

    Not thread-safe (:meth:`score` reuses one scratch buffer); use one per thread.

    >>> ref = SSIMReference(logo_rgb)          # [H, W, 3] uint8
    >>> ref.score(rendering_rgb)               # float, same shape required
    """

    def __init__(self, logo_rgb: np.ndarray) -> None:
        x = luma(logo_rgb) - np.float32(_SHIFT)  # [H, W] centred luma
        _check_shape(x.shape)
        self.shape: tuple[int, int] = (x.shape[0], x.shape[1])
        self._x = x
        mu_x, e_xx = _blur_valid(np.stack([x, x * x]))  # two [H - 2r, W - 2r]
        self._mu_x = mu_x
        self._var_x = e_xx - mu_x * mu_x
        self._mu_x_abs = mu_x + np.float32(_SHIFT)
        self._buf = np.empty((3, *self.shape), dtype=np.float32)  # reused per rendering

    def score(self, rendering_rgb: np.ndarray) -> float:
        """Mean SSIM between the logo and ``rendering_rgb`` ([H, W, 3], same size)."""
        y = luma(rendering_rgb) - np.float32(_SHIFT)
        if y.shape != self.shape:
            raise ValueError(
                f"rendering has shape {y.shape[:2]} but the logo is {self.shape}; render the SVG "
                "at the logo's own size"
            )
        buf = self._buf
        buf[0] = y
        np.multiply(y, y, out=buf[1])
        np.multiply(self._x, y, out=buf[2])
        mu_y, e_yy, e_xy = _blur_valid(buf)  # three [H - 2r, W - 2r]
        var_y = e_yy - mu_y * mu_y
        cov = e_xy - self._mu_x * mu_y
        mu_x = self._mu_x_abs
        mu_y += np.float32(_SHIFT)
        num = (2.0 * mu_x * mu_y + _C1) * (2.0 * cov + _C2)
        den = (mu_x * mu_x + mu_y * mu_y + _C1) * (self._var_x + var_y + _C2)
        return float(np.mean(num / den, dtype=np.float64))


def ssim(logo_rgb: np.ndarray, rendering_rgb: np.ndarray) -> float:
    """One-off SSIM of two RGB images (use :class:`SSIMReference` for many renderings)."""
    return SSIMReference(logo_rgb).score(rendering_rgb)
