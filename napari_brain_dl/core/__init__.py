"""Compute: never imports napari, Qt or magicgui."""
