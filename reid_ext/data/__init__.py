"""Datasets, aux-map loading and joint transforms. Importing registers the datasets."""
from reid_ext.data import (
    atrw,  # noqa: F401
    image_folder,  # noqa: F401
    market_multi_query,  # noqa: F401
    options,  # noqa: F401
    synthetic,  # noqa: F401
)
