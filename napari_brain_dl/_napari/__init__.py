"""napari side of napari-brain-dl: the only subpackage that imports napari, Qt or magicgui."""
