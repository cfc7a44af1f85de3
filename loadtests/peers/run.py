"""Peer benchmark: the same model behind MLServer, PyTriton, KServe and riskstream, over OIP v2.

Each server in turn (never two at once, so they do not compete for the cores) is
started from its own environment, probed until its model is ready, driven by Triton's
perf_analyzer over gRPC at each concurrency (one row a request, ``-b 1``), and stopped.
riskstream is already running elsewhere and is only driven. Any python3.11 runs this
file; it shells into the environments of ``loadtests/peers/setup.sh``::

    bash loadtests/peers/setup.sh
    python3.11 loadtests/peers/run.py --model-dir DIR --out results.json
    python3.11 loadtests/peers/run.py --model-dir DIR --peers riskstream \\
        --riskstream-target 127.0.0.1:50051 --riskstream-token-file TOKEN --out rs.json

``--rounds N`` repeats the whole sequence N times, each round starting one peer later,
and prints medians with every round's throughput (the machine's other load changes
during a run). Writes ``--out`` (JSON: machine, settings, versions, probe scores, one
row per server, concurrency and round) and, beside it, ``<out>.logs/`` (each server's log, each
perf_analyzer run's output and CSV); prints a Markdown table. Every server listens on
127.0.0.1 on ports chosen free at start. Each perf_analyzer run is capped: at most
``--max-trials`` windows of ``--measurement-interval-ms``, killed after that plus 30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtests.peers import perf
from loadtests.peers.model_dir import ModelDir
from loadtests.peers.report import (
    Row,
    markdown_table,
    median_table,
    rows_json,
    scores_disagree,
)

REPO = Path(__file__).resolve().parents[2]
MANAGED = ("mlserver", "pytriton", "kserve")
DEFAULT_HOME = Path.home() / ".cache" / "riskstream" / "peers"
KEY_PACKAGES = (
    "tritonclient",
    "mlserver",
    "mlserver-xgboost",
    "xgboost-cpu",
    "uvloop",
    "nvidia-pytriton",
    "kserve",
    "onnxruntime",
)


class HarnessError(RuntimeError):
    """A peer did not start, or the environment is not set up."""


@dataclass
class Target:
    """A server to drive: where it is, what to send, and how it was set up."""

    name: str
    url: str
    model: str
    headers: list[str] = field(default_factory=list)
    input_name: str | None = None
    width: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None  # None: not started by the harness


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM the peer (it stops its own workers), then SIGKILL its whole process group."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    # Children outlive a leader that exited first; the group id is still the pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class Harness:
    """Starts peers, probes them and runs perf_analyzer; collects :class:`Row` s."""

    def __init__(self, args: argparse.Namespace, model: ModelDir, logs: Path) -> None:
        self.args = args
        self.model = model
        self.logs = logs
        self.home = Path(args.peers_home)
        self.perf_analyzer = self.home / "bin" / "perf_analyzer"
        self.rows: list[Row] = []
        self.probes: dict[str, Any] = {}
        self.load: dict[str, Any] = {}
        self.round = 0

    def tag(self, name: str) -> str:
        """``name``, with the round when there are several (file names, JSON keys)."""
        return name if self.args.rounds == 1 else f"{name}-r{self.round}"

    def add(self, row: Row) -> Row:
        """Record a row of the current round."""
        row = replace(row, round=self.round)
        self.rows.append(row)
        return row

    def venv_python(self, name: str) -> Path:
        python = self.home / "venvs" / name / "bin" / "python"
        if not python.exists():
            raise HarnessError(f"{python} missing: run loadtests/peers/setup.sh")
        return python

    # -- peers ------------------------------------------------------------------------

    def _peer_command(
        self, name: str, grpc_port: int, workdir: Path
    ) -> tuple[list[str], dict[str, str]]:
        a, env = self.args, dict[str, str]()
        common = ["--model-dir", str(self.model.path), "--grpc-port", str(grpc_port)]
        common += ["--http-port", str(free_port())]
        if name == "mlserver":
            extra = ["--workdir", str(workdir), "--metrics-port", str(free_port())]
            extra += ["--max-batch-size", str(a.max_batch_size)]
            extra += ["--batch-delay-us", str(a.batch_delay_us)]
        elif name == "pytriton":
            extra = ["--max-batch-size", str(a.max_batch_size)]
            extra += ["--batch-delay-us", str(a.batch_delay_us)]
            env["PYTRITON_ACCESS_TOKEN"] = self._pytriton_token
        else:
            extra = []
        cmd = [str(self.venv_python(name)), "-m", f"loadtests.peers.{name}_peer", *common, *extra]
        return self._niced(cmd), env

    def _niced(self, cmd: list[str]) -> list[str]:
        return ["nice", "-n", str(self.args.nice), *cmd] if self.args.nice else cmd

    @contextlib.contextmanager
    def managed_peer(self, name: str) -> Iterator[Target]:
        """Start one peer, yield it as a target once its model is ready, stop it."""
        grpc_port = free_port()
        workdir = self.logs / f"{self.tag(name)}-work"
        shutil.rmtree(workdir, ignore_errors=True)  # a previous run's, with the same --out
        workdir.mkdir(parents=True)
        self._pytriton_token = secrets.token_urlsafe(24)
        cmd, extra_env = self._peer_command(name, grpc_port, workdir)
        env = os.environ | extra_env
        env["PYTHONPATH"] = str(REPO)
        # One thread per library for every peer (MLServer's XGBoost otherwise takes
        # both cores: 71 vs 261 req/s measured here); ORT threads are set explicitly.
        env["OMP_NUM_THREADS"] = "1"
        log_path = self.logs / f"{self.tag(name)}.log"
        headers = []
        if name == "pytriton":
            headers = [f"triton-grpc-protocol-triton-access-token:{self._pytriton_token}"]
        target = Target(
            name=name,
            url=f"127.0.0.1:{grpc_port}",
            model=self.model.model_name,
            headers=headers,
            width=self.model.width,
            settings={"command": perf.redact(cmd)},
        )
        print(f"[peers] {name}: starting (log {log_path})", file=sys.stderr)
        started = time.monotonic()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        target.process = proc
        try:
            self.probe(target, proc=proc, log_path=log_path)
            target.settings["ready_after_s"] = round(time.monotonic() - started, 1)
            print(
                f"[peers] {name}: ready after {target.settings['ready_after_s']} s",
                file=sys.stderr,
            )
            yield target
        finally:
            stopping = time.monotonic()
            _stop(proc)
            if name == "pytriton":
                # PyTriton leaves its data segment behind even on a clean stop.
                for segment in Path("/dev/shm").glob(f"pytrtion{proc.pid}-*"):
                    segment.unlink(missing_ok=True)
            print(
                f"[peers] {name}: stopped in {time.monotonic() - stopping:.1f} s", file=sys.stderr
            )

    def probe(
        self,
        target: Target,
        *,
        proc: subprocess.Popen[bytes] | None = None,
        log_path: Path | None = None,
    ) -> None:
        """Wait for the model, record its metadata/config/scores (see probe.py)."""
        cmd = [str(self.venv_python("perf")), "-m", "loadtests.peers.probe", "--url", target.url]
        cmd += ["--model", target.model, "--width", str(target.width)]
        cmd += ["--output-index", str(self.model.output_index)]
        cmd += ["--timeout", str(self.args.ready_timeout)]
        if target.input_name:
            cmd += ["--input", target.input_name]
        for header in target.headers:
            cmd += ["--header", header]
        env = os.environ | {"PYTHONPATH": str(REPO)}
        prober = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        while prober.poll() is None:
            if proc is not None and proc.poll() is not None:
                prober.kill()
                raise HarnessError(
                    f"{target.name} exited with {proc.returncode} before its model was ready:\n"
                    + _tail(log_path or Path())
                )
            time.sleep(0.5)
        out, err = prober.communicate()
        if prober.returncode != 0:
            raise HarnessError(f"{target.name}: probe failed: {err.decode().strip()}")
        self.probes[self.tag(target.name)] = json.loads(out)

    # -- measuring --------------------------------------------------------------------

    def measure(self, target: Target) -> None:
        """perf_analyzer at every concurrency against a ready target."""
        a = self.args
        config = self.probes[self.tag(target.name)]["config"]
        shapes = perf.shape_args(config, target.width, only_input=target.input_name)
        load = self.load[self.tag(target.name)] = {"before": os.getloadavg()}
        for concurrency in a.concurrency:
            proc = target.process
            if proc is not None and proc.poll() is not None:
                error = f"server exited ({proc.returncode}) during the run; see its log"
                self.add(Row(target.name, concurrency, None, error=error))
                print(f"[peers] {target.name} c={concurrency}: {error}", file=sys.stderr)
                continue
            row = self.add(self._perf_run(target, concurrency, shapes))
            m = row.measurement
            status = (
                f"{m.throughput:.1f} req/s, p50 {m.p50_us / 1000:.2f} ms, "
                f"p99 {m.p99_us / 1000:.2f} ms{'' if row.stable else ' (unstable)'}"
                if m
                else f"failed: {row.error}"
            )
            print(f"[peers] {target.name} c={concurrency}: {status}", file=sys.stderr)
        load["after"] = os.getloadavg()

    def _perf_run(self, target: Target, concurrency: int, shapes: Sequence[str]) -> Row:
        a = self.args
        stem = self.logs / f"{self.tag(target.name)}-c{concurrency}"
        base = dict(
            url=target.url,
            model=target.model,
            concurrency=concurrency,
            interval_ms=a.measurement_interval_ms,
            stability_pct=a.stability_percentage,
            max_trials=a.max_trials,
            shapes=shapes,
            headers=target.headers,
        )
        cmd = perf.command(str(self.perf_analyzer), csv_path=f"{stem}.csv", **base)
        cap = (a.max_trials + 2) * a.measurement_interval_ms / 1000 + 30
        output, error = self._run_capped(self._niced(cmd), cap, Path(f"{stem}.out"))
        stable = True
        if error and perf.UNSTABLE_MARK in output:
            # No CSV when unstable: measure about three windows' worth of requests instead.
            count = perf.fallback_request_count(output, a.measurement_interval_ms)
            if count is not None:
                stable = False
                cmd = perf.command(
                    str(self.perf_analyzer),
                    csv_path=f"{stem}-fallback.csv",
                    request_count=count,
                    **base,
                )
                stem = Path(f"{stem}-fallback")
                fallback_cap = 6 * a.measurement_interval_ms / 1000 + 30
                output, error = self._run_capped(
                    self._niced(cmd), fallback_cap, Path(f"{stem}.out")
                )
        if error:
            return Row(target.name, concurrency, None, error=error, command=perf.redact(cmd))
        try:
            (measurement,) = perf.parse_csv(Path(f"{stem}.csv").read_text())
        except (OSError, ValueError) as exc:
            return Row(target.name, concurrency, None, error=str(exc), command=perf.redact(cmd))
        return Row(target.name, concurrency, measurement, stable, command=perf.redact(cmd))

    @staticmethod
    def _run_capped(cmd: list[str], cap_s: float, out_path: Path) -> tuple[str, str | None]:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=cap_s, check=False)
        except subprocess.TimeoutExpired as exc:
            text = (exc.stdout or b"").decode(errors="replace") if exc.stdout else ""
            out_path.write_text(text)
            return text, f"perf_analyzer killed after {cap_s:.0f} s"
        text = done.stdout + done.stderr
        out_path.write_text(text)
        if done.returncode != 0:
            last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
            return text, f"perf_analyzer exit {done.returncode}: {last[0].strip()}"
        return text, None


def _versions() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for lock in sorted((REPO / "loadtests" / "peers" / "requirements").glob("*.txt")):
        pins = dict(
            line.split("==", 1)
            for line in lock.read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
        out[lock.stem] = {k: v for k, v in pins.items() if k.lower() in KEY_PACKAGES}
    return out


def _riskstream_target(args: argparse.Namespace, model: ModelDir) -> Target:
    if not args.riskstream_target:
        raise HarnessError("--peers riskstream needs --riskstream-target HOST:PORT")
    headers = []
    if args.riskstream_token_file:
        token = Path(args.riskstream_token_file).read_text().strip()
        headers.append(f"authorization:Bearer {token}")
    return Target(
        name="riskstream",
        url=args.riskstream_target,
        model=args.riskstream_model or model.model_name,
        headers=headers,
        input_name=args.riskstream_input,
        width=args.riskstream_width or model.width,
        settings={"external": True},
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="results JSON")
    p.add_argument("--peers", default=",".join(MANAGED), help="comma-separated, in run order")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat all peers, order rotated; table of medians"
    )
    p.add_argument("--measurement-interval-ms", type=int, default=5000)
    p.add_argument("--stability-percentage", type=int, default=25, help="perf_analyzer -s")
    p.add_argument("--max-trials", type=int, default=4, help="perf_analyzer -r")
    p.add_argument("--max-batch-size", type=int, default=32, help="MLServer, PyTriton")
    p.add_argument("--batch-delay-us", type=int, default=1000, help="MLServer, PyTriton")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="seconds")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the peers and perf_analyzer under `nice -n N` (negative needs root)",
    )
    p.add_argument("--peers-home", default=os.environ.get("RISKSTREAM_PEERS_HOME", DEFAULT_HOME))
    p.add_argument("--riskstream-target", help="HOST:PORT of a running riskstream OIP server")
    p.add_argument("--riskstream-model", help="default: metadata.json's model_name")
    p.add_argument("--riskstream-token-file", help="file holding the bearer token")
    p.add_argument("--riskstream-input", help="input tensor (default: from its metadata)")
    p.add_argument("--riskstream-width", type=int, help="features (default: the model dir's)")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = set(args.peers) - {*MANAGED, "riskstream"}
    if unknown:
        p.error(f"unknown peers: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every server gave numbers."""
    args = parse_args(argv)
    model = ModelDir.load(args.model_dir)
    logs = args.out.with_name(args.out.name + ".logs")
    logs.mkdir(parents=True, exist_ok=True)
    harness = Harness(args, model, logs)
    if not harness.perf_analyzer.exists():
        raise HarnessError(f"{harness.perf_analyzer} missing: run loadtests/peers/setup.sh")
    started = datetime.now(UTC)
    targets: dict[str, dict[str, Any]] = {}
    for round_ in range(args.rounds):
        harness.round = round_
        # Each round starts one peer later, so a change in the neighbours' load over
        # the run does not always fall on the same peer.
        shift = round_ % len(args.peers)
        for name in args.peers[shift:] + args.peers[:shift]:
            if args.rounds > 1:
                print(f"[peers] round {round_ + 1}/{args.rounds}: {name}", file=sys.stderr)
            try:
                if name == "riskstream":
                    target = _riskstream_target(args, model)
                    harness.probe(target)
                    harness.measure(target)
                else:
                    with harness.managed_peer(name) as target:
                        harness.measure(target)
                info = {"url": target.url, "model": target.model, **target.settings}
            except HarnessError as exc:
                print(f"[peers] {name}: {exc}", file=sys.stderr)
                info = {"error": str(exc)}
                for c in args.concurrency:
                    harness.add(Row(name, c, None, error="did not start"))
            targets[harness.tag(name)] = info
    scores = {name: p["scores"] for name, p in harness.probes.items()}
    result = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "host": platform.node(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": harness.load,
        },
        "model": {"dir": str(model.path), "name": model.model_name, "features": model.width},
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if not k.startswith("riskstream_token")
        },
        "versions": _versions(),
        "servers": targets,
        "probe": harness.probes,
        "scores_disagree": scores_disagree(
            {k: v for k, v in scores.items() if k.partition("-r")[0] in MANAGED}
        ),
        "results": rows_json(harness.rows),
    }
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    rows = sorted(harness.rows, key=lambda r: (args.peers.index(r.server), r.concurrency))
    print(markdown_table(rows) if args.rounds == 1 else median_table(rows))
    if result["scores_disagree"]:
        print(f"[peers] scores disagree: {result['scores_disagree']}", file=sys.stderr)
    print(f"[peers] wrote {args.out} (logs in {logs})", file=sys.stderr)
    return 0 if all(r.measurement for r in harness.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
