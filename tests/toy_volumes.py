"""Small synthetic volumes shared by tests that need a head-like image but no real scan."""

from __future__ import annotations

import numpy as np

from napari_brain_dl.core.volume import Volume


def toy_head(seed: int = 0, shape: tuple[int, int, int] = (96, 100, 92)) -> Volume:
    """A skull-stripped-looking 1 mm 'head' (ellipsoid, smooth texture), LPS like BraTS."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape, np.float32) - 1) / 2
    r = sum(((g - c) / (0.45 * s)) ** 2 for g, c, s in zip(grid, centre, shape, strict=True))
    texture = ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 3)
    data = np.where(r < 1, 200 + 2000 * texture, 0).astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [95.0, 99.0, -40.0]
    return Volume(data, affine, name=f"toy{seed}", meta={"path": f"/toy/{seed}.nii.gz"})


def as_ras(vol: Volume) -> Volume:
    """The same image stored RAS (axes 0 and 1 flipped): same space, another grid."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [vol.shape[0] - 1, vol.shape[1] - 1]
    return Volume(np.ascontiguousarray(vol.data[::-1, ::-1]), vol.affine @ flip, name=f"{vol.name}_ras")
