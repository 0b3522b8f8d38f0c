"""Make this plugin napari's reader for the scan formats it declares (with the user's consent).

napari asks "Choose reader" whenever two plugins can open a file (here: Brain DL and
napari's builtins for NIfTI). Its answer is kept in napari's settings,
``settings.plugins.extension2reader`` (Preferences > Plugins > "File extension readers",
one row per pattern such as ``*.nii.gz``). `prefer` writes the rows for our formats at once.

Nothing changes without the user's consent: the first time a scan is opened through the
plugin (Load exam, or napari's File > Open picking this reader), `offer` asks once, Yes / No.
The answer is remembered in the plugin's user settings (``<user data folder>/settings.json``,
platformdirs; ``$NAPARI_BRAIN_DL_HOME`` wins), so a No is never asked again; the Load exam
button stays the way to change one's mind. The question is a non-blocking Qt message box;
`set_asker` replaces it (tests answer it programmatically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.resources import read_user_settings, user_dir, write_user_settings

SETTINGS_NAME = "settings.json"  # the plugin's own user settings, in the user folder

PLUGIN = "napari-brain-dl"
#: The reader patterns of napari.yaml (DICOM files are left to the user's choice).
PATTERNS = ("*.nii", "*.nii.gz", "*.mgz", "*.mgh", "*.nrrd", "*.nhdr", "*.mha", "*.mhd")
#: Key of the remembered answer in the plugin's user settings ("yes" / "no").
ANSWER_KEY = "reader_preference_answer"
QUESTION = ("Open NIfTI, MGZ, NRRD and MHA scans with Brain DL from now on?\n\n"
            "napari then stops asking \"Choose reader\" in File > Open. You can change it later in "
            "napari's Preferences > Plugins, or with the button in Load exam.")

#: ``ask(parent, reply)``: put the question to the user and call ``reply(True | False)`` once.
Asker = Callable[[Any, Callable[[bool], None]], None]
_asker: Asker | None = None  # None: the Qt message box (`ask_with_qt`)
_pending = False  # a question is on screen; never two at once


def _settings(settings: Any = None) -> Any:
    if settings is not None:
        return settings
    from napari.settings import get_settings

    return get_settings()


def missing(settings: Any = None) -> list[str]:
    """Patterns that napari does not yet open with this plugin."""
    current = _settings(settings).plugins.extension2reader
    return [p for p in PATTERNS if current.get(p) != PLUGIN]


def prefer(settings: Any = None) -> list[str]:
    """Make this plugin the reader of every pattern in `PATTERNS`; returns the patterns changed."""
    plugins = _settings(settings).plugins
    changed = missing(settings)
    if changed:
        plugins.extension2reader = {**plugins.extension2reader, **dict.fromkeys(changed, PLUGIN)}
    return changed


# -- the remembered answer (plugin user settings) ----------------------------------------
def settings_path() -> Path:
    """``<user data folder>/settings.json``: the plugin's own user settings."""
    return user_dir() / SETTINGS_NAME


def answer() -> bool | None:
    """The user's answer to the question (True: yes, False: no), None when never asked."""
    value = read_user_settings(SETTINGS_NAME).get(ANSWER_KEY)
    return {"yes": True, "no": False}.get(value) if isinstance(value, str) else None


def remember(yes: bool) -> None:
    """Store the user's answer beside the plugin's other user settings (other keys kept)."""
    settings = read_user_settings(SETTINGS_NAME)
    write_user_settings(SETTINGS_NAME, {**settings, ANSWER_KEY: "yes" if yes else "no"})


# -- asking -------------------------------------------------------------------------------
def set_asker(asker: Asker | None) -> Asker | None:
    """Use `asker` for the question (None: the Qt message box); returns the previous one."""
    global _asker
    previous, _asker = _asker, asker
    return previous


def ask_with_qt(parent: Any, reply: Callable[[bool], None]) -> None:
    """Show the question as a window-modal, non-blocking Yes / No box; Esc or close means No."""
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Question, "Brain DL: open scans with Brain DL?", QUESTION,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setDefaultButton(QMessageBox.StandardButton.Yes)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    box.setObjectName("brain_dl_reader_question")
    box.finished.connect(
        lambda _code: reply(box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)))
    box.finished.connect(box.deleteLater)
    box.open()


def should_ask(settings: Any = None) -> bool:
    """True when the question is due: never answered, and napari does not yet prefer us."""
    return not _pending and answer() is None and bool(missing(settings))


def offer(parent: Any = None, settings: Any = None,
          on_answer: Callable[[bool, list[str]], None] | None = None) -> bool:
    """Ask once whether napari should open our formats with this plugin; returns True if asked.

    Yes sets napari's reader preference (`prefer`); either answer is remembered (`remember`),
    so the question never comes back. ``on_answer(yes, changed_patterns)`` follows the reply.
    """
    global _pending
    if not should_ask(settings):
        return False
    _pending = True

    def reply(yes: bool) -> None:
        global _pending
        _pending = False
        remember(bool(yes))
        changed = prefer(settings) if yes else []
        if on_answer is not None:
            on_answer(bool(yes), changed)

    try:
        (_asker or ask_with_qt)(parent, reply)
    except Exception:
        _pending = False
        raise
    return True
