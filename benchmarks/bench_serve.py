"""`kronos-registry serve` under load: requests per second, latency, the batching gain, HTTP overhead.

    .venv/bin/python benchmarks/bench_serve.py                    # the issue's sizes
    .venv/bin/python benchmarks/bench_serve.py --rounds 2 --solo 3   # shorter

One Kronos-small-shaped checkpoint with random weights (seeded) and Tokenizer-base, written
as hub-style folders and registered in a temporary registry file as `bench-small`, synced
into a temporary store (offline: local sources). Each request sends 256 synthetic candles
(a seeded random walk; each client its own) and asks for 32 bars, one sample, a seed.

(a) A server with batching (--max-batch 8, --batch-window MS): 1 client sending `--solo`
    requests one after another, then 8 clients each sending `--rounds` requests one after
    another, all at once. Requests per second (wall), p50 and p99 latency.
(b) The same with --max-batch 1 (no batching), 8 clients. Batching gain = (a) 8-client
    requests/s over (b)'s; the issue asks for at least 2.5x.
(c) HTTP overhead: the demo model, the same request sent `--overhead-n` times over HTTP
    (one client) and through an in-process ForecastService.forecast with the same batch
    window; medians and their difference (parsing, JSON, threads, the socket).

(d) Where the time goes, in this process: the batched core alone (no server) forecasting 1
    and then `--clients` series, split into the prefill (the whole history through the
    transformer: compute-bound, it costs the same per series batched or not), the tokenizer,
    and the generated steps (where batching saves). 8 x (1 series) / (8 series) is the most
    any batching can gain on this device; the server's gain in (a)/(b) is measured against it.

(e) Exposure (issue 23), on a server of the demo model: the peak RSS of the server (VmHWM)
    under 20 parallel 100k-candle JSON bodies (goal: under 1 GB), and the latency of a 4-bar
    forecast sent right after 4 heavy requests whose clients went away (goal: under 2 s).
    `--exposure-only` runs just these two lines.

Each server is a real `kronos-registry serve` process on 127.0.0.1, its models preloaded
(/readyz) and warmed up by one request before timing. `--device cuda` serves on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_MODEL, LOOKBACK, PRED = "bench-small", 256, 32
DEMO = "kronos-demo"


def registry_yaml(ckpt: Path) -> str:
    return (f"schema: 1\ntokenizers:\n  bench-tokenizer:\n    source: {ckpt / 'kronos-tokenizer-base'}\n"
            f"models:\n  {BENCH_MODEL}:\n    source: {ckpt / 'kronos-small'}\n    tokenizer: bench-tokenizer\n"
            "    context_length: 512\n")


def candle_records(n: int, seed: int) -> list[dict]:
    from bench_predict import synthetic_candles  # same folder: run as a script, it is on sys.path

    frame, stamps = synthetic_candles(n, seed=seed)
    return [{"timestamp": ts.isoformat(), **{c: float(v) for c, v in row.items()}}
            for ts, (_, row) in zip(stamps, frame.iterrows())]


def core_split(ckpt: Path, clients: int, device: str | None) -> dict:
    """(d): the batched core on 1 and ``clients`` series, timed by part (see the docstring)."""
    import pandas as pd
    import torch
    from bench_predict import synthetic_candles

    import kronos_registry.kronos.generate as generate
    from kronos_registry.api import load_module
    from kronos_registry.kronos.batch import SeriesRequest, forecast_series
    from kronos_registry.kronos.predictor import KronosPredictor

    predictor = KronosPredictor(load_module("model", ckpt / "kronos-small"),
                                load_module("tokenizer", ckpt / "kronos-tokenizer-base"), device=device)
    spent: dict[str, float] = {}

    def timed(label, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started
        return run

    window_forward = generate._window_forward  # the prefill: a whole window at once
    generate._window_forward = timed("prefill", window_forward)
    predictor.tokenizer.encode = timed("tokenizer", predictor.tokenizer.encode)
    predictor.tokenizer.decode = timed("tokenizer", predictor.tokenizer.decode)

    def requests(n):
        out = []
        for i in range(n):
            frame, stamps = synthetic_candles(LOOKBACK + PRED, seed=i)
            stamps = pd.Series(stamps)
            out.append(SeriesRequest(f"s{i}", frame.iloc[:LOOKBACK], stamps[:LOOKBACK], stamps[LOOKBACK:], PRED,
                                     seed=i))
        return out

    try:
        forecast_series(predictor, requests(1))  # warm-up
        split = {}
        for n in (1, clients):
            spent.clear()
            started = time.perf_counter()
            forecast_series(predictor, requests(n), max_batch=clients)
            total = time.perf_counter() - started
            if str(predictor.device).startswith("cuda"):
                torch.cuda.synchronize()
            split[n] = {"total_s": total, "prefill_s": spent.get("prefill", 0.0),
                        "tokenizer_s": spent.get("tokenizer", 0.0)}
            split[n]["steps_s"] = total - split[n]["prefill_s"] - split[n]["tokenizer_s"]
    finally:
        generate._window_forward = window_forward
    split["ceiling"] = clients * split[1]["total_s"] / split[clients]["total_s"]
    return split


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `kronos-registry serve` subprocess, up and ready (its --preload models loaded)."""

    def __init__(self, env: dict, args: list[str], log: Path):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "kronos_registry", "serve", "--offline", "--port", str(self.port), *args]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the server was not ready in 300 s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_clients(url: str, clients: int, rounds: int, bodies: list[dict]) -> dict:
    """``clients`` threads, each sending ``rounds`` requests one after another -> stats."""
    import httpx

    def client(index: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, timeout=600) as http:
            for r in range(rounds):
                body = {**bodies[index % len(bodies)], "seed": 1000 * index + r}
                started = time.perf_counter()
                answer = http.post("/v1/forecast", json=body)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"HTTP {answer.status_code}: {answer.text[:500]}")
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [s for each in pool.map(client, range(clients)) for s in each]
    wall = time.perf_counter() - started
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "wall_s": wall, "rps": len(latencies) / wall,
            "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99)}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (with few samples, p99 is the slowest)."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def batch_sizes(url: str) -> dict[str, int]:
    """Executed batches by size bucket (le), from the server's /metrics."""
    import re

    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    counts = {le: float(v) for le, v in re.findall(r'kronos_batch_size_bucket\{le="([^"]+)"\} (\S+)', text)}
    out, below = {}, 0.0
    for le, cumulative in counts.items():
        if cumulative > below:
            out[f"<={le}"] = int(cumulative - below)
        below = cumulative
    return out


def warm_up(url: str, body: dict) -> None:
    import httpx

    httpx.post(f"{url}/v1/forecast", json=body, timeout=600).raise_for_status()


def http_overhead(env: dict, url: str, n: int, window_ms: float, device: str | None) -> dict:
    """Median ms of one demo forecast over HTTP and through the service in this process."""
    import httpx

    from kronos_registry.api import Registry
    from kronos_registry.candles import candles_from_records
    from kronos_registry.services.forecast import ForecastParams
    from kronos_registry.services.lanes import ForecastService
    from kronos_registry.services.model_cache import ModelManager

    records = candle_records(LOOKBACK, seed=7)
    body = {"model": DEMO, "candles": records, "pred_len": PRED, "seed": 7}
    registry = Registry(None, env["KRONOS_REGISTRY_HOME"], offline=True, env=env)
    service = ForecastService(registry, manager=ModelManager(registry, device=device), batch_window_ms=window_ms)
    params = ForecastParams(pred_len=PRED, seed=7)
    over_http, in_process = [], []
    try:
        with httpx.Client(base_url=url, timeout=600) as http:
            http.post("/v1/forecast", json=body).raise_for_status()
            service.forecast(DEMO, candles_from_records(records), params)
            for _ in range(n):  # alternated, so that the machine's other load falls on both alike
                started = time.perf_counter()
                http.post("/v1/forecast", json=body).raise_for_status()
                over_http.append(time.perf_counter() - started)
                started = time.perf_counter()
                service.forecast(DEMO, candles_from_records(records), params)
                in_process.append(time.perf_counter() - started)
    finally:
        service.close()
    http_ms, local_ms = statistics.median(over_http) * 1000, statistics.median(in_process) * 1000
    return {"http_ms": http_ms, "in_process_ms": local_ms, "overhead_ms": http_ms - local_ms}


FLOOD, FLOOD_ROWS, ABANDONED = 20, 100_000, 4
MEMORY_GOAL_MB, ABANDONED_GOAL_S = 1000, 2.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc (Linux only)")


def flood_memory(server: "Server") -> dict:
    """(e) 20 parallel 100k-candle bodies at once -> the server's peak RSS before and after."""
    import httpx

    candles = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
               for row in candle_records(FLOOD_ROWS, seed=3)]  # compact, to fit the default --max-body
    body = json.dumps({"model": DEMO, "candles": candles, "pred_len": 4, "seed": 1}, separators=(",", ":")).encode()
    before = peak_rss_mb(server.process.pid)

    def send(_):
        return httpx.post(f"{server.url}/v1/forecast", content=body, timeout=600,
                          headers={"Content-Type": "application/json"}).status_code
    with ThreadPoolExecutor(FLOOD) as pool:
        statuses = sorted(pool.map(send, range(FLOOD)))
    return {"body_mb": len(body) / 1e6, "peak_before_mb": before, "peak_mb": peak_rss_mb(server.process.pid),
            "statuses": statuses}


def abandoned_latency(server: "Server") -> dict:
    """(e) 4 heavy forecasts whose clients go away once queued, then a 4-bar forecast's latency."""
    import httpx

    body = json.dumps({"model": DEMO, "candles": candle_records(LOOKBACK, seed=5), "pred_len": 400,
                       "samples": 64}).encode()
    head = (f"POST /v1/forecast HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(ABANDONED)]
    for sock in sockets:
        sock.sendall(head + body)
    # All 4 queued or running before they go away (a server without the gauge: 2 s, a baseline).
    has_gauge = "kronos_forecasts_waiting" in httpx.get(f"{server.url}/metrics").text
    deadline = time.monotonic() + (60 if has_gauge else 2)
    queued = False
    while not queued and time.monotonic() < deadline:
        queued = f"kronos_forecasts_waiting {float(ABANDONED)}" in httpx.get(f"{server.url}/metrics").text
        time.sleep(0.05)
    for sock in sockets:
        sock.close()
    small = {"model": DEMO, "candles": candle_records(LOOKBACK, seed=6), "pred_len": 4, "seed": 1}
    started = time.perf_counter()
    status = httpx.post(f"{server.url}/v1/forecast", json=small, timeout=600).status_code
    return {"latency_s": time.perf_counter() - started, "status": status, "all_queued": queued}


def exposure(env: dict, tmp: Path, common: list[str]) -> dict:
    server = Server(env, [*common, "--preload", DEMO], tmp / "serve-exposure.log")
    try:
        warm_up(server.url, {"model": DEMO, "candles": candle_records(LOOKBACK, seed=1), "pred_len": 4, "seed": 1})
        return {"memory": flood_memory(server), "abandoned": abandoned_latency(server)}
    finally:
        server.stop()


def print_exposure(result: dict) -> None:
    memory, abandoned = result["memory"], result["abandoned"]
    print(f"peak server RSS, {FLOOD} parallel {FLOOD_ROWS:,}-candle bodies ({memory['body_mb']:.1f} MB each): "
          f"{memory['peak_mb']:.0f} MB (before: {memory['peak_before_mb']:.0f} MB; statuses "
          f"{sorted(set(memory['statuses']))}) (goal: < {MEMORY_GOAL_MB} MB)")
    print(f"4-bar forecast after {ABANDONED} abandoned heavy requests: {abandoned['latency_s']:.2f} s "
          f"(status {abandoned['status']}; all {ABANDONED} were queued: {abandoned['all_queued']}) "
          f"(goal: < {ABANDONED_GOAL_S:g} s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--solo", type=int, default=6, help="requests of the single client (a)")
    ap.add_argument("--rounds", type=int, default=3, help="requests of each of the 8 clients (a, b)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch-window", type=float, default=10.0, metavar="MS")
    ap.add_argument("--overhead-n", type=int, default=20)
    ap.add_argument("--device", default=None, help="cpu, cuda [default: the server's choice]")
    ap.add_argument("--exposure-only", action="store_true", help="run only (e): memory and abandoned requests")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch/OpenMP threads of the servers and of this process [default: torch's]")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the servers
        __import__("torch").set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from bench_predict import build_checkpoints

        build_checkpoints(tmp / "ckpt", ["kronos-small", "kronos-tokenizer-base"])
        (tmp / "models.yaml").write_text(registry_yaml(tmp / "ckpt"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_REGISTRY_", "HF_"))}
        env.update(KRONOS_REGISTRY_HOME=str(tmp / "store"), KRONOS_REGISTRY_FILE=str(tmp / "models.yaml"),
                   KRONOS_REGISTRY_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
        synced = subprocess.run([sys.executable, "-m", "kronos_registry", "sync", BENCH_MODEL, DEMO], env=env,
                                capture_output=True, text=True)
        if synced.returncode != 0:
            raise SystemExit(synced.stderr)

        bodies = [{"model": BENCH_MODEL, "candles": candle_records(LOOKBACK, seed=i), "pred_len": PRED}
                  for i in range(args.clients)]
        common = ["--preload", BENCH_MODEL, "--batch-window", str(args.batch_window)]
        common += ["--device", args.device] if args.device else []
        common += ["--threads", str(args.threads)] if args.threads else []
        if args.exposure_only:
            print_exposure(exposure(env, tmp, [*(["--device", args.device] if args.device else []),
                                               *(["--threads", str(args.threads)] if args.threads else [])]))
            return 0
        results = {}
        for label, extra in (("batched", ["--max-batch", str(args.clients), "--preload", DEMO]),
                             ("max-batch 1", ["--max-batch", "1"])):
            server = Server(env, [*common, *extra], tmp / f"serve-{label.replace(' ', '-')}.log")
            try:
                warm_up(server.url, {**bodies[0], "seed": 1})
                if label == "batched":
                    results["1 client"] = run_clients(server.url, 1, args.solo, bodies)
                    print(f"  1 client done: {results['1 client']['rps']:.2f} req/s", flush=True)
                before = batch_sizes(server.url)
                key = f"{args.clients} clients, {label}"
                results[key] = run_clients(server.url, args.clients, args.rounds, bodies)
                after = batch_sizes(server.url)
                results[key]["batches"] = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
                print(f"  {args.clients} clients, {label} done", flush=True)
                if label == "batched":
                    results["overhead"] = http_overhead(env, server.url, args.overhead_n, args.batch_window,
                                                        args.device)
            finally:
                server.stop()
        results["core"] = core_split(tmp / "ckpt", args.clients, args.device)
        results["exposure"] = exposure(env, tmp, [*(["--device", args.device] if args.device else []),
                                                  *(["--threads", str(args.threads)] if args.threads else [])])

    import torch

    print(f"\nKronos-small-shaped random checkpoint, lookback {LOOKBACK}, pred {PRED}, 1 sample; "
          f"cpu count {os.cpu_count()}, torch threads {torch.get_num_threads()}, batch window "
          f"{args.batch_window:g} ms, device {args.device or 'default'}")
    print(f"{'run':<28} {'requests':>8} {'wall s':>8} {'req/s':>7} {'p50 s':>7} {'p99 s':>7}")
    for label, r in results.items():
        if label not in ("overhead", "core"):
            print(f"{label:<28} {r['requests']:>8} {r['wall_s']:>8.2f} {r['rps']:>7.2f} {r['p50_s']:>7.3f} "
                  f"{r['p99_s']:>7.3f}  {'batches by size: ' + str(r['batches']) if 'batches' in r else ''}")
    gain = results[f"{args.clients} clients, batched"]["rps"] / results[f"{args.clients} clients, max-batch 1"]["rps"]
    print(f"batching gain ({args.clients} clients, batched vs --max-batch 1): {gain:.2f}x (issue: >= 2.5x)")
    o = results["overhead"]
    print(f"HTTP overhead, {DEMO} (lookback {LOOKBACK}, pred {PRED}), median of {args.overhead_n}: "
          f"HTTP {o['http_ms']:.1f} ms, in-process ForecastService {o['in_process_ms']:.1f} ms, "
          f"overhead {o['overhead_ms']:.1f} ms")
    core = results["core"]
    for n in (1, args.clients):
        c = core[n]
        print(f"batched core, {n} series: {c['total_s']:.3f} s = prefill {c['prefill_s']:.3f} + tokenizer "
              f"{c['tokenizer_s']:.3f} + generated steps {c['steps_s']:.3f}")
    print(f"the most batching can gain here: {core['ceiling']:.2f}x (the server reached "
          f"{gain / core['ceiling']:.0%} of it)")
    print_exposure(results["exposure"])
    print(json.dumps({k: v for k, v in results.items()}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
