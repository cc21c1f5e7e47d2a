"""Client units: a population larger than the subjects.

A federated deployment has one participant per device, and a device may hold less than a person's
whole study: one recording, or one session of a few minutes. ``data.client_unit`` chooses:

- ``"subject"``: one client per subject (the paper's setting; the dataset is used as loaded);
- ``"recording"``: one client per continuous recording of a subject (HAPT: 61 clients of 30 people);
- ``"session"``: one client per consecutive ``session_minutes`` of each recording. A recording's
  tail shorter than half a session joins the session before it (so no client is a scrap); a
  recording shorter than half a session is one session of its own.

The split returns an ordinary :class:`~fl_har.data.dataset.HARDataset` whose "subjects" are the
units, so everything downstream (windows, samplers, the simulation's partitions) is unchanged. Unit
ids are readable: ``subject * UNIT_ID_BASE + k`` with ``k = 1, 2, ...`` the unit's number within
its subject (subject 3's second session is 3002). Subjects in ``keep_whole`` (the server's and the
held-out subjects) stay whole under their own ids. Units are views of the loaded arrays: splitting
copies no sensor data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fl_har.data.dataset import HARDataset, Recording
from fl_har.data.errors import DataError

CLIENT_UNITS = ("subject", "recording", "session")
UNIT_ID_BASE = 1000


@dataclass(frozen=True)
class UnitInfo:
    """Where a client unit's data comes from: ``subject``, its ``recording`` index within that
    subject, and the unit's samples ``[start, stop)`` of that recording (for a whole subject:
    ``recording = -1`` and the whole of every recording, ``stop`` = its total samples)."""

    subject: int
    recording: int
    start: int
    stop: int


@dataclass(frozen=True)
class ClientUnits:
    """The unit-level dataset and, for each of its ids, the unit's origin."""

    dataset: HARDataset
    origin: Mapping[int, UnitInfo]

    def owner(self, unit: int) -> int:
        """The subject a unit belongs to (a whole subject owns itself)."""
        return self.origin[unit].subject

    def units_of(self, subjects: Iterable[int]) -> tuple[int, ...]:
        """Every unit of ``subjects``, sorted by id."""
        wanted = set(subjects)
        return tuple(u for u in self.dataset.subjects if self.origin[u].subject in wanted)


def _session_bounds(num_samples: int, session: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` of ``session`` samples; a tail under half a session joins
    the previous session (or stands alone when it is all there is)."""
    bounds = [(start, min(start + session, num_samples)) for start in range(0, num_samples, session)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < session / 2:
        tail_stop = bounds.pop()[1]
        bounds[-1] = (bounds[-1][0], tail_stop)
    return bounds


def split_into_units(
    dataset: HARDataset,
    unit: str,
    *,
    keep_whole: Iterable[int] = (),
    session_minutes: float = 0.0,
) -> ClientUnits:
    """Split every subject not in ``keep_whole`` into client units (see the module docstring).

    Raises :class:`DataError` for an unknown ``unit``, a non-positive ``session_minutes`` with
    ``unit = "session"``, a subject with ``UNIT_ID_BASE`` units or more, or a unit id that equals a
    whole subject's id (possible only for subject 0, whose units are 1, 2, ...).
    """
    if unit not in CLIENT_UNITS:
        raise DataError(f"client unit {unit!r}: expected one of {', '.join(CLIENT_UNITS)}")
    whole = {int(s) for s in keep_whole}
    if unit == "subject":
        return ClientUnits(dataset, MappingProxyType({
            s: UnitInfo(s, -1, 0, sum(r.num_samples for r in dataset.recordings[s]))
            for s in dataset.subjects
        }))
    session = 0
    if unit == "session":
        if not session_minutes > 0:
            raise DataError(
                f"client unit 'session' needs session_minutes > 0, got {session_minutes}")
        session = max(1, round(session_minutes * 60.0 * dataset.sampling_rate))
    recordings: dict[int, tuple[Recording, ...]] = {}
    origin: dict[int, UnitInfo] = {}
    for subject in dataset.subjects:
        recs = dataset.recordings[subject]
        if subject in whole:
            _claim(origin, subject, UnitInfo(subject, -1, 0, sum(r.num_samples for r in recs)))
            recordings[subject] = recs
            continue
        pieces = [
            (index, start, stop)
            for index, rec in enumerate(recs)
            for start, stop in (_session_bounds(rec.num_samples, session) if session
                                else [(0, rec.num_samples)])
            if stop > start
        ]
        if len(pieces) >= UNIT_ID_BASE:
            raise DataError(
                f"dataset {dataset.name!r}, subject {subject}: {len(pieces)} {unit}s, at most "
                f"{UNIT_ID_BASE - 1} per subject (ids are subject * {UNIT_ID_BASE} + k); "
                "choose longer sessions"
            )
        for k, (index, start, stop) in enumerate(pieces, start=1):
            unit_id = subject * UNIT_ID_BASE + k
            rec = recs[index]
            _claim(origin, unit_id, UnitInfo(subject, index, start, stop))
            # Row slices of C-contiguous arrays are contiguous views: no copy.
            recordings[unit_id] = (Recording(rec.signals[start:stop], rec.labels[start:stop]),)
    return ClientUnits(
        HARDataset(
            name=dataset.name,
            class_names=dataset.class_names,
            channel_names=dataset.channel_names,
            sampling_rate=dataset.sampling_rate,
            recordings=recordings,
        ),
        MappingProxyType(origin),
    )


def _claim(origin: dict[int, UnitInfo], unit_id: int, info: UnitInfo) -> None:
    """Record a unit id, refusing one that is already taken (only subject 0's units, ids 1, 2,
    ..., can meet a whole subject's id)."""
    if unit_id in origin:
        taken = origin[unit_id]
        raise DataError(
            f"client unit id {unit_id} of subject {info.subject} is also the id of "
            f"{'subject' if taken.recording == -1 else 'a unit of subject'} {taken.subject}; "
            "leave that subject out of data.clients, or use data.client_unit = \"subject\""
        )
    origin[unit_id] = info
