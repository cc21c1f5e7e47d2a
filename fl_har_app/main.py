"""Argument parsing and dispatch for ``fl-har``; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fl_har_app.console import console, fail

DESCRIPTION = """\
fl-har: a federated-learning simulator for wearable human activity recognition (HAR).
Flower clients (one per study participant) train DeepConvLSTM or TinyHAR on their own IMU
recordings; an honest-but-curious server runs label-reconstruction attacks on every update and
records how much each client leaks (LeAcc, LnAcc, ClassAcc)."""

EPILOG = """\
examples:
  fl-har data info hapt                    inspect the real UCI HAPT data
  fl-har data check my-data/               validate your own data (dataset "custom")
  fl-har run                               the default experiment (HAPT, DeepConvLSTM, 30 clients)
  fl-har run --config experiments/fedavg/s2.toml --set run.rounds=3
  fl-har sweep experiments/paper/sampling.toml   a grid of runs, resumable
  fl-har report results/paper-sampling     Table 1, figures and findings from run directories
  fl-har config show                       every config key with its default
  fl-har attacks                           the label-reconstruction attacks available"""


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="experiment config (TOML); defaults if omitted"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set client.batch_size=50 (repeatable)",
    )


def add_ray_address_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray-address", metavar="ADDR", default=None,
        help="attach to a running Ray cluster (IP:PORT of `ray start --head`, or auto) instead "
        "of starting Ray; default: $RAY_ADDRESS if set",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fl-har",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from fl_har_app import data_cmd

    data = commands.add_parser(
        "data",
        help="inspect HAR datasets, check your own data",
        description=data_cmd.DATA_DESCRIPTION,
        epilog=data_cmd.DATA_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data_commands.add_parser("list", help="the datasets fl-har can load")
    info = data_commands.add_parser(
        "info",
        help="subjects, classes, windows and NULL share of a dataset",
        description="Print subjects, recordings, class shares, windows per subject and the NULL "
        "share of a dataset. The first HAPT call decodes the installed data (a few seconds); "
        "later calls read the cache.",
    )
    info.add_argument("name", help="dataset name: hapt, wear, wetlab, synthetic or custom")
    info.add_argument("--root", help="data folder (wear, wetlab: sbj_<i>.csv files; custom)")
    info.add_argument(
        "--channels", default="acc", choices=["acc", "acc+gyro"], help="HAPT sensor channels"
    )
    info.add_argument("--window", type=int, default=50, help="window length in samples")
    info.add_argument("--overlap", type=float, default=0.5, help="window overlap in [0, 1)")
    data_cmd.add_check_parser(data_commands)

    commands.add_parser(
        "attacks",
        help="list the label-reconstruction attacks",
        description="List every attack name accepted in attacks.names, with a description.",
    )

    config = commands.add_parser(
        "config", help="show experiment configs", description="Show or check experiment configs."
    )
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config_commands.add_parser("show", help="print the default config (every key) as TOML")
    check = config_commands.add_parser("check", help="validate a config file and print it resolved")
    _add_config_args(check)

    run = commands.add_parser(
        "run",
        help="run a federated experiment with the curious server",
        description="Run a federated experiment on Flower's simulation engine (Ray): every "
        "client subject is a simulated node; the server attacks every update and writes results "
        "to OUT/<run.name> as rounds finish. Exit status 0 only if the run finished and no "
        "client failed (unless run.allow_client_failures); Ctrl-C stops within seconds with "
        "status 130 (SIGTERM: 143), keeping the finished rounds for --resume.",
    )
    _add_config_args(run)
    run.add_argument("--out", metavar="DIR", help="parent folder of run directories (run.out)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last round"
    )
    mode.add_argument(
        "--overwrite", action="store_true", help="replace an existing run directory"
    )
    run.add_argument("--verbose", "-v", action="store_true", help="show Flower's and Ray's logs")
    add_ray_address_arg(run)
    run.add_argument("--inject-failure", default="", metavar="PARTITION:ROUND", help=argparse.SUPPRESS)

    deploy = commands.add_parser(
        "deploy",
        help="run an experiment on Flower's deployment engine (SuperLink + SuperNodes, loopback)",
        description="Start one flower-superlink and one flower-supernode per client subject on "
        "this machine, submit the experiment with `flwr run`, and stop everything when it ends. "
        "The same ServerApp and ClientApp as `fl-har run`; the same config and seed give the "
        "same attack rows. --tls generates a CA and a server certificate for 127.0.0.1 and "
        "runs everything over HTTPS. Needs the source checkout (pip install -e .).",
    )
    _add_config_args(deploy)
    deploy.add_argument("--out", metavar="DIR", help="parent folder of run directories (run.out)")
    deploy.add_argument("--tls", action="store_true", help="HTTPS with generated certificates")
    deploy.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    deploy.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                        help="stop the deployment if the run takes longer (default 3600)")

    from fl_har_app import sweep_cmd

    sweep_cmd.add_parser(commands)

    from fl_har_app import report_cmd

    report_cmd.add_parser(commands)

    pretrain = commands.add_parser(
        "pretrain",
        help="train a model centrally on the server's subjects (for 'trained' experiments)",
        description="Centralised training on data.server_subjects (Adam, weight decay 1e-6, "
        "class-weighted loss, as in Bock et al.), evaluated on data.eval_subjects. The checkpoint "
        "is used with --set model.init=PATH.",
    )
    _add_config_args(pretrain)
    pretrain.add_argument("--out", "-o", required=True, metavar="FILE", help="checkpoint path (.pt)")
    pretrain.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    pretrain.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    pretrain.add_argument("--batch-size", type=int, default=100, help="mini-batch size")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "data":
            from fl_har_app import data_cmd

            if args.data_command == "list":
                return data_cmd.list_datasets()
            if args.data_command == "info":
                return data_cmd.info(args)
            if args.data_command == "check":
                return data_cmd.check(args)
            parser.parse_args(["data", "--help"])
        if args.command == "deploy":
            from fl_har_app import run_cmd

            return run_cmd.deploy_run(args)
        if args.command == "attacks":
            from fl_har_app import run_cmd

            return run_cmd.list_attacks()
        if args.command == "config":
            from fl_har_app import run_cmd

            if args.config_command == "show":
                return run_cmd.show_defaults()
            if args.config_command == "check":
                return run_cmd.check_config(args)
            parser.parse_args(["config", "--help"])
        if args.command == "run":
            from fl_har_app import run_cmd

            return run_cmd.run(args)
        if args.command == "sweep":
            from fl_har_app import sweep_cmd

            return sweep_cmd.sweep(args)
        if args.command == "report":
            from fl_har_app import report_cmd

            return report_cmd.report(args)
        if args.command == "pretrain":
            from fl_har_app import pretrain_cmd

            return pretrain_cmd.pretrain(args)
    except ValueError as exc:
        # fl-har's input errors (ConfigError, DataError, ResultsError, ...) subclass ValueError
        # and carry a message naming the file, key or value; anything else is a bug: traceback.
        if not type(exc).__module__.startswith(("fl_har", "attacks")):
            raise
        return fail(str(exc))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
