"""WEAR and Wetlab, the two datasets of Bock et al.'s label-leakage study, from the user's disk.

Both are distributed as one CSV per subject, ``sbj_<i>.csv`` (layout in
:mod:`fl_har.data.subject_csv`), sampled at 50 Hz. Subject id = ``i`` from the file name; each
file is one continuous recording. Nothing is downloaded: pass the folder as ``root`` or put the
files in the default location ``$FL_HAR_DATA/<name>``, else ``~/fl-har-data/<name>``.

- WEAR (Bock et al., "WEAR: An Outdoor Sports Dataset for Wearable and Egocentric Activity
  Recognition", IMWUT 2024): 12 accelerometer channels (right arm, right leg, left leg, left arm;
  x, y, z each), 18 activities + NULL.
- Wetlab (Scholl et al., "Wearables in the Wet Lab", UbiComp 2015): 3 wrist accelerometer
  channels, 8 activities + NULL.
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

from fl_har.data.cache import cached_recordings
from fl_har.data.dataset import HARDataset, Recording
from fl_har.data.errors import DataError
from fl_har.data.paths import default_cache_dir, default_data_dir
from fl_har.data.subject_csv import (
    DEFAULT_MAX_GAP,
    PARSER_VERSION,
    CsvLayout,
    read_subject_csv,
)

WEAR = CsvLayout(
    name="wear",
    channel_names=tuple(
        f"{limb}_acc_{axis}"
        for limb in ("right_arm", "right_leg", "left_leg", "left_arm")
        for axis in "xyz"
    ),
    activity_names=(
        "jogging",
        "jogging (rotating arms)",
        "jogging (skipping)",
        "jogging (sidesteps)",
        "jogging (butt-kicks)",
        "stretching (triceps)",
        "stretching (lunging)",
        "stretching (shoulders)",
        "stretching (hamstrings)",
        "stretching (lumbar rotation)",
        "push-ups",
        "push-ups (complex)",
        "sit-ups",
        "sit-ups (complex)",
        "burpees",
        "lunges",
        "lunges (complex)",
        "bench-dips",
    ),
    sampling_rate=50.0,
    source=(
        "WEAR, Bock et al. IMWUT 2024, https://mariusbock.github.io/wear/ "
        "(inertial sbj_<i>.csv files)"
    ),
)

WETLAB = CsvLayout(
    name="wetlab",
    channel_names=("acc_x", "acc_y", "acc_z"),
    activity_names=(
        "cutting",
        "inverting",
        "peeling",
        "pestling",
        "pipetting",
        "pouring",
        "stirring",
        "transfer",
    ),
    sampling_rate=50.0,
    source=(
        "Wetlab, Scholl et al. UbiComp 2015, as per-subject sbj_<i>.csv files in the layout of "
        "Bock et al.'s code (github.com/mariusbock/leakage_har)"
    ),
)

LAYOUTS = {layout.name: layout for layout in (WEAR, WETLAB)}
SUBJECT_FILE = re.compile(r"sbj_(\d+)\.csv")


def subject_files(layout: CsvLayout, root: str | PathLike[str] | None) -> dict[int, Path]:
    """``{i: path}`` of the ``sbj_<i>.csv`` files in ``root`` (default :func:`default_data_dir`)."""
    folder = Path(root).expanduser() if root is not None else default_data_dir(layout.name)
    hint = (
        f"{layout.name} comes from {layout.source}; download it and pass root=<folder> or "
        f"place the files in {default_data_dir(layout.name)} ($FL_HAR_DATA/{layout.name})"
    )
    if not folder.is_dir():
        raise DataError(f"{layout.name}: data folder {folder} does not exist. {hint}")
    files: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        match = SUBJECT_FILE.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        subject = int(match.group(1))
        if subject in files:
            raise DataError(
                f"{layout.name}: {files[subject].name} and {path.name} in {folder} are both "
                f"subject {subject}"
            )
        files[subject] = path
    if not files:
        raise DataError(f"{layout.name}: no sbj_<i>.csv files in {folder}. {hint}")
    return dict(sorted(files.items()))


def load_published_csv(
    name: str,
    root: str | PathLike[str] | None = None,
    *,
    max_gap: int | None = DEFAULT_MAX_GAP,
    cache: bool = True,
    cache_dir: str | PathLike[str] | None = None,
) -> HARDataset:
    """WEAR or Wetlab from per-subject CSVs; ``max_gap`` is the gap-repair limit in samples.

    Parsed files are cached (``cache=True``) in ``cache_dir`` (default
    :func:`fl_har.data.paths.default_cache_dir`) under ``csv/``, keyed by the file's content, the
    parser version and ``max_gap``: later loads skip the CSV parsing (see :mod:`fl_har.data.cache`).
    """
    layout = LAYOUTS[name]
    if max_gap is not None and (
        isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0
    ):
        raise DataError(f"{name}: max_gap must be a non-negative int or None, got {max_gap!r}")
    folder = resolve_cache_dir(cache, cache_dir, name)
    key_parts = (f"parser-{PARSER_VERSION}", f"max_gap-{max_gap}", *layout.header,
                 "|", *layout.activity_names)
    recordings: dict[int, tuple[Recording, ...]] = {}
    for subject, path in subject_files(layout, root).items():
        parsed = cached_recordings(
            path,
            kind=layout.name,
            key_parts=key_parts,
            num_channels=len(layout.channel_names),
            num_classes=len(layout.class_names),
            cache_dir=folder,
            parse=lambda path=path: [read_subject_csv(path, layout, max_gap)],
        )
        recordings[subject] = tuple(parsed)
    return HARDataset(
        name=layout.name,
        class_names=layout.class_names,
        channel_names=layout.channel_names,
        sampling_rate=layout.sampling_rate,
        recordings=recordings,
    )


def resolve_cache_dir(
    cache: bool, cache_dir: str | PathLike[str] | None, name: str
) -> Path | None:
    """The cache folder to use (None = caching off), with the options checked."""
    if not isinstance(cache, bool):
        raise DataError(f"{name}: cache must be true or false, got {cache!r}")
    if not cache:
        return None
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
