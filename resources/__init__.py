"""The model cards and weights napari-brain-dl ships, packed into the wheel as the package data of
``napari_brain_dl.resources`` (setup.cfg maps this folder there); read them through
`napari_brain_dl.core.resources.resources_dir`, never through paths guessed from a file."""
