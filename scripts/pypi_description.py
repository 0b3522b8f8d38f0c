"""Write docs/PYPI.md, the package index's description, from README.md.

A package index shows the long description without the repository's files, so relative links
and images break there, and the project has no public address to make them absolute. This
script keeps README.md the one source: images become a line naming the screenshot's path in
the source distribution, relative links keep their text and name their path.

    python scripts/pypi_description.py          # rewrite docs/PYPI.md
    python scripts/pypi_description.py --check  # exit 1 when docs/PYPI.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "PYPI.md"
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(((?![a-z]+://|#|mailto:)[^)\s]+)\)")
_HEADER = ("<!-- Generated from README.md by scripts/pypi_description.py; edit README.md instead. -->\n"
           "<!-- Screenshots and the files named below are in the source distribution. -->\n\n")


def pypi_description(readme: str) -> str:
    """README text with relative images and links replaced by their text and path."""
    text = _IMAGE.sub(lambda m: f"*[Screenshot: {m.group(1)} — `{m.group(2)}` in the sources]*", readme)
    return _HEADER + _LINK.sub(_link_text, text)


def _link_text(match: re.Match[str]) -> str:
    text, path = match.group(1), match.group(2)
    return f"`{path}`" if text.strip("`") == path else f"{text} (`{path}`)"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, compare) docs/PYPI.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is up to date")
    args = parser.parse_args(argv)
    wanted = pypi_description((ROOT / "README.md").read_text(encoding="utf-8"))
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        if current != wanted:
            print("docs/PYPI.md is out of date: run python scripts/pypi_description.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
