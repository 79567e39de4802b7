"""Readers against writers of the same entry, as real processes sharing one store.

Reader processes call ``load_predictor`` in a loop while a writer process runs the CLI's
`sync --force`, `gc`, `rm` and `sync` of the very entries they load. Every load must give a
complete predictor (its weights checksummed against the checkpoint) or, only while `rm` runs,
a clear "not in the store"; never a raw error, never half an object. A repair alone
(`sync --force`, `gc`) must never make a load fail at all.

The phases are bounded in time (a few seconds each, tiny checkpoints), so the whole file
runs in about half a minute while still making hundreds of loads race the writer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kronos_registry import Registry
from tests.support.kronos_checkpoints import model_checkpoint, tokenizer_checkpoint
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys

READERS = 2
# (seconds, writer commands run in a loop) for each phase; readers load throughout.
REPAIR = (10.0, "sync tiny --force,sync tiny-tokenizer --force,gc")
REMOVE = (10.0, "rm tiny,sync tiny,gc,rm tiny,gc,sync tiny --force")

READER = textwrap.dedent("""
    import json, sys, time, traceback
    from pathlib import Path
    from kronos_registry import Registry
    from registry.errors import NotSyncedError
    import torch, safetensors.torch, kronos_registry.kronos.model, kronos_registry.kronos.predictor
    import kronos_registry.kronos.tokenizer
    torch.nn.Embedding(2, 2, device="meta")

    registry_path, signals, expected = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    registry = Registry(registry_path, offline=True)
    (signals / f"ready-{sys.argv[4]}").touch()
    while not (signals / "phase-0").exists():
        time.sleep(0.005)
    phases = []
    while not (signals / "stop").exists():
        phase = len(list(signals.glob("phase-*"))) - 1
        while len(phases) <= phase:
            phases.append({"ok": 0, "not_synced": 0, "half_read": 0, "raw": 0, "errors": []})
        counts = phases[phase]
        try:
            predictor = registry.load_predictor("tiny")
        except NotSyncedError:
            counts["not_synced"] += 1
            continue
        except BaseException as exc:
            counts["raw"] += 1
            counts["errors"].append("".join(traceback.format_exception_only(type(exc), exc)).strip()[-400:])
            continue
        total = sum(float(t.double().sum()) for t in
                    [*predictor.model.state_dict().values(), *predictor.tokenizer.state_dict().values()])
        counts["ok" if abs(total - expected) < 1e-6 * max(1.0, abs(expected)) else "half_read"] += 1
    for counts in phases:
        counts["errors"] = counts["errors"][:5]
    print(json.dumps(phases))
""")

WRITER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from kronos_registry.cli import cli

    registry_path, signals, phases = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    def run(args):
        return cli.main(["--registry", registry_path, "--offline", "-q", *args],
                        prog_name="kronos-registry", standalone_mode=False) or 0
    run(["sync", "tiny", "--force"])  # warm up: the first sync imports torch and the checks
    (signals / "ready-writer").touch()
    while len(list(signals.glob("ready-*"))) < int(sys.argv[4]):
        time.sleep(0.005)
    reports = []
    for index, (seconds, plan) in enumerate(phases):
        (signals / f"phase-{index}").touch()
        done, codes, raw = 0, {}, []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for args in (cmd.split() for cmd in plan.split(",")):
                try:
                    code = run(args)
                except BaseException as exc:
                    code = "raised"
                    raw.append(f"{' '.join(args)}: {type(exc).__name__}: {exc}"[-400:])
                key = f"{' '.join(args)} -> {code}"
                codes[key] = codes.get(key, 0) + 1
                done += 1
        reports.append({"done": done, "codes": codes, "raw": raw[:5]})
    (signals / "stop").touch()
    print(json.dumps(reports))
""")


@pytest.fixture
def project(tmp_path, monkeypatch):
    tokenizer_checkpoint(tmp_path / "ckpt" / "tokenizer")
    model_checkpoint(tmp_path / "ckpt" / "model")
    registry_path = tmp_path / "models.yaml"
    registry_path.write_text(registry_yaml({"tiny-tokenizer": tokenizer_keys("./ckpt/tokenizer")},
                                           {"tiny": model_keys("./ckpt/model", "tiny-tokenizer")}))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KRONOS_REGISTRY_", "HF_", "HUGGINGFACE_"))}
    env.update(KRONOS_REGISTRY_HOME=str(tmp_path / "store"), HF_HOME=str(tmp_path / "hf-home"),
               KRONOS_REGISTRY_OFFLINE="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    registry = Registry(registry_path, offline=True)
    predictor = registry.load_predictor("tiny")  # syncs both entries from their folders
    expected = sum(float(t.double().sum()) for t in
                   [*predictor.model.state_dict().values(), *predictor.tokenizer.state_dict().values()])
    return registry_path, env, expected


def race(project, tmp_path: Path, phases) -> tuple[list[dict], list[dict]]:
    """Run the phases; per phase, the readers' summed counts and the writer's report."""
    registry_path, env, expected = project
    signals = tmp_path / "signals"
    signals.mkdir()
    scripts = [[READER, str(registry_path), str(signals), repr(expected), str(i)] for i in range(READERS)]
    scripts.append([WRITER, str(registry_path), str(signals), json.dumps(phases), str(READERS + 1)])
    # Output goes to files, not pipes: a pipe read only after another process's (communicate()
    # one at a time) fills up, and a writer blocked on its output never says "stop".
    logs = [(tmp_path / f"process-{i}.out", tmp_path / f"process-{i}.err") for i in range(len(scripts))]
    everyone = []
    for (out, err), script in zip(logs, scripts):
        with out.open("w") as stdout, err.open("w") as stderr:
            everyone.append(subprocess.Popen([sys.executable, "-c", *script], env=env, cwd=registry_path.parent,
                                             stdout=stdout, stderr=stderr))
    for process in everyone:
        process.wait(timeout=240 + sum(seconds for seconds, _ in phases))
    outputs = [(out.read_text(), err.read_text()) for out, err in logs]
    for process, (_, err) in zip(everyone, outputs):
        assert process.returncode == 0, err[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    loads = []
    for index in range(len(phases)):
        per_reader = [r[index] for r in reports[:-1] if len(r) > index]
        loads.append({key: (sum(r[key] for r in per_reader) if key != "errors" else
                            [e for r in per_reader for e in r[key]]) for key in per_reader[0]})
    return loads, reports[-1]


def test_loads_against_repair_gc_rm_and_sync_of_the_same_entry_in_other_processes(project, tmp_path):
    (repair, remove), (repair_writer, remove_writer) = race(project, tmp_path, [REPAIR, REMOVE])
    print(f"\nrepair + gc: loads {repair}; writer {repair_writer}"
          f"\nrm + sync + gc: loads {remove}; writer {remove_writer}")
    for loads, writer in ((repair, repair_writer), (remove, remove_writer)):
        assert not writer["raw"] and all(key.endswith("-> 0") for key in writer["codes"]), writer
        assert writer["done"] >= 20, writer
        assert loads["raw"] == 0 and not loads["errors"], loads  # never a raw error
        assert loads["half_read"] == 0, loads  # never half an object
        assert loads["ok"] >= 25, loads
    # A repair never makes a load fail; `rm` may, but only as a clear "not in the store".
    assert repair["not_synced"] == 0, repair
