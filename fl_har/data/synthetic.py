"""A small synthetic HAR dataset with the properties that matter for label leakage (tests, demos).

Every subject's stream alternates NULL segments (100-400 samples) with activity segments
(75-300 samples), so NULL is the majority class (about 57 % of samples). Activity classes are
drawn with long-tailed (Zipf, 1/k) frequencies, perturbed per subject, so class 1 is common and the
last class rare, and some subjects may lack a rare class. Each class has its own per-channel
offset, amplitude and oscillation frequency, shared by all subjects (so a model can learn it), plus
a small per-subject offset and Gaussian noise. Not a model of any real sensor.

All randomness comes from ``seed``: class parameters from stream ``SYNTHETIC_CLASSES``, subject
``s``'s recordings from stream ``(SYNTHETIC_SUBJECT, s)`` (see :mod:`fl_har.seeding`), so a subject's data does not depend on how
many subjects are generated.
"""

from __future__ import annotations

import numpy as np

from fl_har.data.dataset import NULL_CLASS_NAME, HARDataset, Recording
from fl_har.data.errors import DataError
from fl_har.seeding import Stream, stream_rng

SAMPLING_RATE_HZ = 50.0
NULL_SEGMENT = (100, 400)  # samples, inclusive bounds
ACTIVITY_SEGMENT = (75, 300)
NOISE_STD = 0.3


def make_synthetic(
    num_subjects: int = 4,
    num_classes: int = 6,
    num_channels: int = 3,
    samples_per_subject: int = 6000,
    seed: int = 0,
    recordings_per_subject: int = 2,
) -> HARDataset:
    """Subjects ``1..num_subjects``, each with ``recordings_per_subject`` recordings that together
    hold ``samples_per_subject`` samples; ``num_classes`` includes NULL."""
    _check_int("num_subjects", num_subjects, 1)
    _check_int("num_classes", num_classes, 2)
    _check_int("num_channels", num_channels, 1)
    _check_int("recordings_per_subject", recordings_per_subject, 1)
    _check_int("samples_per_subject", samples_per_subject, recordings_per_subject)
    _check_int("seed", seed, 0)
    params = _class_parameters(stream_rng(seed, Stream.SYNTHETIC_CLASSES), num_classes, num_channels)
    lengths = np.full(recordings_per_subject, samples_per_subject // recordings_per_subject)
    lengths[-1] += samples_per_subject - lengths.sum()
    recordings = {}
    for subject in range(1, num_subjects + 1):
        rng = stream_rng(seed, Stream.SYNTHETIC_SUBJECT, subject)
        class_weights = _subject_class_weights(rng, num_classes)
        subject_offset = rng.normal(0.0, 0.1, size=num_channels)
        recordings[subject] = tuple(
            _recording(rng, int(length), class_weights, params, subject_offset)
            for length in lengths
        )
    return HARDataset(
        name="synthetic",
        class_names=(NULL_CLASS_NAME, *(f"activity_{k}" for k in range(1, num_classes))),
        channel_names=tuple(f"ch_{c}" for c in range(num_channels)),
        sampling_rate=SAMPLING_RATE_HZ,
        recordings=recordings,
    )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DataError(f"synthetic: {name} must be an integer >= {minimum}, got {value!r}")


def _class_parameters(
    rng: np.random.Generator, num_classes: int, num_channels: int
) -> dict[str, np.ndarray]:
    offset = rng.normal(0.0, 1.0, size=(num_classes, num_channels))
    amplitude = rng.uniform(0.5, 2.0, size=(num_classes, num_channels))
    frequency = rng.uniform(0.5, 4.0, size=num_classes)  # Hz
    offset[0] *= 0.3  # NULL: near rest, little motion
    amplitude[0] = 0.2
    return {"offset": offset, "amplitude": amplitude, "frequency": frequency}


def _subject_class_weights(rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Activity-class probabilities (index 0 unused): Zipf 1/k times a per-subject factor."""
    zipf = 1.0 / np.arange(1, num_classes)
    weights = zipf * rng.lognormal(0.0, 0.5, size=num_classes - 1)
    return np.concatenate([[0.0], weights / weights.sum()])


def _segment_labels(rng: np.random.Generator, length: int, class_weights: np.ndarray) -> np.ndarray:
    """Alternating NULL / activity segments, starting with NULL, cut to ``length``."""
    labels = np.empty(length, dtype=np.int64)
    position, is_null = 0, True
    while position < length:
        low, high = NULL_SEGMENT if is_null else ACTIVITY_SEGMENT
        size = int(rng.integers(low, high + 1))
        label = 0 if is_null else int(rng.choice(len(class_weights), p=class_weights))
        labels[position : position + size] = label
        position += size
        is_null = not is_null
    return labels


def _recording(
    rng: np.random.Generator,
    length: int,
    class_weights: np.ndarray,
    params: dict[str, np.ndarray],
    subject_offset: np.ndarray,
) -> Recording:
    labels = _segment_labels(rng, length, class_weights)
    num_channels = params["offset"].shape[1]
    time = np.arange(length) / SAMPLING_RATE_HZ
    phase = rng.uniform(0.0, 2 * np.pi, size=num_channels)
    wave = np.sin(2 * np.pi * params["frequency"][labels][:, None] * time[:, None] + phase)
    signals = (
        params["offset"][labels]
        + subject_offset
        + params["amplitude"][labels] * wave
        + rng.normal(0.0, NOISE_STD, size=(length, num_channels))
    )
    return Recording(signals=signals.astype(np.float32), labels=labels)
