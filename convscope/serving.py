"""``convscope-serve``: start TorchServe on every archive in the model store, and the gRPC
gateway beside it, in the foreground.

The gateway (``convscope-gateway``, a process of its own) serves the typed API, OIP v2, health
and reflection on 50051 and OIP REST plus its metrics on 8090. Each ``.mar`` carries its
``spec.json``; every endpoint the spec lists is registered under its
own name (``<m>``, ``<m>-features``) with its own workers and batching, so a slow endpoint never
stalls another. The effective ``config.properties`` is rendered into the run directory
(``var/``), where TorchServe also writes ``key_file.json`` and its logs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .endpoints import SUFFIXES
from .index import ROOT_VARIABLE
from .metrics import BUCKETS_VARIABLE, parse_buckets
from .spec import ServingSpec, parse_spec

METRICS_PORT = 8083
"""ConvScope's own Prometheus metrics (histograms with its buckets), next to TorchServe's 8082."""
DEFAULT_PORTS = {"inference": 8080, "management": 8081, "metrics": 8082, "grpc_inference": 7070,
                 "grpc_management": 7071, "convscope_metrics": METRICS_PORT, "gateway_grpc": 50051,
                 "gateway_http": 8090}
"""Every listener, all on 127.0.0.1: TorchServe's, ConvScope's metrics, the gRPC gateway
(convscope.v1, OIP v2, health, reflection) and the gateway's OIP REST."""

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "deploy" / "torchserve" / "config.properties"
LOG_CONFIG = REPO / "deploy" / "torchserve" / "log4j2.xml"
PORT_KEYS = {"inference": ("inference_address", "http://127.0.0.1:{port}"),
             "management": ("management_address", "http://127.0.0.1:{port}"),
             "metrics": ("metrics_address", "http://{metrics_host}:{port}"),
             "grpc_inference": ("grpc_inference_port", "{port}"),
             "grpc_management": ("grpc_management_port", "{port}")}
"""TorchServe's listeners: all on loopback but the metrics port, which Prometheus may need to
reach from outside the host or pod (``--metrics-host``; a NetworkPolicy says who)."""
LOOPBACK = "127.0.0.1"


def url_host(host: str) -> str:
    """``host`` as it goes in a URL or ``host:port``: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def listen_address(host: str, port: int) -> str:
    return f"{url_host(host)}:{port}"


@dataclass(frozen=True)
class Registration:
    name: str
    mar: str
    serving: ServingSpec

    def models_entry(self, version: str = "1.0") -> dict:
        s = self.serving
        return {version: {"defaultVersion": True, "marName": self.mar, "minWorkers": s.workers,
                          "maxWorkers": s.workers, "batchSize": s.batch_size,
                          "maxBatchDelay": s.max_batch_delay_ms, "responseTimeout": s.response_timeout_s}}


def registrations(store: Path, overrides: dict[str, ServingSpec] | None = None) -> list[Registration]:
    """One registration per (archive, endpoint), from the spec inside each archive;
    ``overrides`` replaces the serving settings of named registrations."""
    overrides = overrides or {}
    result = []
    for mar in sorted(store.glob("*.mar")):
        with zipfile.ZipFile(mar) as archive:
            doc = json.loads(archive.read("spec.json"))
        spec = parse_spec({**doc, "labels": [""] * int(doc["num_classes"])}, store)
        for endpoint in spec.endpoints:
            name = f"{spec.name}{SUFFIXES[endpoint]}"
            result.append(Registration(name, mar.name, overrides.get(name, spec.serving_for(endpoint))))
    return result


def render_config(store: Path, ports: dict[str, int] | None = None,
                  overrides: dict[str, ServingSpec] | None = None, base: Path = BASE_CONFIG,
                  metrics_host: str = LOOPBACK) -> str:
    """The effective config.properties: the hardened base, the store and its registrations."""
    regs = registrations(store, overrides)
    if not regs:
        raise SystemExit(f"no model archives in {store}: run `make store` first")
    lines = base.read_text().splitlines()
    overrides = {"model_store": str(store.resolve()),
                 "load_models": ",".join(f"{r.name}={r.mar}" for r in regs),
                 "models": json.dumps({r.name: r.models_entry() for r in regs})}
    for key, port in (ports or {}).items():
        if key not in PORT_KEYS:
            continue
        name, pattern = PORT_KEYS[key]
        overrides[name] = pattern.format(port=port, metrics_host=url_host(metrics_host))
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in overrides]
    return "\n".join(kept + [f"{k}={v}" for k, v in overrides.items()]) + "\n"


def prepare_run_dir(run_dir: Path, store: Path, ports: dict[str, int] | None = None,
                    overrides: dict[str, ServingSpec] | None = None,
                    index_root: Path | None = None, metrics_host: str = LOOPBACK) -> tuple[list[str], dict]:
    """Write ``config.properties`` into ``run_dir``; return (torchserve command, environment).
    Feature indexes live in ``index_root`` (default ``<run_dir>/index``), one folder per model."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.properties").write_text(render_config(store, ports, overrides, metrics_host=metrics_host))
    # TorchServe writes new tokens at every start: a key file left by the last run is stale.
    (run_dir / "key_file.json").unlink(missing_ok=True)
    prometheus_dir = run_dir / "prometheus"
    shutil.rmtree(prometheus_dir, ignore_errors=True)  # multiprocess files are per run
    prometheus_dir.mkdir()
    # TorchServe keeps its pid file and unpacked archives in $TMPDIR: one per run directory lets
    # several servers (a developer's and the tests') run side by side.
    tmp = (run_dir / "tmp").resolve()
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir.resolve()),
           "LOG_LOCATION": str((run_dir / "logs").resolve()),
           "METRICS_LOCATION": str((run_dir / "logs").resolve()),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1",  # workers never fetch from a model hub, whatever a spec names
           ROOT_VARIABLE: str((index_root or run_dir / "index").resolve())}
    torchserve = str(Path(sys.executable).with_name("torchserve"))
    command = [torchserve, "--start", "--foreground", "--ncs",
               "--ts-config", str((run_dir / "config.properties").resolve()),
               "--log-config", str(LOG_CONFIG),
               "--model-store", str(store.resolve())]
    return command, env


def serve_metrics(port: int, prometheus_dir: Path, host: str = LOOPBACK):
    """Serve the workers' shared metrics as Prometheus text on ``host:port`` (a thread)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(prometheus_dir))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def free_ports() -> dict[str, int]:
    """One free loopback port for each listener (``DEFAULT_PORTS``' names)."""
    names = tuple(DEFAULT_PORTS)
    sockets = [socket.socket() for _ in names]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return {name: s.getsockname()[1] for name, s in zip(names, sockets)}
    finally:
        for s in sockets:
            s.close()


def gateway_command(run_dir: Path, store: Path, ports: dict[str, int], host: str = LOOPBACK,
                    edge_key_file: Path | None = None) -> list[str]:
    """The gRPC gateway beside TorchServe, listening on ``host``: it calls TorchServe's inference
    gRPC and polls the management API (with the key TorchServe writes to
    ``run_dir/key_file.json``) for readiness. With ``edge_key_file``, edge mode: callers present
    that shared key, and TorchServe's REST is proxied too (convscope_gateway/edge.py)."""
    command = [sys.executable, "-m", "convscope_gateway",
               "--listen", listen_address(host, ports["gateway_grpc"]),
               "--http-listen", listen_address(host, ports["gateway_http"]),
               "--upstream", f"127.0.0.1:{ports['grpc_inference']}",
               "--management-url", f"http://127.0.0.1:{ports['management']}",
               "--key-file", str((run_dir / "key_file.json").resolve()),
               "--model-store", str(store.resolve())]
    if edge_key_file is not None:
        # absolute(), not resolve(): a mounted Secret is a symlink that an update re-points.
        command += ["--edge-key-file", str(edge_key_file.absolute()),
                    "--inference-url", f"http://127.0.0.1:{ports['inference']}"]
    return command


def gateway_env(env: dict) -> dict:
    """The gateway is one process with its own metrics (8090): it must not write them into the
    workers' multiprocess folder, which 8083 serves (they would show there twice)."""
    return {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop_group(process: subprocess.Popen, waits: tuple[float, float] = (30, 10)) -> None:
    """SIGTERM ``process``'s group, then SIGKILL what is left; wait until the group is gone."""
    for sig, wait in zip((signal.SIGTERM, signal.SIGKILL), waits):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            if _group_gone(process.pid, wait):  # the frontend and workers too, not just the launcher
                return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _group_gone(pid: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@dataclass
class RunningServer:
    """A TorchServe started in the background by ``start`` (tests, benchmarks)."""

    process: subprocess.Popen
    run_dir: Path
    ports: dict[str, int]
    names: list[str]
    keys: dict[str, str] = field(default_factory=dict)
    metrics_server: object = None
    gateway: subprocess.Popen | None = None

    def url(self, listener: str = "inference") -> str:
        """``inference``, ``management``, ``metrics`` (TorchServe's) or ``convscope_metrics``."""
        return f"http://127.0.0.1:{self.ports[listener]}"

    def log_tail(self, lines: int = 60) -> str:
        paths = sorted((self.run_dir / "logs").glob("*.log")) + [self.run_dir / "torchserve.out",
                                                                  self.run_dir / "gateway.out"]
        text = "".join(p.read_text(errors="replace") for p in paths if p.exists())
        return "\n".join(text.splitlines()[-lines:])

    def _ready(self, name: str) -> bool:
        request = urllib.request.Request(f"{self.url('management')}/models/{name}",
                                         headers={"Authorization": f"Bearer {self.keys['management']}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return any(w["status"] == "READY" for w in json.load(answer)[0]["workers"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError):
            return False

    def _gateway_up(self) -> bool:
        return self.gateway is None or _listening(self.ports["gateway_grpc"])

    def wait_ready(self, timeout: float = 240) -> "RunningServer":
        deadline, key_file = time.monotonic() + timeout, self.run_dir / "key_file.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited with {self.process.returncode}:\n{self.log_tail()}")
            if key_file.exists() and not self.keys:
                keys = json.loads(key_file.read_text())
                self.keys = {kind: keys[kind]["key"] for kind in ("inference", "management", "API")}
            if self.gateway is not None and self.gateway.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.gateway.returncode}:\n{self.log_tail()}")
            if self.keys and all(self._ready(name) for name in self.names) and self._gateway_up():
                return self
            time.sleep(0.5)
        raise RuntimeError(f"TorchServe not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the gateway, then TorchServe's process group (frontend and workers)."""
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()  # free the port: a restart in this process binds it again
        if self.gateway is not None:
            _stop_group(self.gateway, (10, 5))
        _stop_group(self.process)


def start(store: Path, run_dir: Path, ports: dict[str, int] | None = None,
          overrides: dict[str, ServingSpec] | None = None, timeout: float = 240,
          index_root: Path | None = None) -> RunningServer:
    """Start TorchServe in the background on ``ports`` (default: free ones) and wait until
    every registration has a ready worker."""
    ports = ports or free_ports()
    command, env = prepare_run_dir(run_dir, store, ports, overrides, index_root)
    with open(run_dir / "torchserve.out", "wb") as out:
        process = subprocess.Popen(command, cwd=run_dir, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = RunningServer(process, run_dir, ports, [r.name for r in registrations(store, overrides)])
    try:
        with open(run_dir / "gateway.out", "wb") as out:
            server.gateway = subprocess.Popen(gateway_command(run_dir, store, ports), cwd=run_dir, env=gateway_env(env),
                                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server.metrics_server = serve_metrics(ports["convscope_metrics"], run_dir / "prometheus")
        return server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--run-dir", type=Path, default=REPO / "var")
    parser.add_argument("--index-root", type=Path, help="feature indexes (default: <run-dir>/index)")
    parser.add_argument("--free-ports", action="store_true",
                        help="free loopback ports instead of the defaults (8080-8083, 7070-7071, 50051, 8090)")
    parser.add_argument("--explanation-buckets", type=parse_buckets, metavar="S,S,...",
                        help="upper bounds (seconds) of the explanation-duration histogram "
                             "(default: 0.001 .. 120)")
    parser.add_argument("--host", default=LOOPBACK,
                        help="address of the gateway's gRPC and HTTP listeners (0.0.0.0 in a container); "
                             "TorchServe's own stay on 127.0.0.1")
    parser.add_argument("--metrics-host", default=LOOPBACK,
                        help="address of TorchServe's and ConvScope's metrics listeners (for Prometheus)")
    parser.add_argument("--edge-key-file", type=Path,
                        help="edge mode: callers present this file's shared key to the gateway, which "
                             "serves TorchServe's REST and gRPC behind it (docs/deploy.md)")
    args = parser.parse_args(argv)
    ports = free_ports() if args.free_ports else dict(DEFAULT_PORTS)
    command, env = prepare_run_dir(args.run_dir, args.model_store, ports, index_root=args.index_root,
                                   metrics_host=args.metrics_host)
    if args.explanation_buckets:  # read by every worker when it imports convscope.metrics
        env[BUCKETS_VARIABLE] = ",".join(f"{b:g}" for b in args.explanation_buckets)
    names = [r.name for r in registrations(args.model_store)]
    serve_metrics(ports["convscope_metrics"], args.run_dir / "prometheus", args.metrics_host)
    url = "http://127.0.0.1:{}".format
    gateway, metrics = url_host(args.host), url_host(args.metrics_host)
    edge = f", edge mode: shared key in {args.edge_key_file}" if args.edge_key_file else ""
    print(f"convscope: serving {', '.join(names)}\n"
          f"  REST {url(ports['inference'])}, TorchServe gRPC 127.0.0.1:{ports['grpc_inference']}, "
          f"token in {args.run_dir / 'key_file.json'}\n"
          f"  typed gRPC (convscope.v1, OIP v2, health, reflection) {gateway}:{ports['gateway_grpc']}, "
          f"OIP REST http://{gateway}:{ports['gateway_http']}/v2{edge}\n"
          f"  feature indexes in {env[ROOT_VARIABLE]}\n"
          f"  metrics: TorchServe http://{metrics}:{ports['metrics']}/metrics, "
          f"ConvScope http://{metrics}:{ports['convscope_metrics']}/metrics\n"
          f"  Ctrl-C stops", flush=True)
    # TorchServe's launcher does not pass a SIGTERM on to its Java frontend: run the whole server
    # in its own process group and stop the group (frontend and workers) on SIGTERM, SIGHUP or
    # Ctrl-C, so a supervisor's stop never leaves an orphaned server holding the ports and
    # the feature indexes' writer locks. The gateway runs in a group of its own, stopped first.
    process = subprocess.Popen(command, cwd=args.run_dir, env=env, start_new_session=True)
    server = RunningServer(process, args.run_dir, ports, names)
    server.gateway = subprocess.Popen(gateway_command(args.run_dir, args.model_store, ports, args.host,
                                                      args.edge_key_file),
                                      cwd=args.run_dir, env=gateway_env(env), start_new_session=True)

    def stop(number: int, _frame) -> None:
        print(f"convscope: stopping ({signal.Signals(number).name})", flush=True)
        server.stop()
        sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    # Either process ending ends the service: a half-up server (no gateway, or a gateway with
    # nothing behind it) is worse than a clear exit that a supervisor restarts.
    while process.poll() is None and server.gateway.poll() is None:
        time.sleep(0.5)
    which = "TorchServe" if process.poll() is not None else "the gateway"
    print(f"convscope: {which} exited; stopping the rest", flush=True)
    code = process.poll() if process.poll() is not None else server.gateway.poll()
    server.stop()
    sys.exit(code or 1)


if __name__ == "__main__":
    main()
