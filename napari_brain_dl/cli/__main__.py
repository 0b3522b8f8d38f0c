"""``python -m napari_brain_dl.cli``: the same as the ``napari-brain-dl`` command."""

import sys

from . import main

sys.exit(main())
