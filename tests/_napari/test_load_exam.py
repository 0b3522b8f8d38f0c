"""The "Load exam" widget reads the four BraTS contrasts and loads them on one grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_brain_dl._napari.layers import GEOMETRY
from napari_brain_dl._napari.widgets import load_exam
from napari_brain_dl._napari.widgets.load_exam import LoadExamWidget

BRATS = ("t1c", "t1n", "t2f", "t2w")
QUESTION_BOX = "brain_dl_reader_question"  # object name of the reader question's message box


def test_load_brats_exam(viewer: Any, data_dir: Path) -> None:
    widget = LoadExamWidget(viewer)
    widget.synchronous = True
    widget.files.value = [str(data_dir / "brats_gli_00001" / f"{name}.nii.gz") for name in BRATS]
    assert widget.contrasts() == ["t1c", "t1", "flair", "t2"]
    assert widget.table.data[0, 4] == "LPS" and widget.table.data[0, 2] == "240 x 240 x 155"
    widget.reference.value = "t1c"
    widget.register.value = "no"
    widget.load()
    layers = [viewer.layers[name] for name in ("t1c", "t1", "flair", "t2")]
    assert all(x.data.shape == (155, 240, 240) for x in layers)
    grid = layers[0].metadata[GEOMETRY]["reference_grid"]
    assert grid["shape"] == (240, 240, 155)
    for layer in layers:
        record = layer.metadata[GEOMETRY]
        np.testing.assert_allclose(record["reference_grid"]["affine"], grid["affine"])
        assert record["alignment"] in ("reference", "same grid")
    assert "t1c grid" in widget.status.value


def test_paths_shown_normalised(viewer: Any, data_dir: Path) -> None:
    widget = LoadExamWidget(viewer)
    widget.synchronous = True
    typed = data_dir / "brats_gli_00001" / ".." / "brats_gli_00001" / "t2f.nii.gz"
    widget.files.value = [str(typed)]
    shown = [str(p) for p in widget.files.value]
    assert shown == [str((data_dir / "brats_gli_00001" / "t2f.nii.gz").absolute())]
    assert ".." not in widget.files.line_edit.value
    assert widget.contrasts() == ["flair"]  # read once, from the normalised path


def test_contrast_edit_and_errors(viewer: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    errors: list[str] = []
    monkeypatch.setattr(load_exam, "show_error", errors.append)
    monkeypatch.setattr(load_exam, "show_warning", errors.append)
    widget = LoadExamWidget(viewer)
    widget.synchronous = True
    widget.files.value = [str(data_dir / "brats_gli_00001" / f"{name}.nii.gz") for name in BRATS[:2]]
    widget.table.data[1, 0] = "t1c"  # the user types a duplicate contrast
    widget.load()
    assert errors and "same contrast" in errors[0]
    widget.table.data[1, 0] = "T2"
    widget.load()
    assert {"t1c", "t2"} <= {x.name for x in viewer.layers}
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    widget.files.value = [str(broken)]
    assert "broken.nii.gz" in errors[-1]
    assert widget.load_button.enabled  # the widget is usable again


def test_threaded_read_and_cancel(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    widget = LoadExamWidget(viewer)
    widget.files.value = [str(data_dir / "brats_gli_00001" / "t2f.nii.gz")]
    qtbot.waitUntil(lambda: widget.load_button.enabled and widget.contrasts() == ["flair"], timeout=20000)
    widget.load()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.load_button.enabled, timeout=20000)
    scans = [x.name for x in viewer.layers]
    # Cancelled cleanly (nothing added), or the one-series exam finished before the click.
    assert (scans, widget.status.value) == ([], "Cancelled.") or scans == ["flair"]


def test_a_bad_file_never_blocks_the_good_ones_nor_leaves_the_old_exam(viewer: Any, data_dir: Path,
                                                                       tmp_path: Path) -> None:
    widget = LoadExamWidget(viewer)
    widget.synchronous = True
    widget.files.value = [str(data_dir / "brats_gli_00001" / "t1c.nii.gz")]
    assert widget.contrasts() == ["t1c"]
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    widget.files.value = [str(broken), str(data_dir / "brats_gli_00001" / "t2f.nii.gz")]
    assert widget.contrasts() == ["flair"]  # the good file is read, the old exam is gone
    assert "skipped 1: broken.nii.gz" in widget.status.value and widget.status.native.wordWrap()
    widget.load()
    assert "flair" in viewer.layers
    widget.files.value = [str(broken)]
    assert widget.contrasts() == [] and not widget.table.value["data"]  # nothing of the previous read


def test_reader_preference_is_set_on_the_users_click(viewer: Any, data_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: File > Open of a NIfTI asks which reader; after the click it opens with Brain DL."""
    from napari.errors import MultipleReaderError
    from napari.settings import get_settings

    from napari_brain_dl._napari import reader_preference

    settings = get_settings()
    monkeypatch.setattr(type(settings), "save", lambda self, *a, **k: None)  # never the user's real file
    monkeypatch.setattr(settings.plugins, "extension2reader", {})
    widget = LoadExamWidget(viewer)
    assert not widget.reader_button.native.isHidden() and reader_preference.missing(settings)
    path = str(data_dir / "brats_gli_00001" / "t2f.nii.gz")
    with pytest.raises(MultipleReaderError):  # what makes File > Open show "Choose reader"
        viewer._open_or_raise_error([path], {}, None, False)
    widget.reader_button.clicked.emit()
    assert not reader_preference.missing(settings) and "File > Open" in widget.status.value
    assert widget.reader_button.native.isHidden()
    assert settings.plugins.extension2reader["*.nii.gz"] == "napari-brain-dl"
    viewer.window._qt_viewer._qt_open([path], stack=False)  # File > Open: no dialog now
    assert "brain_dl_geometry" in viewer.layers["t2f"].metadata


@pytest.fixture
def no_reader_set(monkeypatch: pytest.MonkeyPatch) -> Any:
    """napari's settings with no reader chosen for any pattern (never saved to the user's file)."""
    from napari.settings import get_settings

    settings = get_settings()
    monkeypatch.setattr(type(settings), "save", lambda self, *a, **k: None)
    monkeypatch.setattr(settings.plugins, "extension2reader", {})
    return settings


def _load_flair(viewer: Any, data_dir: Path) -> LoadExamWidget:
    widget = LoadExamWidget(viewer)
    widget.synchronous = True
    widget.files.value = [str(data_dir / "brats_gli_00001" / "t2f.nii.gz")]
    widget.load()
    assert "flair" in viewer.layers
    return widget


def test_first_exam_asks_once_and_yes_sets_the_reader(viewer: Any, data_dir: Path, no_reader_set: Any,
                                                       reader_question: Any) -> None:
    from napari_brain_dl._napari import reader_preference

    reader_question.reply = True
    widget = _load_flair(viewer, data_dir)
    assert reader_question.asked == 1
    assert not reader_preference.missing(no_reader_set)
    assert no_reader_set.plugins.extension2reader["*.nii.gz"] == "napari-brain-dl"
    assert reader_preference.answer() is True and widget.reader_button.native.isHidden()
    assert '"yes"' in reader_preference.settings_path().read_text()
    _load_flair(viewer, data_dir)
    assert reader_question.asked == 1  # asked once only


def test_no_is_remembered_and_the_button_changes_ones_mind(viewer: Any, data_dir: Path, no_reader_set: Any,
                                                            reader_question: Any) -> None:
    from napari_brain_dl._napari import reader_preference

    reader_question.reply = False
    widget = _load_flair(viewer, data_dir)
    assert reader_question.asked == 1 and reader_preference.answer() is False
    assert no_reader_set.plugins.extension2reader == {}  # No changes nothing in napari
    assert not widget.reader_button.native.isHidden()
    again = _load_flair(viewer, data_dir)  # a new widget, the same user: never asked again
    assert reader_question.asked == 1
    again.reader_button.clicked.emit()  # changing one's mind
    assert not reader_preference.missing(no_reader_set) and reader_preference.answer() is True


def test_file_open_through_our_reader_asks_once(viewer: Any, data_dir: Path, no_reader_set: Any,
                                                reader_question: Any, qtbot: Any) -> None:
    """File > Open picking Brain DL (napari's "Choose reader") asks; after Yes napari stops asking."""
    from napari.errors import MultipleReaderError

    path = str(data_dir / "brats_gli_00001" / "t2f.nii.gz")
    with pytest.raises(MultipleReaderError):  # "Choose reader" until the user consents
        viewer._open_or_raise_error([path], {}, None, False)
    reader_question.reply = True
    viewer.open(path, plugin="napari-brain-dl")  # what picking Brain DL in "Choose reader" does
    assert "t2f" in viewer.layers
    qtbot.waitUntil(lambda: reader_question.asked == 1, timeout=5000)  # once the layer is in
    viewer._open_or_raise_error([path], {}, None, False)  # no MultipleReaderError now
    assert len([x for x in viewer.layers if x.name.startswith("t2f")]) == 2
    qtbot.wait(50)
    assert reader_question.asked == 1


def test_the_question_is_a_non_blocking_yes_no_box(viewer: Any, no_reader_set: Any, qtbot: Any) -> None:
    """The real Qt question: Yes answers True, Esc answers No; neither blocks the caller."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QMessageBox

    from napari_brain_dl._napari import reader_preference

    window = viewer.window._qt_window
    for action, expected in (("yes", True), ("escape", False)):
        replies: list[bool] = []
        reader_preference.ask_with_qt(window, replies.append)  # returns at once
        box = window.findChild(QMessageBox, QUESTION_BOX)
        assert box is not None and box.isVisible() and replies == []
        assert "Brain DL" in box.text() and "Preferences > Plugins" in box.text()
        if action == "yes":
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            qtbot.keyClick(box, Qt.Key.Key_Escape)
        qtbot.waitUntil(lambda got=replies: got != [], timeout=3000)
        assert replies == [expected]
        qtbot.waitUntil(lambda: window.findChild(QMessageBox, QUESTION_BOX) is None, timeout=3000)


def test_plugin_dock_asks_over_the_window_and_draws_overlay_letters(make_napari_viewer: Any, data_dir: Path,
                                                                     no_reader_set: Any, reader_question: Any,
                                                                     qtbot: Any) -> None:
    """Opened from the Plugins menu, the widget gets napari's proxy of the viewer: the question's
    parent must still be the Qt main window (a proxy made QMessageBox raise), and the letters
    must still be canvas overlays (the proxy once sent them to the points-layer fallback)."""
    from qtpy.QtWidgets import QMainWindow

    from napari_brain_dl._napari import display

    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-brain-dl", "Load exam")
    assert widget._viewer is not viewer  # the proxy
    widget.synchronous = True
    widget.files.value = [str(data_dir / "brats_gli_00001" / "t2f.nii.gz")]
    widget.load()
    assert reader_question.asked == 1 and issubclass(reader_question.parents[0], QMainWindow)
    qtbot.wait(100)
    assert [x.name for x in viewer.layers] == ["flair"] and display.LETTERS_LAYER not in viewer.layers
    assert viewer.canvas.overlays[display.LETTER_OVERLAYS["left"]].text == "R"
