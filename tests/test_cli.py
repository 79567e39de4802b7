"""The `kronos-registry` command line, through real subprocesses: every command, every exit code.

Each run starts a fresh interpreter (the installed console script), with its own store, HF
home and working directory (tests/support/cli.py). The kronos-demo entry (a tiny checkpoint
shipped in the package) is synced once per module and copied where a test changes the store.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import filelock
import pytest

from tests.support.cli import DEMO, DEMO_TOKENIZER, PACKAGE_DIR, SAMPLE_CSV, Cli, synced_demo
from tests.support.olah import dead_endpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cli(tmp_path) -> Cli:
    """An empty store, offline."""
    return Cli(tmp_path)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Cli:
    """A store holding kronos-demo and its tokenizer, synced through the CLI. Do not modify it."""
    return synced_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def demo_copy(demo, tmp_path) -> Cli:
    """A private copy of the demo store, for tests that change it."""
    return demo.clone(tmp_path / "copy")


def no_traceback(result) -> bool:
    return "Traceback" not in result.output


def demo_ref_path(runner: Cli, entry: str = DEMO) -> Path:
    """The ref of a packaged entry (refs live in one namespace per registry file)."""
    from registry.spec import PACKAGED_REGISTRY_ID
    from registry.store import Store

    return Store(runner.store).ref_path(entry, PACKAGED_REGISTRY_ID)


def demo_object(runner: Cli, entry: str = DEMO) -> Path:
    ref = json.loads(demo_ref_path(runner, entry).read_text())
    return runner.store / "objects" / ref["artifact_id"]


# --- help, version, usage -----------------------------------------------------------------------


def test_module_help_lists_commands_and_exit_codes(cli):
    result = cli("--help", module=True)
    assert result.code == 0, result.output
    assert "python -m kronos_registry" in result.stdout
    for command in ("list", "show", "sync", "verify", "predict", "validate", "doctor",
                    "export", "import", "rm", "gc"):
        assert f"\n  {command} " in result.stdout, command
    assert "Exit codes:" in result.stdout and "10  an optional dependency" in result.stdout


@pytest.mark.real_exec  # the installed script's own start-up, on every run
def test_version_and_usage_errors_exit_2(cli):
    version = cli("--version")
    assert version.code == 0 and version.stdout.startswith("kronos-registry ")
    missing_input = cli("predict", DEMO, "--pred-len", "3")
    assert missing_input.code == 2 and "--input" in missing_input.stderr
    nothing_to_sync = cli("sync")
    assert nothing_to_sync.code == 2 and "--all" in nothing_to_sync.stderr


# --- list / show ---------------------------------------------------------------------------------


@pytest.mark.real_exec  # the installed script's own start-up, on every run
def test_list_json_has_every_field(cli):
    result = cli("list", "--json")
    assert result.code == 0, result.output
    entries = {item["name"]: item for item in json.loads(result.stdout)}
    fields = {"name", "kind", "params", "context_length", "available", "synced",
              "display_name", "description", "source", "tokenizer"}
    for item in entries.values():
        assert fields <= item.keys()
    assert entries["kronos-small"]["params"] == 24741376
    assert entries["kronos-small"]["context_length"] == 512
    assert entries["kronos-large"]["available"] is False
    assert entries[DEMO]["synced"] is False and entries[DEMO]["tokenizer"] == DEMO_TOKENIZER
    assert "random" in entries[DEMO]["description"]


def test_list_table(cli):
    result = cli("list")
    assert result.code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "PARAMS", "CONTEXT", "STATUS", "SIZE", "REVISION", "DESCRIPTION"]
    assert any(row.startswith("kronos-large") and "unavailable" in row for row in rows)


def test_show_unsynced_model(cli):
    result = cli("show", "kronos-small", "--json")
    assert result.code == 0, result.output
    info = json.loads(result.stdout)
    assert info["synced"] is False and info["store"] is None
    assert info["source"] == "hf://NeoQuasar/Kronos-small@901c26c1332695a2a8f243eb2f37243a37bea320"
    assert info["config"]["n_layers"] == 8 and info["tokenizer"] == "kronos-tokenizer-base"
    text = cli("show", "kronos-small")
    assert text.code == 0 and "not synced (run `kronos-registry sync kronos-small`)" in text.stdout


@pytest.mark.real_exec  # the installed script's own start-up, on every run
def test_show_unknown_name_exit_4_with_suggestion(cli):
    result = cli("show", "kronos-smal")
    assert result.code == 4
    assert "error: no entry named 'kronos-smal'" in result.stderr
    assert "did you mean 'kronos-small'" in result.stderr
    assert no_traceback(result)


@pytest.mark.real_exec  # the installed script's own start-up, on every run
def test_debug_shows_a_traceback(cli):
    plain = cli("show", "nope")
    debug = cli("--debug", "show", "nope")
    assert plain.code == debug.code == 4
    assert no_traceback(plain)
    assert "Traceback (most recent call last)" in debug.stderr


def test_unexpected_error_is_a_bug_report_exit_1(cli, tmp_path):
    # A bug injected at start-up (sitecustomize) stands for any unexpected exception.
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "from registry.spec import RegistrySpec\n"
        "def broken(self):\n    raise RuntimeError('injected bug')\n"
        "RegistrySpec.entries = broken\n")
    env = {"PYTHONPATH": os.pathsep.join([str(inject), cli.env()["PYTHONPATH"]])}
    plain = cli("list", env=env)
    assert plain.code == 1
    assert "internal error (RuntimeError: injected bug)" in plain.stderr and "--debug" in plain.stderr
    assert no_traceback(plain)
    debug = cli("--debug", "list", env=env)
    assert debug.code == 1 and "Traceback" in debug.stderr


# --- validate ------------------------------------------------------------------------------------


def test_validate_packaged_registry(cli):
    result = cli("validate")
    assert result.code == 0, result.output
    assert result.stdout.startswith("OK: 5 models (4 available), 3 tokenizers")
    assert str(PACKAGE_DIR / "models.yaml") in result.stdout


def test_validate_broken_file_exit_3_names_file_and_line(cli):
    broken = cli.root / "broken.yaml"
    broken.write_text(
        "schema: 1\n"
        "models:\n"
        "  my-model:\n"
        "    source: ./somewhere\n"
        "    tokenizer: kronos-tokenizer-base\n"
        "    context_lenght: 512\n")
    result = cli("--registry", broken, "validate")
    assert result.code == 3, result.output
    assert f"{broken}:6:" in result.stderr
    assert "context_length" in result.stderr  # the did-you-mean for the misspelt key
    assert no_traceback(result)


# --- sync / verify ------------------------------------------------------------------------------


def test_sync_demo_then_list_shows_synced(demo):
    again = demo("sync", DEMO)
    assert again.code == 0, again.output
    lines = again.stdout.splitlines()
    assert lines[0].startswith("present  kronos-demo-tokenizer") and "local--kronos-demo-tokenizer--" in lines[0]
    assert lines[1].startswith("present  kronos-demo ")
    entries = {item["name"]: item for item in json.loads(demo("list", "--json").stdout)}
    assert entries[DEMO]["synced"] and entries[DEMO_TOKENIZER]["synced"]
    assert entries[DEMO]["artifact_id"].startswith("local--kronos-demo--")


def test_a_batch_goes_on_past_a_failing_name_and_exits_with_its_code(demo):
    batch = demo("sync", "--json", "no-such-model", DEMO)
    assert batch.code == 4, batch.output
    results = {item["name"]: item for item in json.loads(batch.stdout)}
    assert results["no-such-model"]["status"] == "failed" and results["no-such-model"]["exit_code"] == 4
    assert results[DEMO]["status"] == "present"
    assert "1 of 2 entries failed to sync: no-such-model" in batch.stderr
    checked = demo("verify", DEMO, "no-such-model")
    assert checked.code == 4 and "ok      'kronos-demo'" in checked.stdout, checked.output
    assert "1 of 2 entries failed to pass verification: no-such-model" in checked.stderr


def test_verify_and_verify_deep(demo):
    cheap = demo("verify")
    assert cheap.code == 0, cheap.output
    assert "ok      'kronos-demo'" in cheap.stdout and "ok      'kronos-demo-tokenizer'" in cheap.stdout
    deep = demo("verify", "--deep", "--json", DEMO)
    assert deep.code == 0, deep.output
    [report] = json.loads(deep.stdout)
    assert report["ok"] and report["deep"] and "store-deep-hash" in report["checks"]


def test_corrupted_store_fails_verification_exit_6(demo_copy):
    weights = demo_object(demo_copy) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # same size: only a re-hash notices
    weights.chmod(0o644)
    weights.write_bytes(bytes(data))
    assert demo_copy("verify", DEMO).code == 0
    deep = demo_copy("verify", "--deep", DEMO)
    assert deep.code == 6, deep.output
    assert "sha256" in deep.stdout and "model.safetensors" in deep.stdout
    weights.write_bytes(bytes(data[:-10]))  # truncated: the cheap check sees the size
    cheap = demo_copy("verify")
    assert cheap.code == 6, cheap.output
    assert "FAILED  'kronos-demo'" in cheap.stdout and "ok      'kronos-demo-tokenizer'" in cheap.stdout
    assert "kronos-registry sync --force" in cheap.stderr


@pytest.mark.real_exec  # the installed script's own start-up, on every run
def test_sync_from_dead_endpoint_exit_5_quickly(tmp_path):
    registry = tmp_path / "dead.yaml"
    registry.write_text(
        "schema: 1\n"
        "tokenizers:\n"
        "  dead-tokenizer:\n"
        "    source: hf://acme/dead-tokenizer@0123456789abcdef0123456789abcdef01234567\n")
    online = Cli(tmp_path, offline=False, env={"HF_ENDPOINT": dead_endpoint()})
    result = online("--registry", registry, "sync", "dead-tokenizer", timeout=60)
    assert result.code == 5, result.output
    assert "127.0.0.1" in result.stderr and no_traceback(result)
    assert result.seconds < 20


def test_lock_held_elsewhere_exit_8(cli):
    from kronos_registry.api import Registry

    registry = Registry(store=cli.store, offline=True, env={})
    artifact = registry.loader.artifact_id(DEMO_TOKENIZER)
    lock = filelock.FileLock(str(registry.store.lock_path(artifact)))
    with lock.acquire(timeout=5):
        result = cli("sync", DEMO, env={"KRONOS_REGISTRY_LOCK_TIMEOUT": "0.5"})
    assert result.code == 8, result.output
    assert f"waiting for another process syncing {DEMO_TOKENIZER}" in result.stderr
    assert "gave up after 0.5 s" in result.stderr and no_traceback(result)


# --- predict -------------------------------------------------------------------------------------


def test_predict_demo_writes_csv_and_png_and_repeats_with_a_seed(demo, tmp_path):
    out, png, again = tmp_path / "out.csv", tmp_path / "out.png", tmp_path / "again.csv"
    common = ["predict", DEMO, "--input", SAMPLE_CSV, "--pred-len", "24", "--seed", "7"]
    result = demo(*common, "--output", out, "--plot", png, "--samples", "3")
    assert result.code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamps,open,high,low,close,volume,amount"
    assert len(lines) == 1 + 24
    assert lines[1].startswith("2024-01-04 04:10:00,")  # the bar after the input's last, 5 min on
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "horizon   24 bars of 5min" in result.stderr and "tiny demo model" in result.stderr
    repeat = demo(*common, "--output", again, "--samples", "3")
    assert repeat.code == 0, repeat.output
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.real_exec  # the installed script's own start-up, on every run
def test_predict_prints_a_table_without_output(demo):
    result = demo("-q", "predict", DEMO, "-i", SAMPLE_CSV, "-n", "5", "--lookback", "64", "--seed", "1")
    assert result.code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["TIMESTAMP", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "AMOUNT"]
    assert len(rows) == 5 and result.stderr == ""


def test_predict_bad_csv_exit_9_names_line_and_column(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = SAMPLE_CSV.read_text().splitlines()[:40]
    cells = lines[3].split(",")
    cells[4] = "oops"  # the close of the third bar, on line 4
    lines[3] = ",".join(cells)
    bad.write_text("\n".join(lines) + "\n")
    result = cli("predict", DEMO, "--input", bad, "--pred-len", "4")
    assert result.code == 9, result.output
    assert "line 4" in result.stderr and "close" in result.stderr
    assert no_traceback(result)


def test_predict_unavailable_model_exit_4(cli):
    result = cli("predict", "kronos-large", "--input", SAMPLE_CSV, "--pred-len", "4")
    assert result.code == 4, result.output
    assert "'kronos-large' is not available" in result.stderr and "not released" in result.stderr


def test_predict_offline_not_synced_exit_7(cli):
    result = cli("--offline", "predict", "kronos-small", "--input", SAMPLE_CSV, "--pred-len", "4")
    assert result.code == 7, result.output
    assert "'kronos-small' is not in the store" in result.stderr
    assert "kronos-registry sync kronos-small" in result.stderr and "kronos-registry import" in result.stderr


def test_predict_plot_without_matplotlib_exit_10(cli, tmp_path):
    fake = tmp_path / "no-matplotlib" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is hidden by the test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), cli.env()["PYTHONPATH"]])}
    result = cli("predict", DEMO, "-i", SAMPLE_CSV, "-n", "4", "--plot", tmp_path / "x.png", env=env)
    assert result.code == 10, result.output
    assert "pip install 'kronos-registry[plot]'" in result.stderr


# --- export / import ------------------------------------------------------------------------------


def test_export_import_round_trip_then_offline_predict(demo, tmp_path):
    bundle = tmp_path / "demo.tar"
    exported = demo("export", DEMO, "-o", bundle)
    assert exported.code == 0, exported.output
    assert "kronos-demo-tokenizer, kronos-demo" in exported.stdout

    fresh = Cli(tmp_path / "air-gapped")
    imported = fresh("import", bundle)
    assert imported.code == 0, imported.output
    registry = fresh.store / "registries" / "demo.yaml"
    assert f"registry {registry}" in imported.stdout
    objects = fresh.object_ids()
    assert len(objects) == 2

    listed = {i["name"]: i for i in json.loads(fresh("--registry", registry, "list", "--json").stdout)}
    assert listed[DEMO]["synced"] and listed[DEMO]["source"].startswith(str(fresh.store / "objects"))
    out = tmp_path / "out.csv"
    result = fresh("--offline", "--registry", registry, "predict", DEMO, "-i", SAMPLE_CSV, "-n", "6",
                   "-o", out, "--seed", "3")
    assert result.code == 0, result.output
    assert len(out.read_text().splitlines()) == 7
    assert fresh.object_ids() == objects  # nothing re-synced


def test_import_rejects_a_climbing_member_exit_9(cli, tmp_path):
    bundle = tmp_path / "evil.tar"
    with tarfile.open(bundle, "w") as tar:
        data = b"gotcha"
        info = tarfile.TarInfo("../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = cli("import", bundle)
    assert result.code == 9, result.output
    assert "../evil.txt" in result.stderr and no_traceback(result)
    assert not (cli.store / "evil.txt").exists() and not (cli.store.parent / "evil.txt").exists()


# --- rm / gc --------------------------------------------------------------------------------------


def test_rm_keeps_a_tokenizer_in_use(demo_copy):
    refused = demo_copy("rm", DEMO_TOKENIZER)
    assert refused.code == 2, refused.output
    assert "kronos-demo" in refused.stderr and "--force" in refused.stderr
    model_dir = demo_object(demo_copy)
    removed = demo_copy("rm", DEMO)
    assert removed.code == 0, removed.output
    assert removed.stdout.startswith("removed kronos-demo (local--kronos-demo--")
    assert not model_dir.exists()
    assert demo_copy("rm", DEMO_TOKENIZER).code == 0
    listed = {i["name"]: i for i in json.loads(demo_copy("list", "--json").stdout)}
    assert not listed[DEMO]["synced"] and not listed[DEMO_TOKENIZER]["synced"]


def test_gc_removes_unreferenced_artifacts(demo_copy):
    model_dir = demo_object(demo_copy)
    demo_ref_path(demo_copy).unlink()
    dry = demo_copy("gc", "--dry-run")
    assert dry.code == 0 and f"would remove {model_dir.name}" in dry.stdout
    assert model_dir.exists()
    done = demo_copy("gc")
    assert done.code == 0 and f"removed {model_dir.name}" in done.stdout
    assert not model_dir.exists() and demo_object(demo_copy, DEMO_TOKENIZER).exists()
    assert demo_copy("gc").stdout.strip() == "nothing to remove"


# --- doctor ---------------------------------------------------------------------------------------


def test_doctor_reports_without_leaking_the_token(demo):
    secret = "hf_do_not_print_me_123456"
    result = demo("doctor", "--json", env={"HF_TOKEN": secret})
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert {"version", "python", "torch", "huggingface_hub", "registry", "store", "endpoints",
            "offline", "hf_token", "entries"} <= report.keys()
    assert report["hf_token"] == "set" and secret not in result.output
    assert report["offline"] is True and report["registry"]["valid"]
    assert report["store"]["writable"] and report["store"]["free_bytes"] > 0
    assert report["endpoints"][0]["reachable"] is None  # offline: not asked
    health = {e["name"]: e for e in report["entries"]}
    assert health[DEMO]["check"] == "ok" and health["kronos-small"]["check"] == "not synced"
    text = demo("doctor")
    assert text.code == 0 and "HF_TOKEN         not set" in text.stdout


# --- predict: lookback, timestamps (issue 10, items 3 and 6) --------------------------------------


def test_predict_default_lookback_fits_the_context_with_the_forecast(demo):
    """lookback + pred_len over the context makes every step recompute the window (13x slower)."""
    result = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "24", "--seed", "1")  # 512 rows, context 512
    assert result.code == 0, result.output
    assert "used the last 488 (default: context 512 - pred_len 24;" in result.stderr
    assert "recompute" not in result.stderr
    longer = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "24", "--lookback", "500", "--seed", "1")
    assert longer.code == 0, longer.output
    assert "used the last 500 (--lookback;" in longer.stderr
    assert "lookback 500 + pred-len 24 exceeds the context of 512" in longer.stderr
    assert "the default 488 keeps every step cached" in longer.stderr


def business_day_csv(path: Path, *, epoch_ms: bool) -> Path:
    import pandas as pd

    days = pd.bdate_range("2024-01-01", "2024-03-29")  # Mon 1 Jan .. Fri 29 Mar 2024
    days = days.delete(days.get_loc(pd.Timestamp("2024-02-19")))  # a market holiday: one gap
    stamps = [str(int(d.timestamp() * 1000)) for d in days] if epoch_ms else [f"{d:%Y-%m-%d}" for d in days]
    lines = ["timestamps,open,high,low,close,volume"]
    lines += [f"{t},{100 + i % 7},{101 + i % 7},{99 + i % 7},{100.5 + i % 7},{1000 + i}" for i, t in enumerate(stamps)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_predict_epoch_millisecond_business_days_skip_the_weekend_and_report_gaps(demo, tmp_path):
    candles = business_day_csv(tmp_path / "daily.csv", epoch_ms=True)
    out = tmp_path / "out.csv"
    result = demo("predict", DEMO, "-i", candles, "-n", "3", "--seed", "1", "-o", out)
    assert result.code == 0, result.output
    stamps = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert stamps == ["2024-04-01", "2024-04-02", "2024-04-03"]  # not Saturday 30 March
    assert "business days after the last bar" in result.stderr
    assert "timestamps read as Unix milliseconds (UTC)" in result.stderr
    assert "gaps      1 (largest 4d: 2024-02-16 00:00 -> 2024-02-20 00:00)" in result.stderr


def test_predict_takes_explicit_future_timestamps_and_checks_them(demo, tmp_path):
    future = tmp_path / "session.csv"
    wanted = ["2024-01-04 09:30:00", "2024-01-04 09:35:00", "2024-01-04 13:00:00"]
    future.write_text("timestamps\n" + "\n".join(wanted) + "\n")
    out = tmp_path / "out.csv"
    result = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "--future-timestamps", future, "-o", out,
                  "--seed", "1")
    assert result.code == 0, result.output
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == wanted
    assert f"future    from {future}" in result.stderr
    wrong = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "4", "--future-timestamps", future)
    assert wrong.code == 9, wrong.output
    assert str(future) in wrong.stderr and "has 3 future timestamp(s), but --pred-len is 4" in wrong.stderr
    assert "--pred-len 3" in wrong.stderr and no_traceback(wrong)


# --- messages name the model to sync, not its tokenizer (issue 10 item 4) -------------------------


def test_offline_sync_all_and_export_name_the_model_to_sync(cli, tmp_path):
    synced = cli("--offline", "sync", "--all")
    assert synced.code == 7, synced.output
    assert "error: 'kronos-small' is not in the store" in synced.stderr
    assert "hint: run `kronos-registry sync kronos-small`" in synced.stderr
    assert "error: 'kronos-mini' is not in the store" in synced.stderr
    assert no_traceback(synced)
    exported = cli("--offline", "export", "kronos-small", "-o", tmp_path / "x.tar")
    assert exported.code == 7, exported.output
    assert "'kronos-small' is not in the store" in exported.stderr
    assert "kronos-registry sync kronos-small`" in exported.stderr
    assert "sync kronos-tokenizer-base" not in exported.stderr


# --- CLI consistency (issue 10 item 7) -------------------------------------------------------------


def test_global_options_work_after_the_command(demo, tmp_path):
    out = tmp_path / "out.csv"
    result = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "-o", out, "--seed", "1",
                  "-q", "--offline", "--store", demo.store, env={"KRONOS_REGISTRY_HOME": str(tmp_path / "no")})
    assert result.code == 0, result.output
    assert result.stderr == ""  # -q after the command silences the summary
    assert len(out.read_text().splitlines()) == 4 and not (tmp_path / "no").exists()
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("schema: 1\nmodels:\n  extra-model:\n    source: hf://org/repo@main\n"
                       "    tokenizer: kronos-tokenizer-base\n    context_length: 64\n")
    listed = demo("list", "--json", "--registry", overlay)
    assert listed.code == 0 and "extra-model" in {i["name"] for i in json.loads(listed.stdout)}
    failed = demo("show", "no-such-entry", "--debug")
    assert failed.code == 4 and "Traceback" in failed.stderr


def test_every_result_printing_command_takes_json(demo_copy, tmp_path):
    def as_json(*args):
        result = demo_copy(*args, "--json")
        assert result.code == 0, result.output
        return json.loads(result.stdout)

    assert as_json("validate")["valid"] is True
    bundle = tmp_path / "demo.tar"
    exported = as_json("export", DEMO, "-o", bundle)
    assert exported["entries"] == [DEMO_TOKENIZER, DEMO] and exported["bytes"] > 0
    # Into a fresh store: imported entries overlay the packaged ones by name (so importing the
    # demo into the store that exported it would make `rm` below keep the packaged ref's object).
    fresh = Cli(tmp_path / "fresh")
    result = fresh("import", bundle, "--json")
    assert result.code == 0, result.output
    imported = json.loads(result.stdout)
    assert len(imported["imported"]) == 2 and imported["present"] == []
    removed = as_json("rm", DEMO)
    assert removed[0]["name"] == DEMO and removed[0]["removed"] and removed[0]["size"] > 0
    tokenizer = demo_object(demo_copy, DEMO_TOKENIZER).name
    demo_ref_path(demo_copy, DEMO_TOKENIZER).unlink()
    collected = as_json("gc")
    assert [o["artifact_id"] for o in collected["objects"]] == [tokenizer]
    assert collected["freed_bytes"] > 0 and collected["dry_run"] is False


def test_list_shows_size_and_revision_and_show_the_counted_params(demo):
    listed = {i["name"]: i for i in json.loads(demo("list", "--json").stdout)}
    assert listed[DEMO]["size"] > 1_000_000 and listed["kronos-small"]["size"] is None
    row = next(line for line in demo("list").stdout.splitlines() if line.startswith(DEMO + " "))
    digest = listed[DEMO]["artifact_id"].rsplit("--", 1)[1][:12]
    assert "1.5 MB" in row and f"local@{digest}" in row
    shown = demo("show", DEMO)
    assert "380,608 declared, 380,608 counted in the stored checkpoint" in shown.stdout, shown.output
    assert json.loads(demo("show", DEMO, "--json").stdout)["counted_params"] == 380608


def test_doctor_shows_the_store_disk_usage(demo):
    report = json.loads(demo("doctor", "--json").stdout)
    usage = report["store"]["usage"]
    assert usage["objects"] == 2 and usage["total_bytes"] >= usage["parts"]["objects"] > 1_000_000
    assert "  disk usage     1." in demo("doctor").stdout


def test_objects_synced_through_another_registry_are_listed_and_removed_by_id(demo_copy, tmp_path):
    from tests.support.kronos_checkpoints import model_checkpoint

    other = tmp_path / "other-project"
    model_checkpoint(other / "ckpt")
    (other / "models.yaml").write_text(
        f"schema: 1\nmodels:\n  their-model:\n    source: ./ckpt\n    tokenizer: {DEMO_TOKENIZER}\n"
        "    context_length: 64\n")
    assert demo_copy("--registry", other / "models.yaml", "sync", "their-model").code == 0
    # From this project (the packaged registry), their-model is no entry, yet its object is visible.
    stored = {o["artifact_id"]: o for o in json.loads(demo_copy("list", "--stored", "--json").stdout)}
    [theirs] = [o for o in stored.values() if [r["entry"] for r in o["refs"]] == ["their-model"]]
    assert theirs["kind"] == "model" and theirs["size"] > 0 and not theirs["in_this_registry"]
    table_text = demo_copy("list", "--stored").stdout
    assert theirs["artifact_id"] in table_text and "their-model" in table_text
    assert demo_copy("rm", "their-model").code == 4  # not an entry of this registry
    removed = demo_copy("rm", theirs["artifact_id"])
    assert removed.code == 0, removed.output
    assert removed.stdout.startswith(f"removed {theirs['artifact_id']} (") and "refs removed: their-model" in removed.stdout
    assert theirs["artifact_id"] not in demo_copy.object_ids()
    assert not (demo_copy.store / "refs" / "their-model.json").exists()
    assert len(demo_copy.object_ids()) == 2  # the demo's stay


def on_a_terminal(runner: Cli, *args) -> str:
    """Run the CLI with stderr on a pseudo-terminal (as a person sees it) -> what stderr showed."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    from tests.support.cli import console_script

    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a real terminal's size
    proc = subprocess.Popen([*console_script(), *map(str, args)], cwd=runner.cwd, env=runner.env(),
                            stdout=subprocess.PIPE, stderr=side)
    os.close(side)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    proc.stdout.close()
    assert proc.wait(120) == 0, seen.decode(errors="replace")
    return seen.decode(errors="replace")


def test_local_sync_of_a_large_checkpoint_shows_progress_on_a_terminal(cli, tmp_path):
    from tests.support.kronos_checkpoints import model_checkpoint

    model_checkpoint(tmp_path / "big", n_layers=4, d_model=256, n_heads=4, ff_dim=512)  # ~16 MB
    registry = tmp_path / "models.yaml"
    registry.write_text(f"schema: 1\nmodels:\n  big:\n    source: ./big\n    tokenizer: {DEMO_TOKENIZER}\n"
                        "    context_length: 64\n")

    def sync_on_a_terminal(*extra):
        return on_a_terminal(cli, "--registry", registry, "sync", "big", *extra)

    shown = sync_on_a_terminal("--force")
    assert "copying big:" in shown and "/15.7M" in shown and "B/s]" in shown, shown
    quiet = sync_on_a_terminal("--force", "-q")
    assert "copying big" not in quiet, quiet


# --- add: register a checkpoint without editing YAML (issue 10 item 8) ------------------------------

USER_REGISTRY = """\
# my team's models -- keep this comment
schema: 1

models:
  # the old one, kept for comparison
  old-model:
    source: ./nowhere-yet
    tokenizer: zzz-tokenizer
    context_length: 512
    available: false
    reason: retired   # trailing comment
  # end of models

tokenizers:
  zzz-tokenizer:   # out of alphabetical order on purpose
    source: hf://org/tok@main
"""


def test_add_appends_a_commented_entry_and_syncs_it(cli, tmp_path):
    from tests.support.kronos_checkpoints import model_checkpoint

    model_checkpoint(cli.cwd / "outputs" / "ft", seed=4)
    registry = cli.cwd / "team.yaml"
    registry.write_text(USER_REGISTRY)
    result = cli("add", "my-ft", "outputs/ft", "--tokenizer", DEMO_TOKENIZER, "--context-length", "64",
                 "--registry", registry)
    assert result.code == 0, result.output
    text = registry.read_text()
    added = [line for line in text.splitlines() if line not in USER_REGISTRY.splitlines()]
    # Every original line is there, in order; the entry sits at the end of `models:`.
    assert "\n".join(line for line in text.splitlines() if line not in added) == USER_REGISTRY.rstrip("\n")
    assert text.index("my-ft:") < text.index("  # end of models") < text.index("tokenizers:")
    assert added[0].startswith("  # added by `kronos-registry add` on ") and added[0].endswith("/outputs/ft:")
    assert "164,704 parameters" in added[1]
    assert '    source: "./outputs/ft"' in added and f"    tokenizer: {DEMO_TOKENIZER}" in added
    line = text.splitlines().index("  my-ft:") + 1
    assert result.stdout.startswith(f"added    my-ft to {registry}:{line} (model, 164,704 params")
    assert "fetched  my-ft" in result.stdout
    listed = {i["name"]: i for i in json.loads(cli("--registry", registry, "list", "--json").stdout)}
    assert listed["my-ft"]["synced"] and listed["old-model"]["reason"] == "retired"
    predicted = cli("--registry", registry, "predict", "my-ft", "-i", SAMPLE_CSV, "-n", "2", "-q")
    assert predicted.code == 0, predicted.output


def test_add_creates_the_file_and_takes_tokenizer_and_context_from_the_published_shape(cli):
    import shutil

    shutil.copytree(PACKAGE_DIR / "data" / "demo" / "model", cli.cwd / "demo-finetune")
    result = cli("add", "demo-ft", "./demo-finetune", "--json")
    assert result.code == 0, result.output
    info = json.loads(result.stdout)
    assert info["registry"] == str(cli.cwd / "models.yaml") and info["params"] == 380608
    assert (info["tokenizer"], info["context_length"]) == (DEMO_TOKENIZER, 512)
    assert info["chosen"] == "the shape of kronos-demo"
    assert [s["name"] for s in info["synced"]] == [DEMO_TOKENIZER, "demo-ft"]
    text = (cli.cwd / "models.yaml").read_text()
    assert text.splitlines()[2] == "schema: 1" and "  demo-ft:\n" in text
    assert cli("validate").code == 0


def test_add_refuses_a_checkpoint_that_fails_verification_and_leaves_the_file_as_it_was(cli):
    from tests.support.kronos_checkpoints import model_checkpoint

    model_checkpoint(cli.cwd / "bad", s1_bits=8, s2_bits=8)  # cannot pair with a 10+10-bit tokenizer
    registry = cli.cwd / "team.yaml"
    registry.write_text(USER_REGISTRY)
    failed = cli("add", "bad-ft", "./bad", "--tokenizer", DEMO_TOKENIZER, "--registry", registry)
    assert failed.code == 6, failed.output
    assert "s1_bits" in failed.stderr and no_traceback(failed)
    assert f"the entry was not added; {registry} is as it was" in failed.stderr
    assert registry.read_text() == USER_REGISTRY
    created = cli("add", "bad-ft", "./bad", "--tokenizer", DEMO_TOKENIZER, "--registry", "new/models.yaml")
    assert created.code == 6, created.output
    assert not (cli.cwd / "new" / "models.yaml").exists()  # no file before: none after


def test_add_refuses_clashes_and_the_packaged_file(cli):
    taken = cli("add", DEMO, str(PACKAGE_DIR / "data" / "demo" / "model"))
    assert taken.code == 2 and "already exists" in taken.stderr
    packaged = cli("add", "x-ft", str(PACKAGE_DIR / "data" / "demo" / "model"),
                   "--registry", PACKAGE_DIR / "models.yaml")
    assert packaged.code == 2 and "packaged registry file" in packaged.stderr
    missing = cli("add", "x-ft", "./no-such-folder")
    assert missing.code == 2 and "is not a folder" in missing.stderr
    assert not (cli.cwd / "models.yaml").exists()


# --- predict: the forecast cuts (issue 23 item 8) -----------------------------------------------------


def test_predict_json_is_the_http_body_and_quantile_columns_for_one_series(demo, tmp_path):
    from kronos_registry.candles import invalid_rows

    out = tmp_path / "out.csv"
    common = ["predict", DEMO, "-i", SAMPLE_CSV, "-n", "6", "--samples", "8", "--seed", "4",
              "--quantiles", "0.2,0.8"]
    as_json = demo(*common, "--json", "-o", out)
    assert as_json.code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert set(body) == {"model", "artifact", "timestamps", "forecast", "seed", "timing", "quantiles"}
    assert body["seed"] == 4 and sorted(body["quantiles"]) == ["0.2", "0.8"] and len(body["timestamps"]) == 6
    header, *rows = out.read_text().splitlines()
    assert header.split(",")[7:9] == ["open_q0.2", "open_q0.8"] and len(rows) == 6
    first = [float(v) for v in rows[0].split(",")[1:]]
    assert first[:6] == pytest.approx([body["forecast"][c][0] for c in body["forecast"]], rel=1e-6)
    assert first[6] == pytest.approx(body["quantiles"]["0.2"]["open"][0], rel=1e-6)
    # every row of the CSV, mean and quantiles, is a valid candle (issue 23 item 9)
    table = [[float(v) for v in row.split(",")[1:]] for row in rows]
    import numpy as np

    values = np.array(table)
    for i in range(3):  # the mean, then each quantile's six columns (column-major: open_q0.2, open_q0.8, ...)
        faces = values[:, :6] if i == 0 else values[:, 6:].reshape(6, 6, 2)[:, :, i - 1]
        assert not invalid_rows(faces).any(), faces


def test_predict_dash_output_writes_the_csv_to_stdout(demo, tmp_path):
    result = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "--seed", "1", "-o", "-")
    assert result.code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header == "timestamps,open,high,low,close,volume,amount" and len(rows) == 3
    assert "wrote     stdout (3 rows)" in result.stderr and not (demo.cwd / "-").exists()


def test_predict_usage_errors_name_the_option_given(demo):
    on_error = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "--quantiles", "0.5")
    assert on_error.code == 2 and "--quantiles" in on_error.stderr and "--samples" in on_error.stderr
    assert "--on-error" not in on_error.stderr, on_error.stderr
    ray = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "--ray")
    assert ray.code == 2 and "--ray applies to many series" in ray.stderr, ray.stderr
    both = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "--json", "-o", "-")
    assert both.code == 2 and "stdout" in both.stderr and no_traceback(both)


def test_a_long_single_series_forecast_shows_progress_on_a_terminal(demo, tmp_path):
    args = ["predict", DEMO, "-i", SAMPLE_CSV, "-n", "480", "--samples", "16", "--seed", "1", "-o", tmp_path / "o.csv"]
    shown = on_a_terminal(demo, *args)
    assert "forecast:" in shown and "/480" in shown, shown
    assert "forecast:" not in on_a_terminal(demo, "-q", *args)


def test_a_csv_written_with_the_pandas_index_is_read_with_a_note(demo, tmp_path):
    import pandas as pd

    frame = pd.read_csv(SAMPLE_CSV, parse_dates=["timestamps"]).set_index("timestamps")
    frame.index.name = None
    frame.to_csv(tmp_path / "indexed.csv")  # header ",open,high,...": the dates in an unnamed column
    assert (tmp_path / "indexed.csv").read_text().startswith(",open,")
    indexed = demo("predict", DEMO, "-i", tmp_path / "indexed.csv", "-n", "3", "--seed", "2", "-o", "-")
    plain = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "3", "--seed", "2", "-o", "-")
    assert indexed.code == 0, indexed.output
    assert "read the unnamed first column" in indexed.stderr and "as timestamps" in indexed.stderr
    assert indexed.stdout == plain.stdout
