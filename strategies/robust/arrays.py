"""Between Flower's ArrayRecords and the flat update vectors the robust rules work on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from flwr.app import Array, ArrayRecord

# State-dict entries that are statistics, not trainable parameters (BatchNorm): they are left out
# of the update vectors the rules compare and clip, as FLAME prescribes.
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")

State = dict[str, np.ndarray]


def to_numpy(record: ArrayRecord) -> State:
    """The record's arrays by key, copied (the record is left intact)."""
    return {key: np.array(value.numpy(), copy=True) for key, value in record.items()}


def is_buffer(key: str, value: np.ndarray) -> bool:
    """Whether a state entry is a buffer (integer, or a normalisation statistic)."""
    return not np.issubdtype(value.dtype, np.floating) or key.endswith(BUFFER_SUFFIXES)


def parameter_keys(state: Mapping[str, np.ndarray]) -> list[str]:
    """Keys of the trainable parameters, in the state's order."""
    return [key for key, value in state.items() if not is_buffer(key, value)]


def flatten(state: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """The arrays under ``keys``, raveled and concatenated in that order (float64)."""
    return np.concatenate([np.asarray(state[key], dtype=np.float64).ravel() for key in keys])


def record_vector(record: ArrayRecord, keys: Sequence[str]) -> np.ndarray:
    """:func:`flatten` of an ArrayRecord, without copying it first."""
    return np.concatenate([np.asarray(record[key].numpy(), dtype=np.float64).ravel()
                           for key in keys])


def apply_update(
    sent: Mapping[str, np.ndarray],
    keys: Sequence[str],
    update: np.ndarray,
    buffers: Sequence[Mapping[str, np.ndarray]] = (),
) -> ArrayRecord:
    """The sent weights moved by a flat ``update`` over ``keys``; every other entry (buffers)
    is the mean over ``buffers`` (the returned states of the admitted clients), or the sent
    value without any; dtypes and key order as sent."""
    out: dict[str, Array] = {}
    offset = 0
    moved = set(keys)
    for key, value in sent.items():
        if key in moved:
            size = value.size
            part = update[offset:offset + size].reshape(value.shape)
            offset += size
            out[key] = Array(np.asarray(value + part, dtype=value.dtype))
        elif buffers:
            mean = np.mean([np.asarray(b[key], dtype=np.float64) for b in buffers], axis=0)
            if not np.issubdtype(value.dtype, np.floating):
                mean = np.rint(mean)
            out[key] = Array(np.asarray(mean, dtype=value.dtype).reshape(value.shape))
        else:
            out[key] = Array(np.array(value, copy=True))
    if offset != update.size:
        raise ValueError(f"update has {update.size} values, the parameters {offset}")
    return ArrayRecord(out)
