"""HAR data layer: datasets, windowing, normalisation and batch samplers (no Flower here).

See :func:`load_dataset` for the datasets and their options, :mod:`fl_har.data.windowing` for the
window rule, :mod:`fl_har.data.normalization` and :mod:`fl_har.data.samplers` for the documented
choices. Every bad-input error is a :class:`DataError` (a ``ValueError``).
"""

from fl_har.data.dataset import HARDataset, Recording
from fl_har.data.errors import DataError
from fl_har.data.normalization import NORMALIZATIONS, Normalizer, fit_normalizer
from fl_har.data.registry import available_datasets, load_dataset
from fl_har.data.samplers import SAMPLERS, BatchSampler, make_sampler
from fl_har.data.windowing import Windows, dataset_windows, sliding_windows, subject_windows

__all__ = [
    "NORMALIZATIONS",
    "SAMPLERS",
    "BatchSampler",
    "DataError",
    "HARDataset",
    "Normalizer",
    "Recording",
    "Windows",
    "available_datasets",
    "dataset_windows",
    "fit_normalizer",
    "load_dataset",
    "make_sampler",
    "sliding_windows",
    "subject_windows",
]
