"""``convert``: a scan (or DICOM series) written as NIfTI / NRRD / MHA, its geometry kept."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Job, JobContext, JobResult, option

IDENTIFIERS_HELP = ("free-text header fields (SeriesDescription, ProtocolName, NIfTI descrip, aux_file) may "
                    "identify the patient and are left out by default; ")


def identifiers_option(what: str) -> bool:
    """``--include-identifiers``: free-text header fields are dropped unless given."""
    return option("--include-identifiers", default=False, help=IDENTIFIERS_HELP + what, action="store_true")


def volume_option() -> int | None:
    """``--volume``: which volume of a 4D file."""
    return option("--volume", default=None, parse=int, help="volume index of a 4D file")


def series_option() -> str | None:
    """``--series``: which series of a multi-series DICOM folder."""
    return option("--series", default=None, help="series instance UID in a multi-series DICOM folder")


@dataclass(frozen=True, kw_only=True)
class ConvertJob(Job):
    """Write a scan in another format; the affine and voxels stay exactly as read."""

    command = "convert"
    help = "write a scan (or DICOM series) as NIfTI, geometry kept"

    input: str = option(help="NIfTI/MGZ/NRRD/MHA file or DICOM folder")
    output: str = option(help="output .nii.gz / .nii (or .nrrd / .mha)", output=True)
    overwrite: bool = option("--overwrite", default=False, action="store_true",
                             help="replace OUTPUT if it exists")
    volume: int | None = volume_option()
    series: str | None = series_option()
    include_identifiers: bool = identifiers_option(
        "copy the NIfTI description or DICOM SeriesDescription into the output")

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io

        ctx.check_outputs(self.output)
        volume = ctx.load(self.input, volume_index=self.volume, series_uid=self.series)
        text = volume.meta.get("header_text", {}) if self.include_identifiers else {}
        description = text.get("descrip") or text.get("series_description")  # else ours (or none)
        out = io.save(volume, self.output, overwrite=self.overwrite, description=description)
        record = ctx.record({"output": out}, {"input": self.input})
        shape = "x".join(map(str, volume.shape))
        line = f"wrote {out} ({shape}, {volume.axcodes}, {volume.data.dtype})"
        return JobResult({"output": out}, record, [line], ctx.warnings)
