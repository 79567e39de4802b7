"""No weights reach a pinned name without a content check against a trusted record (issue 23 item 2).

A name pins a commit, not file contents. Offline, a sync adopts whatever the Hugging Face cache
holds at that commit, and a blob named by its own hash "matches" that name: the cache cannot
vouch for itself. What can vouch for a file is a sha256 pinned in models.yaml, the hash the hub
recorded (an LFS file's sha256, git's blob id for a file kept in git), or the user's own folder.
Each stored file records which of these it was checked against; a file checked against nothing
is marked unverified on every face, and `--strict` (KRONOS_REGISTRY_STRICT=1) refuses it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry.store import Store
from tests.support.cli import SAMPLE_CSV, Cli
from tests.support.kronos_checkpoints import model_checkpoint, tokenizer_checkpoint
from tests.support.mirror import publish_checkpoint
from tests.support.olah import require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys

TOK_REPO, TOK_COMMIT = "TrustOrg/Tokenizer", "a1" * 20
MODEL_REPO, MODEL_COMMIT = "TrustOrg/Kronos", "b2" * 20
FILES = ("config.json", "model.safetensors")


def plant_in_hf_cache(hf_home: Path, repo: str, commit: str, folder: Path) -> None:
    """``folder``'s files in the Hugging Face cache at ``commit``, laid out as huggingface_hub
    does: each a snapshot link to a blob named by the file's own sha256 (so it "matches")."""
    storage = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        data = (folder / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        (storage / "blobs" / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", digest))


def sha256_pins(folder: Path) -> dict:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def write_registry(cli: Cli, tok_source: str, model_source: str, pins: dict | None = None) -> None:
    """models.yaml in the CLI's working folder; ``pins``: entry name -> {file: sha256}."""
    pins = pins or {}
    tok = {**tokenizer_keys(tok_source), **({"sha256": pins["tok"]} if "tok" in pins else {})}
    model = {**model_keys(model_source, "tok"), **({"sha256": pins["model"]} if "model" in pins else {})}
    (cli.cwd / "models.yaml").write_text(registry_yaml({"tok": tok}, {"model": model}))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("trust-checkpoints")
    return tokenizer_checkpoint(root / "tok", seed=21), model_checkpoint(root / "model", seed=22)


def cached_user(root: Path, checkpoints, pins: bool = False) -> Cli:
    """An offline user whose Hugging Face cache holds both checkpoints at the pinned commits."""
    tok, model = checkpoints
    cli = Cli(root)
    plant_in_hf_cache(cli.hf_home, TOK_REPO, TOK_COMMIT, tok)
    plant_in_hf_cache(cli.hf_home, MODEL_REPO, MODEL_COMMIT, model)
    write_registry(cli, f"hf://{TOK_REPO}@{TOK_COMMIT}", f"hf://{MODEL_REPO}@{MODEL_COMMIT}",
                   {"tok": sha256_pins(tok), "model": sha256_pins(model)} if pins else None)
    return cli


def listed(cli: Cli, *options: str) -> dict:
    result = cli(*options, "list", "--json")
    assert result.code == 0, result.output
    return {item["name"]: item for item in json.loads(result.stdout)}


def checked_against(store: Path, entry_name: str) -> dict:
    """What each stored file of ``entry_name`` was checked against, from its manifest."""
    store = Store(store)
    for artifact_id in store.list_artifacts():
        manifest = store.read_manifest(artifact_id)
        if manifest.entry == entry_name:
            return {record.name: record.checked_against for record in manifest.files}
    raise AssertionError(f"{entry_name} is not stored")


def objects(cli: Cli) -> list[str]:
    """The artifacts published in ``cli``'s store (none when it has no store yet)."""
    folder = cli.store / "objects"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# =============================================================================================
# Offline, from the Hugging Face cache: adopted, but said to be unverified on every face
# =============================================================================================


def test_an_adoption_from_the_hf_cache_is_marked_unverified_on_every_face(tmp_path, checkpoints):
    cli = cached_user(tmp_path, checkpoints)

    synced = cli("sync", "model")
    assert synced.code == 0, synced.output
    assert "warning: unverified: config.json (checked against nothing)" in synced.stdout, synced.output
    assert checked_against(cli.store, "model") == dict.fromkeys(FILES, "none")

    assert listed(cli)["model"]["unverified"] == list(FILES)
    assert "[unverified: config.json, model.safetensors]" in cli("list").stdout
    shown = cli("show", "model")
    assert shown.code == 0 and "checked against NOTHING" in shown.stdout, shown.output
    verified = cli("verify", "model", "--deep")
    assert verified.code == 0, verified.output  # the files are whole; what they are is unvouched for
    assert "unverified" in verified.output and "sha256" in verified.output, verified.output
    doctor = cli("doctor", "--json")
    health = {e["name"]: e for e in json.loads(doctor.stdout)["entries"]}
    assert health["model"]["unverified"] == list(FILES), doctor.stdout
    assert health["model"]["check"].startswith("ok, but unverified"), health["model"]
    predicted = cli("predict", "model", "--input", SAMPLE_CSV, "--pred-len", "2")
    assert predicted.code == 0, predicted.output  # not strict: served, and said to be unverified
    assert served_summary(cli, "model").unverified == list(FILES)


def served_summary(cli: Cli, name: str):
    """The model as HTTP's /v1/models and the page (the service's infos) and MCP's list_models
    (its summaries) describe it."""
    from kronos_registry.services.lanes import ForecastService
    from kronos_registry.services.registry import Registry
    from kronos_registry.services.wire import ModelSummary

    service = ForecastService(Registry(cli.cwd / "models.yaml", cli.store, offline=True, env={}))
    try:
        info = next(info for info in service.models() if info["name"] == name)
    finally:
        service.close()
    return ModelSummary.from_info(info)


@pytest.mark.parametrize("how", ["flag", "flag-after-command", "environment"])
def test_strict_refuses_an_unverifiable_adoption_and_changes_nothing(tmp_path, checkpoints, how):
    cli = cached_user(tmp_path, checkpoints)

    def strict(*args):
        if how == "flag":
            return cli("--strict", *args)
        if how == "flag-after-command":
            return cli(*args, "--strict")
        return cli(*args, env={"KRONOS_REGISTRY_STRICT": "1"})

    refused = strict("sync", "model")
    assert refused.code == 6, refused.output
    assert "strict mode refuses" in refused.stderr and "checked against nothing" in refused.stderr, refused.output
    assert "sha256" in refused.stderr and "Traceback" not in refused.output
    assert objects(cli) == [], objects(cli)  # neither the tokenizer nor the model was published

    # Adopted without --strict, the files are still refused wherever strict mode serves them.
    assert cli("sync", "model").code == 0
    for args in (("predict", "model", "--input", SAMPLE_CSV, "--pred-len", "2"), ("verify", "model")):
        result = strict(*args)
        assert result.code == 6, (args, result.output)
        assert "strict mode refuses" in result.output, result.output


def test_a_sha256_pin_makes_the_adoption_trusted_and_refuses_a_swapped_file(tmp_path, checkpoints):
    cli = cached_user(tmp_path / "pinned", checkpoints, pins=True)
    synced = cli("--strict", "sync", "model")
    assert synced.code == 0, synced.output
    assert "unverified" not in synced.output
    assert checked_against(cli.store, "model") == dict.fromkeys(FILES, "pin")
    assert listed(cli)["model"]["unverified"] == []
    assert "checked against the sha256 pinned in the registry" in cli("show", "model").stdout
    assert cli("--strict", "predict", "model", "--input", SAMPLE_CSV, "--pred-len", "2").code == 0

    # The attack the pin stops: other weights placed in the cache under the pinned commit.
    tok, model = checkpoints
    other = model_checkpoint(tmp_path / "other", seed=99)
    swapped = cached_user(tmp_path / "swapped", (tok, other), pins=False)
    write_registry(swapped, f"hf://{TOK_REPO}@{TOK_COMMIT}", f"hf://{MODEL_REPO}@{MODEL_COMMIT}",
                   {"tok": sha256_pins(tok), "model": sha256_pins(model)})
    refused = swapped("sync", "model")
    assert refused.code == 6 and "model.safetensors" in refused.stderr, refused.output
    assert [name for name in objects(swapped) if MODEL_REPO.split("/")[1] in name] == [], objects(swapped)


# =============================================================================================
# Bundles carry what each file was checked against; the importer vouches only for its own pins
# =============================================================================================


def test_an_unverified_adoption_stays_unverified_through_export_and_import(tmp_path, checkpoints):
    cli = cached_user(tmp_path / "exporter", checkpoints)
    assert cli("sync", "model").code == 0
    bundle = tmp_path / "model.tar"
    assert cli("export", "model", "-o", bundle).code == 0, "export failed"

    strict_target = Cli(tmp_path / "strict-target")
    refused = strict_target("--strict", "import", bundle)
    assert refused.code == 6 and "nothing was imported" in refused.stderr, refused.output
    assert objects(strict_target) == []

    target = Cli(tmp_path / "target")
    imported = target("import", bundle)
    assert imported.code == 0, imported.output
    assert listed(target)["model"]["unverified"] == list(FILES)
    assert checked_against(target.store, "model") == dict.fromkeys(FILES, "none")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, checkpoints):
    """olah serving both checkpoints; yields (server, tokenizer commit, model commit)."""
    require_olah()
    root = tmp_path_factory.mktemp("trust-hub")
    tok, model = checkpoints
    _, tok_commit = publish_checkpoint(root / "mirrors", TOK_REPO, tok)
    _, model_commit = publish_checkpoint(root / "mirrors", MODEL_REPO, model)
    with running_olah(root / "mirrors", root / "olah") as server:
        yield server, tok_commit, model_commit


def test_a_sync_from_the_hub_is_checked_against_its_records_and_a_bundle_only_against_its_own(
        tmp_path, hub):
    server, tok_commit, model_commit = hub
    online = Cli(tmp_path / "online", offline=False,
                 env={"HF_ENDPOINT": server.url, "NO_PROXY": "127.0.0.1,localhost"})
    write_registry(online, f"hf://{TOK_REPO}@{tok_commit}", f"hf://{MODEL_REPO}@{model_commit}")

    synced = online("--strict", "sync", "model")
    assert synced.code == 0, synced.output
    # model.safetensors is an LFS file (its sha256), config.json is kept in git (its blob id).
    assert checked_against(online.store, "model") == dict.fromkeys(FILES, "hub")
    assert checked_against(online.store, "tok") == dict.fromkeys(FILES, "hub")
    assert "checked against the hub's recorded hash" in online("show", "model").stdout
    bundle = tmp_path / "hub.tar"
    assert online("export", "model", "-o", bundle).code == 0

    # The importer cannot ask the hub: the files rest on the exporting store's word.
    target = Cli(tmp_path / "target")
    write_registry(target, f"hf://{TOK_REPO}@{tok_commit}", f"hf://{MODEL_REPO}@{model_commit}")
    assert target("--strict", "import", bundle).code == 6
    imported = target("import", bundle)
    assert imported.code == 0, imported.output
    assert checked_against(target.store, "model") == dict.fromkeys(FILES, "bundle")
    assert listed(target)["model"]["unverified"] == []
    assert target("predict", "model", "--input", SAMPLE_CSV, "--pred-len", "2").code == 0
    refused = target("--strict", "predict", "model", "--input", SAMPLE_CSV, "--pred-len", "2")
    assert refused.code == 6 and "checked only against the bundle's own record" in refused.stderr, refused.output
