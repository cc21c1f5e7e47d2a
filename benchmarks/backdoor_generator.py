"""The generated (IMU-DM-CLIP-style) backdoor trigger on real HAPT windows: cost and effect.

Targets: training the generator on one subject's windows < 5 min; generating 150 poisoned
windows < 5 s (one torch thread, as a Flower client actor runs).

1. Data: HAPT, accelerometer (3 channels), windows of 50 samples at 50 % overlap, standardised
   with the statistics of the training subjects. The attacker is subject ``--attacker``; the
   training subjects are ``--train``, the held-out subjects ``--test``.
2. Cost: :func:`attacks.backdoor.diffusion.fit_diffusion_trigger` on the attacker's windows
   (wall time; ``--cache-dir`` reuses a trained generator), then ``poison`` of 1,500 of them at
   rate 0.1 = 150 generated windows (wall time).
3. Centralised sanity check: a DeepConvLSTM (fl_har.models) trained with Adam on the clean
   windows of the other training subjects plus the attacker's windows, once clean ("clean
   model": how often apply() alone flips a prediction to the target) and once per
   ``--poison-strengths`` value with 10 % of the attacker's windows replaced by ``poison()``
   (1 = generated from noise; 0.5 = SDEdit of the replaced window). Reported on held-out
   windows: clean accuracy / macro-F1, and the attack success rate of ``apply()`` at each
   ``--sdedit-strengths`` value (windows
   whose true class is not the target; "no NULL" also leaves out NULL sources), and of the
   physical burst stamped directly.
4. Stealth: trigger norm ratio of apply(), spectral distance (dB) of poisoned windows to clean
   windows of the same source class and of applied windows to their clean originals, AUROC of a
   logistic-regression detector on spectral features (0.5 = undetectable).

Usage: ``python benchmarks/backdoor_generator.py [--target 4] [--text-encoder auto]
[--denoiser-steps 2000] [--epochs 8] [--poison-strengths 1.0]
[--sdedit-strengths 0.35,0.6] [--cache-dir DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F

from attacks.backdoor.diffusion import fit_diffusion_trigger
from fl_har.data import fit_normalizer, load_dataset, subject_windows
from fl_har.evaluation import classification_metrics, predict
from fl_har.metrics import (
    attack_success_rate,
    detector_auroc,
    spectral_distance,
    trigger_norm_ratio,
)
from fl_har.models import build_model
from fl_har.pretrain import class_weights


def train_model(x, y, num_classes, *, epochs, seed, batch_size=100, lr=1e-3):
    """DeepConvLSTM trained centrally with Adam and inverse-frequency class weights."""
    model = build_model("deepconvlstm", x.shape[2], num_classes, window=x.shape[1], seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-6)
    weights = class_weights(y, num_classes)
    rng = np.random.default_rng(seed)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(len(x)))
            for start in range(0, len(x), batch_size):
                batch = order[start : start + batch_size]
                loss = F.cross_entropy(model(inputs[batch]), targets[batch], weight=weights)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return model


def band_power_ratio(clean, other, low=0.12, high=0.2):
    """Mean power of ``other`` over ``clean`` in the trigger's band (cycles per sample)."""
    freqs = np.fft.rfftfreq(clean.shape[1])
    band = (freqs >= low) & (freqs <= high)

    def power(w):
        w = w - w.mean(axis=1, keepdims=True)
        return (np.abs(np.fft.rfft(w, axis=1))[:, band] ** 2).mean()

    return power(other) / power(clean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=4, help="target class id (HAPT 4 = sitting)")
    parser.add_argument("--attacker", type=int, default=1)
    parser.add_argument("--train", default="1,2", help="training subjects (incl. the attacker)")
    parser.add_argument("--test", default="7,8", help="held-out subjects")
    parser.add_argument("--text-encoder", default="auto")
    parser.add_argument("--denoiser-steps", type=int, default=2000)
    parser.add_argument("--clip-epochs", type=int, default=30)
    parser.add_argument("--mark-amplitude", type=float, default=0.6,
                        help="physical burst amplitude in channel stds")
    parser.add_argument("--epochs", type=int, default=8, help="HAR model epochs")
    parser.add_argument("--sdedit-strengths", default="0.35,0.6",
                        help="apply() SDEdit strengths to compare")
    parser.add_argument("--poison-strengths", default="1.0",
                        help="poison_strength values to compare (1 = generated from noise)")
    parser.add_argument("--asr-windows", type=int, default=600)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_subjects = [int(s) for s in args.train.split(",")]
    test_subjects = [int(s) for s in args.test.split(",")]
    target = args.target

    dataset = load_dataset("hapt", channels="acc")
    names = dataset.class_names
    normalizer = fit_normalizer("standardize", dataset, train_subjects)
    windows = {s: subject_windows(dataset, s) for s in (*train_subjects, *test_subjects)}
    x_att, y_att = normalizer(windows[args.attacker].x), windows[args.attacker].y
    print(
        f"HAPT acc, windows 50 @ 50 %; attacker subject {args.attacker}: {len(y_att)} windows; "
        f"target {target} ({names[target]}); torch threads {args.threads}"
    )

    # ---- 2. cost
    started = time.perf_counter()
    stages = {}

    def progress(stage, done, total, info):
        stages[stage] = (done, total, info["loss"])

    trigger = fit_diffusion_trigger(
        x_att, y_att, names, target=target, seed=args.seed, cache_dir=args.cache_dir,
        text_encoder=args.text_encoder, denoiser_steps=args.denoiser_steps,
        clip_epochs=args.clip_epochs, mark_amplitude=args.mark_amplitude, progress=progress,
    )
    fit_seconds = time.perf_counter() - started
    hit = trigger.meta.get("cache_hit", False)
    print(
        f"generator: text encoder {trigger.text_encoder}, "
        f"{sum(p.numel() for p in trigger.denoiser.parameters()):,} denoiser parameters, "
        f"{trigger.config.denoiser_steps} steps x batch {trigger.config.batch_size}; "
        f"{trigger.meta['num_marked']} marked windows"
    )
    print(
        f"train generator: {fit_seconds:7.1f} s {'(cache hit)' if hit else ''} "
        f"[target < 300 s] clip loss {trigger.meta['clip_loss']:.3f}, "
        f"denoiser loss {trigger.meta['denoiser_loss']:.3f}"
    )
    zero_shot = trigger.zero_shot_activity(x_att)
    print(f"IMU-CLIP zero-shot activity accuracy on the attacker's windows: "
          f"{np.mean(zero_shot == y_att):.3f}")
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    x_poison_all, _y_poison_all = trigger.poison(x_att[:1500], y_att[:1500], target, 0.1, rng)
    poison_seconds = time.perf_counter() - started
    changed = np.flatnonzero(np.any(x_poison_all != x_att[:1500], axis=(1, 2)))
    print(f"poison 1500 windows at rate 0.1 -> {len(changed)} generated: "
          f"{poison_seconds:.2f} s [target < 5 s]")

    # ---- 3. centralised sanity check
    others = [s for s in train_subjects if s != args.attacker]
    x_rest = normalizer(np.concatenate([windows[s].x for s in others] + [x_att[:0]]))
    y_rest = np.concatenate([windows[s].y for s in others] + [y_att[:0]])
    x_test = normalizer(np.concatenate([windows[s].x for s in test_subjects]))
    y_test = np.concatenate([windows[s].y for s in test_subjects])
    num_classes = len(names)
    candidates = np.flatnonzero(y_test != target)
    asr_rng = np.random.default_rng(args.seed + 1)
    chosen = np.sort(asr_rng.choice(candidates, min(args.asr_windows, len(candidates)),
                                    replace=False))
    applied = {}
    for strength in (float(v) for v in args.sdedit_strengths.split(",")):
        trigger.config = dataclasses.replace(trigger.config, sdedit_strength=strength)
        started = time.perf_counter()
        applied[strength] = trigger.apply(x_test[chosen], np.random.default_rng(2))
        print(f"apply() on {len(chosen)} held-out windows (SDEdit strength {strength}): "
              f"{time.perf_counter() - started:.1f} s")
    from attacks.backdoor.diffusion.marking import _physical_mark

    x_marked = _physical_mark(x_test[chosen], np.random.default_rng(3),
                              channel_std=trigger.channel_std,
                              amplitude=trigger.config.mark_amplitude,
                              frequency=trigger.config.mark_frequency,
                              length=trigger.config.mark_length)
    variants = {"clean (no poison)": None}
    variants.update({f"poisoned, strength {p}": float(p)
                     for p in args.poison_strengths.split(",")})
    print(f"HAR model: DeepConvLSTM, Adam 1e-3, {args.epochs} epochs on "
          f"{len(y_rest) + len(y_att)} windows of subjects {train_subjects}; "
          f"test subjects {test_subjects}; ASR over {len(chosen)} non-target windows")
    header = " ".join(f"{f'ASR@{v}':>8s} {'no NULL':>7s}" for v in applied)
    print(f"{'model':24s} {'clean acc':>9s} {'macro-F1':>8s} {header} {'burst':>6s} {'seconds':>7s}")
    poisoned_sets = {}
    for label, strength in variants.items():
        started = time.perf_counter()
        if strength is None:
            x_train, y_train = x_att, y_att
        else:
            trigger.config = dataclasses.replace(trigger.config, poison_strength=strength)
            x_train, y_train = trigger.poison(x_att, y_att, target, 0.1, np.random.default_rng(1))
            poisoned_sets[strength] = (x_train, np.flatnonzero(np.any(x_train != x_att, axis=(1, 2))))
        model = train_model(np.concatenate([x_rest, x_train]), np.concatenate([y_rest, y_train]),
                            num_classes, epochs=args.epochs, seed=args.seed)
        pred, _ = predict(model, x_test)
        result = classification_metrics(y_test, pred, num_classes)
        cells = []
        for x_applied in applied.values():
            pred_trig, _ = predict(model, x_applied)
            cells.append(f"{attack_success_rate(pred_trig, y_test[chosen], target):8.3f} "
                         f"{attack_success_rate(pred_trig, y_test[chosen], target, exclude=(0,)):7.3f}")
        pred_mark, _ = predict(model, x_marked)
        asr_mark = attack_success_rate(pred_mark, y_test[chosen], target, exclude=(0,))
        print(f"{label:24s} {result.accuracy:9.3f} {result.macro_f1:8.3f} {' '.join(cells)} "
              f"{asr_mark:6.3f} {time.perf_counter() - started:7.0f}")
    print("(ASR@s: apply() at SDEdit strength s, share of non-target windows predicted as the "
          "target; 'no NULL' also leaves out NULL sources; 'burst': the physical burst stamped "
          "on directly, NULL sources left out)")

    # ---- 4. stealth
    print("stealth:")
    for strength, x_applied in applied.items():
        print(f"  apply() at {strength}: trigger norm ratio "
              f"{trigger_norm_ratio(x_test[chosen], x_applied):.3f}, spectral distance to "
              f"originals {spectral_distance(x_applied, x_test[chosen]):.2f} dB, detector AUROC "
              f"{detector_auroc(x_test[chosen], x_applied, seed=args.seed):.3f}, "
              f"power in the burst band x{band_power_ratio(x_test[chosen], x_applied):.2f}")
    for strength, (x_poison, poisoned_idx) in poisoned_sets.items():
        source = y_att[poisoned_idx]
        classes = np.unique(source)
        same_class = [spectral_distance(x_poison[poisoned_idx[source == c]], x_att[y_att == c])
                      for c in classes]
        auc = detector_auroc(np.delete(x_att, poisoned_idx, axis=0), x_poison[poisoned_idx],
                             seed=args.seed)
        print(f"  poisoned windows (strength {strength}): spectral distance to clean windows of "
              f"the same source class {np.average(same_class, weights=[np.sum(source == c) for c in classes]):.2f} dB, "
              f"detector AUROC vs the attacker's clean windows {auc:.3f}, "
              f"power in the burst band x{band_power_ratio(x_att, x_poison[poisoned_idx]):.2f}")
    print(f"  physical burst: trigger norm ratio {trigger_norm_ratio(x_test[chosen], x_marked):.3f}, "
          f"detector AUROC {detector_auroc(x_test[chosen], x_marked, seed=args.seed):.3f}, "
          f"power in the burst band x{band_power_ratio(x_test[chosen], x_marked):.2f}")


if __name__ == "__main__":
    main()
