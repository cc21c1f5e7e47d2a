"""Model checkpoints of a run: ``{"round": int, "state_dict": {...}}`` saved with ``torch.save``.

``checkpoint.pt`` holds the model after a finished round and ``checkpoint.prev.pt`` a copy of the
one before it; both load with ``weights_only=True``. The store writes them (before the tables and
``meta.json``); this module encodes, reads and rolls them back.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from fl_har.atomic import fsync_directory
from fl_har.results.layout import CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, ResultsError

# What torch.load raises for a truncated, foreign or non-weights file.
_CHECKPOINT_READ_ERRORS = (OSError, EOFError, KeyError, ValueError, RuntimeError,
                           pickle.UnpicklingError)


def read_checkpoint(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """(round, state_dict) of the checkpoint at ``path``; :class:`ResultsError` if unreadable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except _CHECKPOINT_READ_ERRORS as error:
        raise ResultsError(f"{path} is not a readable checkpoint: {error}") from None
    if (not isinstance(payload, dict) or set(payload) != {"round", "state_dict"}
            or not isinstance(payload["round"], int)
            or not isinstance(payload["state_dict"], dict)):
        raise ResultsError(f"{path}: expected {{'round': int, 'state_dict': dict}}")
    return payload["round"], payload["state_dict"]


def checkpoint_bytes(round_number: int, state: Mapping[str, torch.Tensor]) -> bytes:
    """The file content of a checkpoint of ``state`` (copied to CPU) after ``round_number``."""
    if not isinstance(state, Mapping):
        raise ResultsError(f"model_state = {type(state).__name__}: expected a dict of tensors")
    for key, tensor in state.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise ResultsError(f"model_state[{key!r}] = {type(tensor).__name__}: expected a tensor")
    payload = {"round": round_number,
               "state_dict": {key: tensor.detach().cpu().clone() for key, tensor in state.items()}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def discard_uncommitted_checkpoints(run_dir: Path, last_round: int) -> None:
    """Delete a checkpoint newer than ``last_round`` and restore the previous one in its place."""
    current = run_dir / CHECKPOINT_FILE
    previous = run_dir / PREVIOUS_CHECKPOINT_FILE
    if current.exists() and read_checkpoint(current)[0] > last_round:
        current.unlink()
        if previous.exists():
            os.replace(previous, current)
        fsync_directory(run_dir)
