"""What an image header may make the reader do, and what of it may be repeated.

- External data files: a MetaImage (.mha/.mhd) ``ElementDataFile`` or an NRRD ``data file:``
  field may name the file that holds the voxels. Only ``LOCAL`` (voxels in the header's own
  file) or a plain file name (no folder, no ``..``, no spaces, no pattern or LIST) of a regular
  file in the header's own folder is followed; anything else (``/etc/passwd``, ``../../x``, a
  link leaving the folder) is refused before SimpleITK opens the header.
- Free text (DICOM SeriesDescription / ProtocolName, NIfTI descrip / aux_file / intent_name
  other than ours) may hold names, IDs or birth dates. It is kept apart in
  ``Volume.meta["header_text"]`` (see `FREE_TEXT_KEY`), never in names, written headers,
  ``info`` or JSON unless the user passes ``--include-identifiers``.
- ITK error texts carry ``file.cxx:line`` and object addresses: `itk_reason` keeps the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

#: Key of ``Volume.meta`` holding the free-text header fields (a dict; never a name or output).
FREE_TEXT_KEY = "header_text"
#: Longest MetaImage / NRRD header read to find its data-file field; a longer one is refused.
HEADER_BYTES = 1 << 20
_PLAIN_NAME = re.compile(r"[^/\\\s%]+")


def external_data_names(path: Path) -> list[str]:
    """The data-file values a MetaImage or NRRD header names (``LOCAL`` excluded), in order.

    Raises:
        ValueError: The header does not end within `HEADER_BYTES` (its fields cannot be checked).
    """
    from .image_checks import ImageReadError

    with open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES).decode("latin-1").replace("\r\n", "\n")
        complete = not fh.read(1)
    nrrd = head.startswith("NRRD")
    ended = "\n\n" in head if nrrd else re.search(r"(?im)^\s*ElementDataFile\s*=", head) is not None
    if not (complete or ended):
        raise ImageReadError(f"{path} has a header longer than {HEADER_BYTES >> 20} MiB; it was not read.")
    if nrrd:
        lines = head.split("\n\n", 1)[0].split("\n")
        names: list[str] = []
        for number, line in enumerate(lines):
            key, sep, value = line.partition(":")
            if sep and not value.startswith("=") and key.strip().lower() in ("data file", "datafile"):
                names.append(value.strip())
                if value.strip().upper().startswith("LIST"):
                    names += [ln.strip() for ln in lines[number + 1:] if ln.strip()]
        return names
    for line in head.split("\n"):
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "elementdatafile":
            value = value.strip()
            return [] if value.upper() == "LOCAL" else [value]
    return []


def check_external_data(path: Path) -> None:
    """Refuse a MetaImage / NRRD header whose voxels would be read from another place.

    Raises:
        ValueError: One sentence naming `path` and the file its header points at.
    """
    from .image_checks import ImageReadError

    folder = path.resolve().parent
    for name in external_data_names(path):
        target = folder / name
        plain = bool(_PLAIN_NAME.fullmatch(name)) and name not in (".", "..") and name.upper() != "LIST"
        if not plain or not target.is_file() or target.resolve().parent != folder:
            shown = name if len(name) <= 80 else name[:77] + "..."
            raise ImageReadError(
                f"{path} takes its voxels from another file ({shown}); only a plain file name in the same "
                "folder is followed, so it was not read.")


def itk_reason(exc: BaseException) -> str:
    """The reason inside an ITK / SimpleITK error, without source paths, line numbers or addresses.

    Example:
        >>> itk_reason(RuntimeError("Exception thrown in SimpleITK ImageFileReader_Execute: "
        ...     "/src/sitkImageReaderBase.cxx:91:\\nsitk::ERROR: The file \\"/x.mha\\" does not exist."))
        'the file "/x.mha" does not exist'
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Exception thrown in")]
    cleaned = []
    for line in lines:
        line = re.sub(r"^(?:s?itk::|ITK )?ERROR:\s*", "", line)
        line = re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", line)
        line = re.sub(r"^\[\w+\]\s*\w+:\s*", "", line)
        line = re.sub(r"\S+\.(?:cxx|cpp|h|hxx|txx)(?::\d+)+:?", "", line).strip(" :")
        if line and line.lower() != "trouble":
            cleaned.append(line)
    if not cleaned:
        return "the file is not an image ITK can read"
    text = cleaned[-1] if "[nrrd]" in str(exc) else cleaned[0]
    text = text.rstrip(".")
    return text[:1].lower() + text[1:]
