"""Deep learning for brain MRI in napari: geometry-true loading, models, heatmaps."""

__version__ = "0.1.0"
