"""Security properties, proven through the real `kronos-registry` subprocess.

- `import` rejects bundle members with absolute paths, `..`, symbolic and hard links (exit 9),
  before writing anything: neither the would-be escape paths nor the store appear on disk.
- Pickle weights are refused by default; with `allow_pickle: true` they are read with
  `torch.load(weights_only=True)`, so a malicious pickle is refused, never executed (the
  payload is shown to be live by loading it unsafely in a throwaway process).
- `HF_TOKEN` never shows in the store, manifests, refs, bundles, the Hugging Face cache or any
  output, including failing syncs against a dead endpoint and a sync from an olah mirror.
- What sync, import and export create follows the user's umask and is never world-writable.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import (
    DEMO,
    DEMO_MODEL_DIR,
    DEMO_TOKENIZER,
    SAMPLE_CSV,
    Cli,
    Result,
    console_script,
    synced_demo,
)
from tests.support.olah import dead_endpoint, free_port
from tests.support.trees import every_path

# Distinctive, so a grep cannot match anything by chance; long enough for every redactor.
FAKE_TOKEN = "hf_KronosRegistryTestToken_4c1d9e7a2b6f0835"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Cli:
    """A store holding kronos-demo and its tokenizer. Do not modify it."""
    return synced_demo(tmp_path_factory.mktemp("security-demo"))


@pytest.fixture(scope="module")
def demo_bundle(demo, tmp_path_factory) -> Path:
    bundle = tmp_path_factory.mktemp("security-bundle") / "demo.tar"
    result = demo("export", DEMO, "-o", bundle)
    assert result.code == 0, result.output
    return bundle


# =============================================================================================
# Bundles: unsafe members are rejected before anything is written
# =============================================================================================


def _read_members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(bundle) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]


def _write_bundle(path: Path, members, *, gzip: bool = False) -> Path:
    with tarfile.open(path, "w:gz" if gzip else "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, *, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


# Each evil member comes LAST, after every good file: an importer that wrote as it read would
# already have put the good files in place; ours must check every header first.
# `outside` is a folder beside the store (the test's tmp folder); `artifact` a real artifact id.
UNSAFE_MEMBERS = {
    "absolute-path": lambda outside, artifact: [
        _member(str(outside / "escape-absolute.txt"), data=b"pwned\n")],
    "dotdot": lambda outside, artifact: [
        _member(f"objects/{artifact}/../../../escape-dotdot.txt", data=b"pwned\n")],
    "dotdot-at-the-top": lambda outside, artifact: [
        _member("../escape-top.txt", data=b"pwned\n")],
    "symlink-out-then-file-through-it": lambda outside, artifact: [
        _member(f"objects/{artifact}/sneaky", kind=tarfile.SYMTYPE, linkname=str(outside / "escape-link")),
        _member(f"objects/{artifact}/sneaky/payload.txt", data=b"pwned\n")],
    "symlink-to-system-file": lambda outside, artifact: [
        _member(f"objects/{artifact}/passwd", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
    "hardlink-to-outside-file": lambda outside, artifact: [
        _member(f"objects/{artifact}/victim", kind=tarfile.LNKTYPE, linkname=str(outside / "victim.txt"))],
}
ESCAPES = ("escape-absolute.txt", "escape-dotdot.txt", "escape-top.txt", "escape-link")


@pytest.mark.parametrize("gzip", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("kind", sorted(UNSAFE_MEMBERS))
def test_import_rejects_unsafe_members_and_writes_nothing(demo, demo_bundle, tmp_path, kind, gzip):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("not yours\n")
    members = _read_members(demo_bundle)
    artifact = next(m.name.split("/")[1] for m, _ in members if m.name.startswith("objects/"))
    evil = UNSAFE_MEMBERS[kind](outside, artifact)
    bundle = _write_bundle(tmp_path / ("evil.tar.gz" if gzip else "evil.tar"), members + evil, gzip=gzip)

    fresh = Cli(tmp_path / "target")
    result = fresh("import", bundle)

    assert result.code == 9, result.output
    assert "Traceback" not in result.output
    assert evil[0][0].name in result.stderr  # the message names the member
    assert "nothing was imported" in result.stderr
    # Nothing landed anywhere: not where the member pointed, not beside the store, not in it.
    for root in (outside, tmp_path, fresh.root, fresh.cwd, fresh.store.parent):
        for name in ESCAPES:
            assert not os.path.lexists(root / name), root / name
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert victim.read_text() == "not yours\n" and victim.stat().st_nlink == 1
    assert not fresh.store.exists(), [str(p) for p in every_path(fresh.store)]


# =============================================================================================
# Pickle weights
# =============================================================================================


class _Payload:
    """Unpickling this calls shutil.copyfile(source, marker): code execution, made visible."""

    def __init__(self, source: Path, marker: Path):
        self.args = (str(source), str(marker))

    def __reduce__(self):
        return shutil.copyfile, self.args


def _pickle_entry(folder: Path, weights: Path, *, allow_pickle: bool) -> Path:
    """A registry file with `bad-model`: the demo config beside ``weights`` as pytorch_model.bin."""
    checkpoint = folder / "checkpoint"
    checkpoint.mkdir(parents=True)
    shutil.copyfile(DEMO_MODEL_DIR / "config.json", checkpoint / "config.json")
    shutil.copyfile(weights, checkpoint / "pytorch_model.bin")
    opt_in = "    allow_pickle: true\n    files: [config.json, pytorch_model.bin]\n" if allow_pickle else ""
    registry = folder / "models.yaml"
    registry.write_text("schema: 1\nmodels:\n  bad-model:\n    source: ./checkpoint\n"
                        f"    tokenizer: {DEMO_TOKENIZER}\n    context_length: 512\n{opt_in}")
    return registry


@pytest.fixture(scope="module")
def pickles(tmp_path_factory):
    """A benign state-dict pickle and a malicious one (plus the marker its payload would create)."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("pickles")
    benign = root / "benign.bin"
    torch.save(load_file(str(DEMO_MODEL_DIR / "model.safetensors")), benign)
    marker = root / "PWNED-marker"
    evil = root / "evil.bin"
    torch.save({"transformer.0.ffn.w1.weight": _Payload(DEMO_MODEL_DIR / "config.json", marker)}, evil)
    return benign, evil, marker


def test_the_malicious_pickle_is_live(tmp_path):
    # Proof that the refusals below mean something: the same kind of payload, loaded unsafely
    # in a throwaway process, runs. (Its own marker: the shared one must stay absent.)
    import torch

    marker = tmp_path / "unsafe-load-marker"
    evil = tmp_path / "evil.bin"
    torch.save({"transformer.0.ffn.w1.weight": _Payload(DEMO_MODEL_DIR / "config.json", marker)}, evil)
    done = subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
                           str(evil)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker.is_file(), "an unsafe torch.load should have run the payload"


def test_pickle_weights_are_refused_by_default(demo, pickles, tmp_path):
    _, evil, marker = pickles
    registry = _pickle_entry(tmp_path, evil, allow_pickle=False)
    copy = demo.clone(tmp_path / "copy")
    objects_before = copy.object_ids()
    result = copy("--registry", registry, "sync", "bad-model")
    assert result.code in (5, 6), result.output
    assert "allow_pickle" in result.stderr and "Traceback" not in result.output
    assert not marker.exists()
    assert copy.object_ids() == objects_before
    assert not list((copy.store / "staging").iterdir())


def test_opted_in_pickle_loads_with_weights_only(demo, pickles, tmp_path):
    # The opt-in path works for a plain state dict: the refusal below is about the payload.
    benign, _, _ = pickles
    registry = _pickle_entry(tmp_path, benign, allow_pickle=True)
    copy = demo.clone(tmp_path / "copy")
    result = copy("--registry", registry, "sync", "bad-model")
    assert result.code == 0, result.output


def test_opted_in_malicious_pickle_is_not_executed(demo, pickles, tmp_path):
    _, evil, marker = pickles
    registry = _pickle_entry(tmp_path, evil, allow_pickle=True)
    copy = demo.clone(tmp_path / "copy")
    objects_before = copy.object_ids()
    result = copy("--registry", registry, "sync", "bad-model")
    assert not marker.exists(), "the pickle's payload ran"
    assert result.code == 6, result.output
    assert "Traceback" not in result.output
    assert copy.object_ids() == objects_before
    assert not list((copy.store / "staging").iterdir())
    # Loading it through the CLI (which would sync it first) refuses it the same way.
    again = copy("--registry", registry, "predict", "bad-model", "-i", SAMPLE_CSV, "-n", "2")
    assert again.code == 6 and not marker.exists(), again.output


def test_withdrawn_opt_in_makes_verify_refuse_a_stored_benign_pickle(demo, pickles, tmp_path):
    """The allow_pickle gate of the weights check, alone: the weights are a plain state dict
    (weights_only would load them), the registry file lists no pickle (its own check has nothing
    to refuse) and every listed file is there. Only the missing opt-in is left to refuse."""
    from tests.support.trees import describe_changes, tree_digest

    benign, _, _ = pickles
    registry = _pickle_entry(tmp_path, benign, allow_pickle=True)
    copy = demo.clone(tmp_path / "copy")
    assert copy("--registry", registry, "sync", "bad-model").code == 0
    assert copy("--registry", registry, "verify", "bad-model").code == 0  # opted in: it passes

    # The user no longer trusts the pickle: the opt-in goes, and with it the pickle from `files:`.
    registry.write_text(registry.read_text().replace(
        "    allow_pickle: true\n    files: [config.json, pytorch_model.bin]\n", "    files: [config.json]\n"))
    assert "allow_pickle" not in registry.read_text() and "pytorch_model.bin" not in registry.read_text()
    before = tree_digest(copy.store)
    result = copy("--registry", registry, "verify", "--json", "bad-model")
    assert result.code == 6, result.output
    assert "Traceback" not in result.output
    [report] = json.loads(result.stdout)
    assert not report["ok"] and report["warnings"] == [], report
    [error] = report["errors"]  # the gate's refusal, and nothing else
    assert "pytorch_model.bin" in error and "allow_pickle: true" in error, error
    assert tree_digest(copy.store) == before, describe_changes(before, tree_digest(copy.store))


def test_refused_malicious_pickle_is_named_without_unsafe_advice(demo, pickles, tmp_path):
    _, evil, marker = pickles
    registry = _pickle_entry(tmp_path, evil, allow_pickle=True)
    copy = demo.clone(tmp_path / "copy")
    result = copy("--registry", registry, "sync", "bad-model")
    assert result.code == 6 and not marker.exists(), result.output
    assert "pytorch_model.bin" in result.stderr, result.stderr
    assert str(copy.store / "staging") not in result.stderr, result.stderr
    # Telling a user to load an untrusted pickle unsafely, or to allowlist its payload, is wrong.
    assert "weights_only` set to `False`" not in result.stderr, result.stderr
    assert "add_safe_globals" not in result.stderr, result.stderr


# =============================================================================================
# HF_TOKEN never leaks
# =============================================================================================


class Leaks:
    """Collects everything a run showed or wrote, then greps it all for the token."""

    def __init__(self):
        self.places: list[str] = []
        self.checked = 0

    def output(self, label: str, result: Result) -> None:
        self.checked += 1
        if FAKE_TOKEN in result.stdout or FAKE_TOKEN in result.stderr:
            self.places.append(f"output of {label}")

    def tree(self, root: Path) -> None:
        for path in every_path(root):
            if path.is_file() and not path.is_symlink():
                self.checked += 1
                if FAKE_TOKEN.encode() in path.read_bytes():
                    self.places.append(str(path))
            if FAKE_TOKEN in str(path):
                self.places.append(f"a path name: {path}")


def _token_env(**extra: str) -> dict:
    return {"HF_TOKEN": FAKE_TOKEN, **extra}


def test_token_never_leaks_from_local_commands(demo, tmp_path):
    leaks = Leaks()
    cli = Cli(tmp_path / "local", env=_token_env())
    bundle = tmp_path / "out" / "demo.tar"
    for args in (("sync", DEMO), ("sync", "--force", DEMO), ("list",), ("list", "--json"), ("show", DEMO),
                 ("show", "--json", DEMO_TOKENIZER), ("verify", "--deep"), ("verify", "--json"),
                 ("doctor",), ("doctor", "--json"), ("export", DEMO, "-o", bundle),
                 ("--debug", "show", "no-such-entry"), ("validate",)):
        result = cli(*args)
        assert result.code in (0, 4), (args, result.output)
        leaks.output(" ".join(map(str, args)), result)
    target = Cli(tmp_path / "imported", env=_token_env())
    imported = target("import", bundle)
    assert imported.code == 0, imported.output
    leaks.output("import", imported)
    for root in (cli.store, cli.hf_home, cli.cwd, bundle.parent, target.store):
        leaks.tree(root)
    assert leaks.checked > 20
    assert not leaks.places, leaks.places


def test_token_never_leaks_from_a_failing_sync_against_a_dead_endpoint(tmp_path):
    registry = tmp_path / "dead.yaml"
    registry.write_text("schema: 1\ntokenizers:\n  far-away:\n"
                        "    source: hf://acme/far-away@0123456789abcdef0123456789abcdef01234567\n"
                        "  far-away-branch:\n    source: hf://acme/far-away@main\n")
    endpoint = dead_endpoint()
    cli = Cli(tmp_path, offline=False, env=_token_env(HF_ENDPOINT=endpoint, KRONOS_REGISTRY_TIMEOUT="2"))
    leaks = Leaks()
    for args in (("sync", "far-away"), ("--debug", "sync", "far-away-branch"), ("sync", "--all"),
                 ("doctor",), ("doctor", "--json")):
        result = cli("--registry", registry, *args, timeout=120)
        leaks.output(" ".join(map(str, args)), result)
        if args[-1] in ("far-away", "far-away-branch"):
            assert result.code == 5, result.output
            assert "127.0.0.1" in result.stderr
    leaks.tree(cli.store)
    leaks.tree(cli.hf_home)
    assert not leaks.places, leaks.places


@pytest.mark.parametrize("args", [
    pytest.param(("sync", "far-away"), id="sync"),
    pytest.param(("--debug", "sync", "far-away"), id="sync-debug"),
    pytest.param(("doctor",), id="doctor"),
    pytest.param(("doctor", "--json"), id="doctor-json"),
])
def test_token_in_the_endpoint_url_is_never_shown(tmp_path, args):
    # A private mirror behind basic auth is often written http://user:TOKEN@host/: the same secret.
    registry = tmp_path / "dead.yaml"
    registry.write_text("schema: 1\ntokenizers:\n  far-away:\n    source: hf://acme/far-away@main\n")
    endpoint = f"http://robot:{FAKE_TOKEN}@127.0.0.1:{free_port()}"
    cli = Cli(tmp_path, offline=False, env=_token_env(HF_ENDPOINT=endpoint, KRONOS_REGISTRY_TIMEOUT="2"))
    result = cli("--registry", registry, *args, timeout=120)
    assert result.code == (5 if "sync" in args else 0), result.output
    assert FAKE_TOKEN not in result.output, result.output
    leaks = Leaks()
    leaks.tree(cli.store)
    leaks.tree(cli.hf_home)
    assert not leaks.places, leaks.places


@pytest.fixture(scope="module")
def kronos_mirror(tmp_path_factory):
    """olah on 127.0.0.1 serving one tiny Kronos tokenizer repo; yields (url, registry text)."""
    from tests.support.hubrepos import make_repo
    from tests.support.kronos_checkpoints import TINY_TOKENIZER, tokenizer_checkpoint
    from tests.support.olah import require_olah, running_olah

    require_olah()
    root = tmp_path_factory.mktemp("security-olah")
    folder = tokenizer_checkpoint(root / "checkpoint", group_size=4, seed=7)
    repo = make_repo(root / "mirrors", "SecOrg/Tiny-Tokenizer")
    commit = repo.commit({name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")},
                         "upload")
    registry = ("schema: 1\ntokenizers:\n  mirrored:\n"
                f"    source: hf://SecOrg/Tiny-Tokenizer@{commit}\n    config: {json.dumps(TINY_TOKENIZER)}\n")
    with running_olah(root / "mirrors", root / "olah") as server:
        yield server.url, registry


def test_token_never_leaks_from_a_sync_through_an_olah_mirror(kronos_mirror, tmp_path):
    url, registry_text = kronos_mirror
    registry = tmp_path / "mirror.yaml"
    registry.write_text(registry_text)
    env = _token_env(HF_ENDPOINT=url, NO_PROXY="127.0.0.1,localhost", HF_HUB_DISABLE_TELEMETRY="1")
    cli = Cli(tmp_path, offline=False, env=env)
    leaks = Leaks()
    bundle = tmp_path / "mirrored.tar"
    for args in (("sync", "mirrored"), ("verify", "--deep", "mirrored"), ("show", "--json", "mirrored"),
                 ("doctor", "--json"), ("export", "mirrored", "-o", bundle)):
        result = cli("--registry", registry, *args, timeout=120)
        assert result.code == 0, (args, result.output)
        leaks.output(" ".join(map(str, args)), result)
    # The token really was there to leak: the hub client had it for every request.
    doctor = cli("--registry", registry, "doctor", "--json")
    assert json.loads(doctor.stdout)["hf_token"] == "set", doctor.output
    manifests = list((cli.store / "objects").glob("*/MANIFEST.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["endpoint"] == url
    for root in (cli.store, cli.hf_home, cli.cwd):
        leaks.tree(root)
    leaks.tree(bundle.parent)
    assert not leaks.places, leaks.places


# A basic-auth password in HF_ENDPOINT, with no HF_TOKEN set: only the URL carries the secret.
ENDPOINT_PASSWORD = "s3cret-Mirror-Passw0rd-91c4"


@pytest.mark.parametrize("args", [
    pytest.param(("sync", "far-away"), id="sync"),
    pytest.param(("--debug", "sync", "far-away"), id="sync-debug"),
    pytest.param(("sync", "--json", "far-away"), id="sync-json"),
])
def test_endpoint_credentials_are_scrubbed_without_hf_token(tmp_path, args):
    registry = tmp_path / "dead.yaml"
    registry.write_text("schema: 1\ntokenizers:\n  far-away:\n    source: hf://acme/far-away@main\n")
    endpoint = f"http://robot:{ENDPOINT_PASSWORD}@127.0.0.1:{free_port()}"
    cli = Cli(tmp_path, offline=False, env={"HF_ENDPOINT": endpoint, "KRONOS_REGISTRY_TIMEOUT": "2"})
    result = cli("--registry", registry, *args, timeout=120)
    assert result.code == 5, result.output
    assert "127.0.0.1" in result.output
    assert ENDPOINT_PASSWORD not in result.output and "robot:" not in result.output, result.output
    for root in (cli.store, cli.hf_home):
        leaked = [p for p in every_path(root) if p.is_file() and ENDPOINT_PASSWORD.encode() in p.read_bytes()]
        assert not leaked, leaked


def test_redaction_strips_url_credentials_and_endpoint_passwords_but_keeps_hub_uris(monkeypatch):
    from registry.store import Manifest, redact_secrets

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://robot:{ENDPOINT_PASSWORD}@mirror.example:8080")
    text = (f"hf://gpt2@main hf://Org/Repo@abc http://robot:{ENDPOINT_PASSWORD}@mirror.example:8080/api "
            f"https://token@other.example/x decoded {ENDPOINT_PASSWORD}")
    assert redact_secrets(text) == ("hf://gpt2@main hf://Org/Repo@abc http://mirror.example:8080/api "
                                    "https://other.example/x decoded <redacted>")
    manifest = Manifest(artifact_id="hf--gpt2--main", kind="model", entry="m", source="hf://gpt2@main",
                        resolved_revision=None, files=())
    assert json.loads(manifest.to_json())["source"] == "hf://gpt2@main"


def test_doctor_reaches_an_endpoint_given_with_credentials(kronos_mirror, tmp_path):
    url, registry_text = kronos_mirror
    registry = tmp_path / "mirror.yaml"
    registry.write_text(registry_text)
    endpoint = url.replace("http://", f"http://robot:{ENDPOINT_PASSWORD}@")
    cli = Cli(tmp_path, offline=False, env={"HF_ENDPOINT": endpoint, "NO_PROXY": "127.0.0.1,localhost"})
    result = cli("--registry", registry, "doctor", "--json")
    assert result.code == 0, result.output
    probe = json.loads(result.stdout)["endpoints"][0]
    assert probe["reachable"] is True and probe["detail"].startswith("HTTP "), probe
    assert probe["url"] == url
    synced = cli("--registry", registry, "sync", "mirrored")
    assert synced.code == 0, synced.output
    assert ENDPOINT_PASSWORD not in result.output + synced.output


def test_a_weights_link_leaving_the_source_folder_is_refused_without_echoing_its_bytes(tmp_path):
    # model.safetensors links to a file outside the checkpoint folder (think /etc/shadow).
    secret = tmp_path / "elsewhere" / "shadow"
    secret.parent.mkdir()
    secret.write_bytes(b"root:$6$SaltSalt$" + b"x" * 200 + b"\n")
    source = tmp_path / "checkpoint"
    source.mkdir()
    shutil.copy(DEMO_MODEL_DIR / "config.json", source / "config.json")
    (source / "model.safetensors").symlink_to(secret)
    registry = tmp_path / "models.yaml"
    registry.write_text("schema: 1\nmodels:\n  linked:\n    source: ./checkpoint\n"
                        f"    tokenizer: {DEMO_TOKENIZER}\n    context_length: 512\n")
    cli = Cli(tmp_path / "run")
    result = cli("--registry", registry, "sync", "linked")
    assert result.code == 5, result.output
    assert "model.safetensors" in result.stderr and "outside" in result.stderr, result.stderr
    first_bytes = int.from_bytes(secret.read_bytes()[:8], "little")
    for shown in (str(first_bytes), "root:", "SaltSalt"):
        assert shown not in result.output, result.output
    objects = cli.store / "objects"
    assert not objects.exists() or not any(p.name.startswith("local--linked") for p in objects.iterdir())


# =============================================================================================
# Permissions: the user's umask, never world-writable
# =============================================================================================


def run_with_umask(cli: Cli, umask: int, *args: object) -> Result:
    """``cli(*args)`` with the child's umask set (the test process keeps its own)."""
    return cli(*args, umask=umask)


def loose_modes(paths, forbidden: int) -> list[str]:
    return [f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p}" for p in paths
            if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & forbidden]


def _sync_import_export(tmp_path: Path, umask: int, demo_bundle: Path) -> tuple[Cli, Cli, Path]:
    synced = Cli(tmp_path / "synced")
    result = run_with_umask(synced, umask, "sync", DEMO)
    assert result.code == 0, result.output
    bundle = tmp_path / "exported" / "demo.tar"
    result = run_with_umask(synced, umask, "export", DEMO, "-o", bundle)
    assert result.code == 0, result.output
    imported = Cli(tmp_path / "imported")
    result = run_with_umask(imported, umask, "import", demo_bundle)
    assert result.code == 0, result.output
    return synced, imported, bundle


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_created_files_follow_the_umask(demo_bundle, tmp_path, umask):
    synced, imported, bundle = _sync_import_export(tmp_path, umask, demo_bundle)
    created = every_path(synced.store) + every_path(imported.store) + every_path(bundle.parent)
    assert len(created) > 15
    # Never more than the umask allows (for 077: no group or other bits at all), never o+w.
    assert not loose_modes(created, umask | stat.S_IWOTH), loose_modes(created, umask | stat.S_IWOTH)
    # And the umask is honoured, not replaced by something stricter: the owner can read what it made.
    assert all(p.lstat().st_mode & stat.S_IRUSR for p in created)


def test_hub_sync_through_the_cache_follows_the_umask(kronos_mirror, tmp_path):
    # Hub files are copied from the Hugging Face cache, with modes from the umask of the sync.
    url, registry_text = kronos_mirror
    registry = tmp_path / "mirror.yaml"
    registry.write_text(registry_text)
    cli = Cli(tmp_path, offline=False, env={"HF_ENDPOINT": url, "NO_PROXY": "127.0.0.1,localhost"})
    result = run_with_umask(cli, 0o077, "--registry", registry, "sync", "mirrored")
    assert result.code == 0, result.output
    created = every_path(cli.store)
    assert any(p.name == "model.safetensors" for p in created)
    assert not loose_modes(created, 0o077), loose_modes(created, 0o077)


def test_hub_objects_follow_the_stores_umask_not_the_cache_modes(kronos_mirror, tmp_path):
    # The Hugging Face cache was filled under umask 022 (0644 blobs); a later sync under umask
    # 077 into another store must give that store 0600 files, not the cache's 0644.
    url, registry_text = kronos_mirror
    registry = tmp_path / "mirror.yaml"
    registry.write_text(registry_text)
    env = {"HF_ENDPOINT": url, "NO_PROXY": "127.0.0.1,localhost"}
    first = Cli(tmp_path, store=tmp_path / "store-022", offline=False, env=env)
    assert run_with_umask(first, 0o022, "--registry", registry, "sync", "mirrored").code == 0
    blobs = list((first.hf_home / "hub").rglob("blobs/*"))
    assert blobs and all(stat.S_IMODE(b.stat().st_mode) & 0o044 for b in blobs)  # group/other can read
    second = Cli(tmp_path, store=tmp_path / "store-077", offline=False, env=env)
    result = run_with_umask(second, 0o077, "--registry", registry, "sync", "mirrored")
    assert result.code == 0, result.output
    created = every_path(second.store)
    assert any(p.name == "model.safetensors" for p in created)
    assert not loose_modes(created, 0o077), loose_modes(created, 0o077)


def test_world_writable_source_files_do_not_stay_world_writable(tmp_path):
    # A shared checkpoint folder with 0666 files, synced under the common umask 002: the copy
    # in the store must not inherit o+w (a hard link would share the source's mode bits).
    source = tmp_path / "shared-checkpoint"
    shutil.copytree(DEMO_MODEL_DIR, source)
    for path in source.iterdir():
        path.chmod(0o666)
    registry = tmp_path / "models.yaml"
    registry.write_text("schema: 1\nmodels:\n  shared-model:\n    source: ./shared-checkpoint\n"
                        f"    tokenizer: {DEMO_TOKENIZER}\n    context_length: 512\n")
    cli = Cli(tmp_path / "run")
    result = run_with_umask(cli, 0o002, "--registry", registry, "sync", "shared-model")
    assert result.code == 0, result.output
    created = every_path(cli.store)
    assert not loose_modes(created, stat.S_IWOTH), loose_modes(created, stat.S_IWOTH)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o666 for p in source.iterdir())  # source untouched


def test_never_world_writable_even_with_umask_000(demo_bundle, tmp_path):
    # The design promises "never world-writable" on top of the umask: a umask of 000 (some
    # containers and CI images run with it) must not give other users write access to the store.
    synced, imported, bundle = _sync_import_export(tmp_path, 0o000, demo_bundle)
    created = every_path(synced.store) + every_path(imported.store)
    assert not loose_modes(created, stat.S_IWOTH), loose_modes(created, stat.S_IWOTH)


# =============================================================================================
# Imported objects pass the sync's checks; load never falls back to a pickle (issue 9 item 1)
# =============================================================================================


@pytest.mark.parametrize("pickle_only", [False, True], ids=["tiny-model", "pickle-only"])
def test_impostor_bundle_of_packaged_ids_is_refused_and_never_present(tmp_path, pickle_only):
    from tests.support.bundles import MODEL, TOKENIZER, impostor_bundle

    bundle = impostor_bundle(tmp_path / "attacker", tmp_path / "evil.tar", pickle_only=pickle_only)
    fresh = Cli(tmp_path / "target")
    shadowing = fresh("import", bundle)  # unasked, the bundle may not take over packaged names
    assert shadowing.code == 9 and f"would replace '{MODEL}'" in shadowing.stderr, shadowing.output
    assert not fresh.store.exists(), [str(p) for p in every_path(fresh.store)]
    # Asked to take the names over, the objects still fail the checks a sync of them would run.
    result = fresh("import", bundle, "--replace", MODEL, "--replace", TOKENIZER)
    assert result.code == 6, result.output  # verification failed, like a sync of the same files
    assert "Traceback" not in result.output
    assert "nothing was imported" in result.stderr and f"'{MODEL}'" in result.stderr
    assert ("model.safetensors is missing" if pickle_only else "d_model is 32 but the registry pins 512") \
        in result.stderr
    assert not fresh.store.exists(), [str(p) for p in every_path(fresh.store)]  # no objects, no refs
    synced = fresh("--offline", "sync", MODEL)
    assert synced.code == 7 and "present" not in synced.stdout, synced.output
    predicted = fresh("--offline", "predict", MODEL, "--input", SAMPLE_CSV, "--pred-len", "2")
    assert predicted.code == 7, predicted.output


def test_load_never_falls_back_to_a_pickle_the_entry_did_not_allow(pickles, tmp_path):
    # An object holding only pytorch_model.bin (put there by an older version, or by hand)
    # under an entry without `allow_pickle`: loading it must refuse, not unpickle it.
    import hashlib

    from registry.store import FileRecord, Manifest, Store, hf_artifact_id

    benign, _, _ = pickles
    commit = "3c" * 20
    cli = synced_demo(tmp_path / "demo")
    store = Store(cli.store)
    artifact = hf_artifact_id("acme/pickled", commit)
    with store.lock(artifact):
        staging = store.staging(artifact)
        records = []
        for name, source in (("config.json", DEMO_MODEL_DIR / "config.json"), ("pytorch_model.bin", benign)):
            data = source.read_bytes()
            (staging / name).write_bytes(data)
            records.append(FileRecord(name, len(data), hashlib.sha256(data).hexdigest()))
        assert store.publish(artifact, staging, Manifest(
            artifact_id=artifact, kind="model", entry="pickled", source=f"hf://acme/pickled@{commit}",
            resolved_revision=commit, files=tuple(records)))
    registry = tmp_path / "models.yaml"
    registry.write_text(f"schema: 1\nmodels:\n  pickled:\n    source: hf://acme/pickled@{commit}\n"
                        f"    tokenizer: {DEMO_TOKENIZER}\n    context_length: 512\n")
    result = cli("--registry", registry, "--offline", "predict", "pickled", "--input", SAMPLE_CSV,
                 "--pred-len", "2")
    assert result.code == 6, result.output
    assert "allow_pickle" in result.stderr and "pytorch_model.bin" in result.stderr
    assert "Traceback" not in result.output


# =============================================================================================
# A lying bundle stops at its declared size (issue 9 item 5)
# =============================================================================================


def test_lying_bundle_is_refused_without_writing_past_the_declared_size(demo_bundle, tmp_path):
    import resource

    from tests.support.bundles import lying_bundle

    with tarfile.open(demo_bundle) as tar:
        [weights] = [m for m in tar.getmembers()
                     if m.name.endswith("/model.safetensors") and m.size > 100_000]
    actual = 32 * 2**20  # the real case: 2 GiB of zeros in a 2 MB .tar.gz
    bad = lying_bundle(demo_bundle, tmp_path / "liar.tar.gz", weights.name, actual)
    limit = 4 * 2**20  # no file the import writes may grow past this (the demo weights are ~1.5 MB)

    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    fresh = Cli(tmp_path / "target")
    done = subprocess.run([*console_script(), "import", str(bad)], cwd=fresh.cwd, env=fresh.env(),
                          capture_output=True, text=True, timeout=120, preexec_fn=cap_file_size)
    output = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 6, output
    assert "lied" in done.stderr and weights.name in done.stderr, output
    assert f"is {actual} bytes" in done.stderr and f"declares {weights.size}" in done.stderr, output
    assert "Traceback" not in output
    assert not fresh.store.exists(), [str(p) for p in every_path(fresh.store)]  # nothing left in staging
