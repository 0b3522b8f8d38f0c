"""Read and write scans without ever losing their geometry.

NIfTI and MGZ go through nibabel (its affine rule: sform when its code is set,
else qform, else the header's pixel sizes); NRRD/MHA and DICOM series folders
go through SimpleITK, whose LPS geometry is converted to RAS+ exactly.
Writes are atomic: a temporary file beside the target, renamed when complete.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError

from .headers import FREE_TEXT_KEY, check_external_data, itk_reason
from .image_checks import (  # noqa: F401  (the errors and checks are re-exported: callers use io.X)
    SPACING_RANGE_MM,
    ImageReadError,
    SeriesChoiceError,
    check_geometry,
    check_scalar_voxels,
    check_shape,
    note_bad_values,
    storable,
)
from .output_rules import note_written
from .synthetic import INTENT_NAME
from .volume import Volume

NIBABEL_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh", ".img", ".hdr")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")


def suffix_of(path: str | os.PathLike[str]) -> str:
    """Lower-case suffix, treating ".nii.gz" as one."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def contrast_stem(path: str | os.PathLike[str]) -> str:
    """File name without its image suffix ("sub-01_T1w.nii.gz" -> "sub-01_T1w")."""
    name = Path(path).name
    suffix = suffix_of(path)
    return name[: len(name) - len(suffix)] if suffix else name


def load(path: str | os.PathLike[str], *, volume_index: int | None = None,
         series_uid: str | None = None, name: str | None = None) -> Volume:
    """Load a NIfTI/MGZ/NRRD file or a DICOM series folder as a `Volume`.

    Args:
        path: File, or folder of DICOM files (a single .dcm file means its folder).
        volume_index: Which volume of a 4D file to take (required for 4D input).
        series_uid: Which series of a DICOM folder holding several.
        name: Display name; defaults to the file stem.

    Raises:
        FileNotFoundError: The path does not exist.
        ImageReadError: Unreadable, corrupt, 2D, ambiguous 4D / multi-series, too large,
            colour or vector voxels, a header naming another file as its data (`headers`), a voxel
            size of 0, or a DICOM series off a regular grid (`dicom`).

    Free-text header fields (NIfTI descrip, DICOM SeriesDescription...) stay in
    ``meta["header_text"]``: never in the name, and not written back by `save`.

    Example:
        >>> vol = load("brats_gli_00001/t1c.nii.gz")  # doctest: +SKIP
        >>> vol.shape, vol.axcodes
        ((240, 240, 155), 'LPS')
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    from .dicom import is_dicom_file, load_dicom_series  # SimpleITK loads only when needed

    if path.is_dir() or is_dicom_file(path):
        folder = path if path.is_dir() else path.parent
        volume = load_dicom_series(folder, series_uid=series_uid)
    elif suffix_of(path) in SITK_SUFFIXES:
        volume = _load_sitk_file(path, volume_index)
    else:
        volume = _load_nibabel(path, volume_index)
    volume.name = name or volume.name
    check_geometry(path, volume.affine)
    volume.data = storable(volume.data, path)
    note_bad_values(volume)
    return volume


def _load_nibabel(path: Path, volume_index: int | None) -> Volume:
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path} is an empty file (0 bytes).")
    if suffix_of(path) not in NIBABEL_SUFFIXES:
        raise ImageReadError(f"{path}: the extension {suffix_of(path) or '(none)'} is not a scan format; "
                             "use .nii, .nii.gz, .mgz, .nrrd, .mha or a DICOM folder.")
    try:
        img = nib.load(str(path))
    except nib.filebasedimages.ImageFileError as exc:
        raise ImageReadError(f"{path} is not a NIfTI, MGZ, NRRD or DICOM image ({_reason(exc)}).") from exc
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, HeaderDataError) as exc:
        raise ImageReadError(f"{path} could not be read: the file is truncated or corrupt "
                             f"({_reason(exc)}).") from exc
    shape = tuple(int(s) for s in img.shape)
    check_scalar_voxels(path, img.get_data_dtype(), shape)
    index = check_shape(path, shape, volume_index)
    check_fits_in_memory(path, shape[:3], img.get_data_dtype())
    try:
        proxy = img.dataobj
        data = np.asanyarray(proxy[..., index] if index is not None else proxy)
    except (OSError, EOFError, zlib.error, ValueError, HeaderDataError) as exc:
        raise ImageReadError(f"{path} could not be read: the file is truncated or corrupt "
                             f"({_reason(exc)}).") from exc
    data = data.reshape(shape[:3])
    meta: dict[str, Any] = {"path": str(path.resolve()), "format": type(img).__name__}
    warnings: list[str] = []
    if isinstance(img, nib.Nifti1Pair):  # NIfTI-1 or -2, single file or .hdr/.img pair
        meta.update(_nifti_geometry_notes(img, warnings))
        _check_pixdim(path, img, meta["affine_source"])
    if index is not None:
        meta["volume_index"] = index
    return Volume(data, img.affine, name=contrast_stem(path), meta=meta, warnings=warnings)


def _check_pixdim(path: Path, img: nib.Nifti1Image, source: str) -> None:
    """Refuse a voxel size of 0 (or NaN) in the header when the affine is built from it.

    nibabel replaces such a pixdim by 1 mm with a log line only; a wrong scale is data loss.
    """
    if source == "sform":
        return
    from nibabel.openers import ImageOpener

    holder = img.file_map.get("header") or img.file_map["image"]
    header_file = holder.filename or str(path)
    with ImageOpener(header_file) as fobj:
        raw = type(img.header).from_fileobj(fobj, check=False)
    pixdim = np.asarray(raw["pixdim"][1:4], dtype=np.float64)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim == 0):
        text = " x ".join(f"{p:g}" for p in pixdim)
        raise ImageReadError(f"{path} gives a voxel size of {text} mm (pixdim) and no sform; "
                             "its geometry is unknown, so it was not read.")


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (the detail inside a one-sentence error)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _nifti_geometry_notes(img: nib.Nifti1Image, warnings: list[str]) -> dict[str, Any]:
    """Record which header affine was used and warn when qform and sform disagree."""
    header = img.header
    qform, qcode = header.get_qform(coded=True)
    sform, scode = header.get_sform(coded=True)
    source = "sform" if scode else "qform" if qcode else "pixdim"
    if qform is not None and sform is not None and not np.allclose(qform, sform, atol=1e-3):
        warnings.append(
            f"qform and sform disagree (largest difference {np.abs(qform - sform).max():.2f} mm); "
            "the sform is used, as nibabel, FSL and the NIfTI standard do.")
    notes: dict[str, Any] = {"affine_source": source, "qform_code": int(qcode), "sform_code": int(scode)}
    text = {key: header[key].tobytes().split(b"\0")[0].decode("latin-1").strip()
            for key in ("descrip", "aux_file", "intent_name")}
    text = {key: value for key, value in text.items() if value}
    if text:
        notes[FREE_TEXT_KEY] = text
    stamp = INTENT_NAME
    if text.get("intent_name") == stamp or text.get("descrip", "").upper().startswith(stamp):
        notes["description"] = f"{stamp} image"  # our own stamp, not the free text after it
    return notes


def _load_sitk_file(path: Path, volume_index: int | None) -> Volume:
    import SimpleITK as sitk

    from .dicom import volume_from_sitk

    check_external_data(path)
    try:
        info = sitk.ImageFileReader()
        info.SetFileName(str(path))
        info.ReadImageInformation()
        size = tuple(int(n) for n in info.GetSize())
        if info.GetDimension() not in (3, 4):
            raise ImageReadError(f"{path} is a {info.GetDimension()}D image; a 3D volume is needed.")
        if info.GetNumberOfComponents() > 1:
            raise ImageReadError(f"{path} holds vector or colour voxels; a scalar 3D volume is needed.")
        index = check_shape(path, size, volume_index)
        check_fits_in_memory(path, size[:3], np.float32)
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(f"{path} could not be read as an image ({itk_reason(exc)}).") from exc
    if image.GetDimension() == 4:
        image = image[:, :, :, index or 0]
    return volume_from_sitk(image, name=contrast_stem(path),
                            meta={"path": str(path.resolve()), "format": "SimpleITK"})


#: Environment variable: the largest volume (in voxels) `load` accepts; unset means no limit but memory.
MAX_VOXELS_ENV = "NAPARI_BRAIN_DL_MAX_VOXELS"


def max_voxels() -> int | None:
    """The configured voxel limit (`MAX_VOXELS_ENV`), or None."""
    text = os.environ.get(MAX_VOXELS_ENV, "").replace("_", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def check_fits_in_memory(path: str | os.PathLike[str], shape: tuple[int, ...], dtype: Any) -> None:
    """Refuse, before reading it, a volume over the configured voxel limit or too large for free memory.

    Raises:
        ImageReadError: One sentence with the size, the limit and what to do.
    """
    voxels = int(np.prod(shape, dtype=np.int64))
    limit = max_voxels()
    if limit and voxels > limit:
        raise ImageReadError(
            f"{path} has {voxels:,} voxels ({' x '.join(map(str, shape))}), more than the limit of {limit:,} "
            f"set by {MAX_VOXELS_ENV}; crop or downsample it first, or raise the limit.")
    needed = voxels * max(np.dtype(dtype).itemsize, 4)
    available = available_memory_bytes()
    if available and needed > 0.8 * available:
        raise ImageReadError(
            f"{path} needs about {needed / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB "
            "of memory is free; crop or downsample it first.")


def available_memory_bytes() -> int:
    """Free memory as the kernel reports it (0 when unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only on success.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        PermissionError: The folder cannot be written.
        OSError: The disk is full (or read-only, over quota): one sentence naming `path`;
            the temporary file is removed and `path` is untouched.

    Example:
        >>> with atomic_output("out.nii.gz", overwrite=True) as tmp:  # doctest: +SKIP
        ...     nib.save(img, tmp)
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass --overwrite (or choose another name) to replace it.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"The output folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"The output folder {folder} is not writable.")
    tmp = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix_of(path) or ".tmp",
                                        dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result is shared like any file
        yield tmp
        _move_into_place(tmp, path, overwrite)
        note_written(path)
    except OSError as exc:
        if exc.errno in _WRITE_ERRNOS and not isinstance(exc, FileExistsError):
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            error = type(exc)(f"{path} could not be written ({reason}); nothing was written.")
            error.errno = exc.errno  # no strerror: str(error) stays the sentence
            raise error from exc
        raise
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


#: Errors of the disk or folder while writing (full, quota, read-only, permissions, I/O).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename `tmp` to `path`; without `overwrite`, never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, path)
        return
    appeared = f"{path} appeared while it was being written; it was left untouched."
    try:
        os.link(tmp, path)  # fails if `path` exists, atomically
    except FileExistsError:
        raise FileExistsError(appeared) from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise FileExistsError(appeared) from None
        os.replace(tmp, path)


def save(volume: Volume, path: str | os.PathLike[str], *, overwrite: bool = False,
         description: str | None = None, intent_name: str | None = None) -> Path:
    """Write `volume` atomically with its exact affine (NIfTI, or NRRD/MHA via SimpleITK).

    NIfTI output sets qform and sform to the same affine (codes copied from the
    source when it was NIfTI, else "scanner"), so every reader agrees. `intent_name` (NIfTI only,
    15 characters at most) labels the data, e.g. "SYNTHETIC".

    Example:
        >>> save(vol.with_data(mask.astype(np.uint8)), "mask.nii.gz")  # doctest: +SKIP
    """
    path = Path(path)
    suffix = suffix_of(path)
    if suffix not in WRITE_SUFFIXES:
        raise ValueError(f"Cannot write {path.name}: use one of {', '.join(WRITE_SUFFIXES)}.")
    data = storable(volume.data, path)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    with atomic_output(path, overwrite=overwrite) as tmp:
        if suffix in (".nii", ".nii.gz"):
            nib.save(_to_nifti(volume, data, description, intent_name), str(tmp))
        else:
            import SimpleITK as sitk

            from .dicom import sitk_from_volume
            sitk.WriteImage(sitk_from_volume(volume.with_data(data)), str(tmp), True)
    return path


def _to_nifti(volume: Volume, data: np.ndarray, description: str | None,
              intent_name: str | None = None) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, volume.affine)
    code = int(volume.meta.get("sform_code") or volume.meta.get("qform_code") or 1)
    img.set_sform(volume.affine, code=code)
    img.set_qform(volume.affine, code=code)
    img.header.set_xyzt_units("mm", "sec")
    text = description if description is not None else str(volume.meta.get("description", ""))
    img.header["descrip"] = text.encode("latin-1", "replace")[:79]
    if intent_name:
        img.header["intent_name"] = intent_name.encode("latin-1", "replace")[:15]
    return img
