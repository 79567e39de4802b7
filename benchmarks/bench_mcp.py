"""Wall time of one MCP `forecast` call, as an agent's client sees it.

    .venv/bin/python benchmarks/bench_mcp.py                  # kronos-demo and a Kronos-small shape
    .venv/bin/python benchmarks/bench_mcp.py --pred-len 24 --pred-len 120 --repeat 5

For each model, `kronos-registry --offline mcp` is started as a real stdio subprocess and
driven by the SDK's client (mcp.client.stdio): the first `forecast` call (cold: it loads the
model) and then `--repeat` more (warm: the model stays loaded) are timed around
``call_tool``, so the time includes JSON-RPC, argument validation, the candle checks and
the service's batch window, not only the model.

Models: the packaged kronos-demo (a tiny random model), and a checkpoint with Kronos-small's
published shape (24.7M parameters) and random weights (seeded), registered as a local entry
of a temporary registry file and synced into a temporary store. Candles: 512 seeded
synthetic five-minute bars (benchmarks/bench_predict.py); the default lookback (what fits
the 512-bar context with the forecast).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL, SMALL_TOKENIZER = "kronos-small", "kronos-tokenizer-base"


def candles_csv(rows: int) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_predict import synthetic_candles

    frame, stamps = synthetic_candles(rows, seed=3)
    frame = frame.copy()
    frame.insert(0, "timestamps", stamps.dt.strftime("%Y-%m-%d %H:%M:%S"))
    return frame.to_csv(index=False)


def build_small_registry(folder: Path) -> Path:
    """A registry file with `bench-small` (Kronos-small's shape, random weights), synced."""
    import torch

    from kronos_registry import Registry
    from kronos_registry.kronos import PUBLISHED_CONFIGS, Kronos, KronosTokenizer

    for i, (name, cls) in enumerate(((SMALL_TOKENIZER, KronosTokenizer), (SMALL, Kronos))):
        torch.manual_seed(1234 + i)
        cls(**PUBLISHED_CONFIGS[name]).eval().save_pretrained(folder / "ckpt" / name)
    registry_file = folder / "models.yaml"
    registry_file.write_text(
        "schema: 1\n"
        "tokenizers:\n"
        "  bench-tokenizer:\n"
        f"    source: ./ckpt/{SMALL_TOKENIZER}\n"
        "models:\n"
        "  bench-small:\n"
        "    description: Kronos-small's shape with random weights (benchmark only)\n"
        f"    source: ./ckpt/{SMALL}\n"
        "    tokenizer: bench-tokenizer\n"
        "    context_length: 512\n")
    Registry(registry_file, folder / "store", offline=True).sync("bench-small")
    return registry_file


async def time_calls(server_args: list[str], mcp_args: list[str], env: dict, model: str, csv: str,
                     pred_len: int, repeat: int) -> tuple[list[float], list[float]]:
    """-> (wall seconds of each call, the server's own forecast seconds of each)."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = [str(Path(sys.executable).parent / "kronos-registry")]
    params = StdioServerParameters(command=command[0], args=[*server_args, "--offline", "mcp", *mcp_args], env=env)
    arguments = {"model": model, "csv": csv, "pred_len": pred_len, "seed": 0}
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                walls, inside = [], []
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    result = await session.call_tool("forecast", arguments)
                    walls.append(time.perf_counter() - started)
                    if result.is_error:
                        raise SystemExit(f"{model}: {result.content[0].text}")
                    inside.append(result.structured_content["timing"]["forecast_ms"] / 1000)
    return walls, inside


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred-len", type=int, action="append", help="bars to forecast (repeatable) [24, 120]")
    parser.add_argument("--repeat", type=int, default=3, help="warm calls after the cold one (at least 1) [3]")
    parser.add_argument("--rows", type=int, default=512, help="candles sent [512]")
    parser.add_argument("--threads", type=int, help="the server's --threads [torch's default]")
    args = parser.parse_args(argv)
    args.repeat = max(1, args.repeat)
    pred_lens = args.pred_len or [24, 120]

    import anyio
    import torch

    csv = candles_csv(args.rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_REGISTRY_", "HF_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    print(f"torch threads {args.threads or torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"load avg {os.getloadavg()[0]:.1f}; {args.rows} candles sent; seed 0, 1 sample")
    print("cold: the first call (loads the model); warm: median of the later ones; forecast: the server's "
          "own forecast_ms (the model's share of a warm call)")
    print(f"{'model':<34} {'pred_len':>8} {'cold s':>8} {'warm s':>8} {'forecast s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        registry_file = build_small_registry(tmp)
        cases = [("kronos-demo", ["--store", str(tmp / "demo-store")]),
                 ("bench-small", ["--registry", str(registry_file), "--store", str(tmp / "store")])]
        from kronos_registry import Registry

        Registry(store=tmp / "demo-store", offline=True).sync("kronos-demo")
        for model, server_args in cases:
            label = model if model == "kronos-demo" else f"{model} (Kronos-small shape)"
            for pred_len in pred_lens:
                mcp_args = ["--threads", str(args.threads)] if args.threads else []
                walls, inside = anyio.run(time_calls, server_args, mcp_args, env, model, csv, pred_len, args.repeat)
                print(f"{label:<34} {pred_len:>8} {walls[0]:>8.3f} {statistics.median(walls[1:]):>8.3f} "
                      f"{statistics.median(inside[1:]):>10.3f}")


if __name__ == "__main__":
    main()
