"""``fl-har pretrain``: the server's centralised training, for experiments on trained models."""

from __future__ import annotations

import argparse
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fl_har.config import ConfigError, load_config
from fl_har_app.console import console, fail


def pretrain(args: argparse.Namespace) -> int:
    from fl_har.federation import dataset_for
    from fl_har.pretrain import PretrainConfig, save_checkpoint
    from fl_har.pretrain import pretrain as run_pretrain

    config = load_config(args.config, args.overrides)
    data = config.data
    if not data.server_subjects:
        raise ConfigError(
            "pretraining uses the server's subjects: set data.server_subjects (e.g. "
            "--set data.server_subjects=1-20) and preferably data.eval_subjects for a held-out score"
        )
    if args.epochs < 1 or args.lr <= 0 or args.batch_size < 1:
        return fail("--epochs and --batch-size must be >= 1 and --lr > 0")
    with console.status("loading data ..."):
        dataset = dataset_for(config)
    settings = PretrainConfig(
        model=config.model.name,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=config.run.seed,
        head_bias=config.model.head_bias,
        window=data.window,
        overlap=data.overlap,
        normalization=data.normalization,
    )
    console.print(
        f"pre-training {config.model.name} on {len(data.server_subjects)} subjects of "
        f"{dataset.name}, evaluating on {len(data.eval_subjects)} held-out subjects; "
        f"{args.epochs} epochs, Adam lr {args.lr:g}"
    )
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]epochs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console,
    ) as bar:
        task = bar.add_task("", total=args.epochs)

        def progress(epoch: int, epochs: int, info: dict) -> None:
            text = f"loss {info.get('loss', float('nan')):.3f}"
            if info.get("eval_macro_f1") is not None:
                text += f", held-out macro-F1 {info['eval_macro_f1']:.3f}"
            bar.update(task, completed=epoch, description=text)

        result = run_pretrain(dataset, data.server_subjects, data.eval_subjects, settings, progress)
    save_checkpoint(args.out, result)
    f1 = result.meta.get("eval_macro_f1")
    score = f"held-out macro-F1 {f1:.3f}" if f1 is not None else "no held-out subjects"
    console.print(
        f"[green]saved[/] {args.out} ({score}; {time.perf_counter() - started:.0f} s). "
        f"Use it with --set model.init={args.out}"
    )
    return 0
