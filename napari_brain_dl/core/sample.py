"""A sample brain exam that needs no download: MNI152 T1 + a *simulated* lesion.

The T1 is nilearn's packaged MNI152 template (ICBM 2009a, 1 mm, skull-stripped),
read by `nilearn.datasets.load_mni152_template`, which only reads a file shipped
inside the nilearn package. The lesion is synthetic: an ellipsoid with a bright
rim and dark core painted into the patient's LEFT frontal-parietal white matter,
so left/right display can be checked at a glance. Every name and metadata entry
says "simulated".
"""

from __future__ import annotations

import numpy as np

from .volume import Volume

#: Lesion centre in MNI world millimetres (RAS+: negative x = patient left).
LESION_CENTRE_MM = (-28.0, -10.0, 30.0)
LESION_RADII_MM = (14.0, 18.0, 12.0)


def mni152_t1() -> Volume:
    """The packaged MNI152 T1 template as a Volume (float32, 0..1)."""
    from nilearn.datasets import load_mni152_template  # heavy import, only here

    img = load_mni152_template(resolution=1)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    return Volume(data, img.affine, name="MNI152 T1",
                  meta={"source": "nilearn packaged MNI152 template (ICBM 2009a, 1 mm)"})


def sample_exam() -> tuple[Volume, Volume]:
    """MNI152 T1 with a simulated lesion, and the simulated lesion's label map.

    Returns:
        (image, labels): both on the template's grid; labels are 1 = simulated
        lesion core, 2 = simulated enhancing rim, 3 = simulated surrounding edema.

    Example:
        >>> image, labels = sample_exam()
        >>> image.shape == labels.shape, int(labels.data.max())
        (True, 3)
    """
    t1 = mni152_t1()
    ijk = np.indices(t1.shape, dtype=np.float32).reshape(3, -1)
    world = (t1.affine[:3, :3] @ ijk + t1.affine[:3, 3:4]).reshape(3, *t1.shape)
    r = np.sqrt(sum(((world[a] - LESION_CENTRE_MM[a]) / LESION_RADII_MM[a]) ** 2 for a in range(3)))
    brain = t1.data > 0.05
    labels = np.zeros(t1.shape, np.uint8)
    labels[(r < 1.6) & brain] = 3
    labels[(r < 1.0) & brain] = 2
    labels[(r < 0.65) & brain] = 1
    image = t1.data.copy()
    image[labels == 3] *= 0.85  # edema: slightly dark on T1
    image[labels == 2] = 0.95  # enhancing rim: bright
    image[labels == 1] = 0.25  # necrotic core: dark
    meta = {"simulated": True, "note": "simulated lesion, not patient data",
            "source": t1.meta["source"]}
    return (Volume(image, t1.affine, name="T1 (MNI152 + simulated lesion)", meta=dict(meta)),
            Volume(labels, t1.affine, name="simulated lesion", meta=dict(meta)))
