"""``fl-har deploy``: the same ServerApp and ClientApp on Flower's deployment engine, on loopback.

One ``flower-superlink`` and one ``flower-supernode`` per client subject (``--node-config
"partition-id=i num-partitions=n"``), then ``flwr run <project> <connection>`` submits the app;
every process is stopped when the run ends (or fails, or is interrupted). With ``tls=True`` a
certificate authority and a server certificate for 127.0.0.1 are generated for the run, the
SuperLink serves HTTPS and the SuperNodes and ``flwr`` verify it against that CA. This is the
multi-machine recipe of the README exercised on one host: on real hosts the SuperNodes run on the
participants' machines and point ``--superlink`` at the SuperLink's address.

The ServerApp reads the resolved experiment config from a file (run-config key
``fl-har.config-file``) and writes its results to ``fl-har.run-dir``, so a deployment run leaves
the same results folder as ``fl-har run`` and, with the same config and seed, the same attack rows.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fl_har.config import ExperimentConfig

# Environment for every Flower process: a private FLWR_HOME, no dependency installation into a
# fresh runtime environment (it would download torch), no telemetry or update checks.
QUIET_FLOWER = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
}
CONNECTION = "fl-har-deploy"


class DeployError(RuntimeError):
    """The deployment could not start or the run did not finish; the message says where."""


@dataclass(frozen=True)
class TLSFiles:
    ca_certificate: Path
    server_certificate: Path
    server_key: Path


def project_root() -> Path:
    """The source checkout holding ``[tool.flwr.app]`` (``flwr run`` packages it)."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or "[tool.flwr.app" not in pyproject.read_text("utf-8"):
        raise DeployError(
            f"{root} is not an fl-har source checkout with [tool.flwr.app] in pyproject.toml: "
            "the deployment engine runs the app from the checkout (pip install -e .)"
        )
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_tls_files(folder: Path) -> TLSFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost, valid for 2 days."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fl-har test CA")])
    ca_cert = certificate("fl-har test CA", ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server_cert = certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False, san=san)

    files = TLSFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pem = serialization.Encoding.PEM
    files.ca_certificate.write_bytes(ca_cert.public_bytes(pem))
    files.server_certificate.write_bytes(server_cert.public_bytes(pem))
    files.server_key.write_bytes(server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeployError(f"{what} exited with code {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise DeployError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {log}")


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process group, then SIGKILL what is left after a grace period."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def deploy(
    config: ExperimentConfig,
    run_dir: Path,
    num_partitions: int,
    *,
    tls: bool = False,
    timeout: float = 1800.0,
    echo=print,
) -> str:
    """Run ``config`` on a SuperLink and ``num_partitions`` SuperNodes on loopback.

    Parameters
    ----------
    config : ExperimentConfig
        A validated config with its attack options resolved.
    run_dir : Path
        The results folder (replaced if it exists: the caller decides). Logs, certificates and
        Flower's state go to ``.deploy-<name>`` beside it.
    num_partitions : int
        SuperNodes to start: one per client subject of the dataset.
    tls : bool
        Serve the SuperLink over HTTPS with certificates generated for this run.
    timeout : float
        Seconds the whole run may take before it is stopped (a DeployError).

    Returns the run's final status from ``meta.json`` (``finished`` or ``failed``).
    """
    import tomli_w

    root = project_root()
    run_dir = run_dir.resolve()
    work = run_dir.parent / f".deploy-{run_dir.name}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    config_file = work / "experiment.toml"
    config_file.write_text(tomli_w.dumps(config.to_dict()), "utf-8")
    env = {**os.environ, **QUIET_FLOWER, "FLWR_HOME": str(work / "flwr-home")}
    # flower-superexec, flower-supernode and flwr must come from this environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    port = free_port()
    security = ["--insecure"]
    connection = {"address": f"127.0.0.1:{port}", "insecure": True}
    if tls:
        files = make_tls_files(work / "certificates")
        security = ["--ssl-certfile", str(files.server_certificate), "--ssl-keyfile",
                    str(files.server_key), "--ssl-ca-certfile", str(files.ca_certificate)]
        connection = {"address": f"127.0.0.1:{port}", "root-certificates": str(files.ca_certificate)}
    Path(env["FLWR_HOME"]).mkdir()
    (Path(env["FLWR_HOME"]) / "config.toml").write_text(
        tomli_w.dumps({"superlink": {"default": CONNECTION, CONNECTION: connection}}), "utf-8")

    processes: list[subprocess.Popen] = []
    # SIGTERM stops the deployment like Ctrl-C: the `finally` below stops every process started.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None

    def start(name: str, command: list[str]) -> tuple[subprocess.Popen, Path]:
        log = work / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                       cwd=work, start_new_session=True)
        processes.append(process)
        return process, log

    try:
        superlink, log = start("superlink", ["flower-superlink", *security, "--port", str(port),
                                             "--database", str(work / "state.db")])
        _wait_for_port(port, superlink, "flower-superlink", log, 60)
        echo(f"SuperLink on 127.0.0.1:{port} ({'TLS' if tls else 'insecure'})")
        node_security = (["--insecure"] if not tls
                         else ["--root-certificates", str(work / "certificates" / "ca.pem")])
        for partition in range(num_partitions):
            start(f"supernode-{partition}", [
                "flower-supernode", *node_security, "--superlink", f"127.0.0.1:{port}",
                "--port", str(free_port()),
                "--node-config", f"partition-id={partition} num-partitions={num_partitions}",
            ])
        echo(f"{num_partitions} SuperNodes started; submitting the run")
        overrides = (f'fl-har.config-file="{config_file}" fl-har.run-dir="{run_dir}"')
        submit = subprocess.run(
            ["flwr", "run", str(root), CONNECTION, "--run-config", overrides, "--stream"],
            check=False, env=env, cwd=work, capture_output=True, text=True, timeout=timeout,
        )
        (work / "flwr-run.log").write_text(submit.stdout + submit.stderr, "utf-8")
        if submit.returncode != 0:
            raise DeployError(f"flwr run exited with code {submit.returncode}; see "
                              f"{work / 'flwr-run.log'}")
    except subprocess.TimeoutExpired:
        raise DeployError(f"the run did not finish within {timeout:.0f} s") from None
    finally:
        _stop(processes)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    # `flwr run --stream` exits 0 even when the ServerApp failed: the run's meta.json decides.
    meta_file = run_dir / "meta.json"
    if not meta_file.is_file():
        raise DeployError(f"the ServerApp wrote no results to {run_dir}; see {work}/*.log")
    import json

    return json.loads(meta_file.read_text("utf-8"))["status"]
