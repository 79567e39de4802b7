"""from_pretrained with a hub id against a real mirror (olah): the registry's way, not a bare download.

The id is fetched over HF_ENDPOINT (or the registry file's mirrors), verified and published into
the store, and served from there again offline without a socket; a registry entry's pinned
commit wins over the branch; a tokenizer repo given to Kronos is named as such.
"""

from __future__ import annotations

import attrs
import pytest
import torch

from kronos_registry.kronos import CheckpointError, Kronos, KronosTokenizer
from registry.store import MANIFEST_NAME, Store
from tests.support.kronos_checkpoints import TINY_MODEL, TINY_TOKENIZER, model_checkpoint, tokenizer_checkpoint
from tests.support.mirror import isolate, publish_checkpoint
from tests.support.olah import OlahServer, dead_endpoint, require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys
from tests.support.sockets import guard_sockets

MODEL_REPO, TOKENIZER_REPO = "TestOrg/Kronos-x", "TestOrg/Tokenizer-x"


@attrs.frozen
class Hub:
    server: OlahServer
    first: str      # the model repo's first commit ...
    second: str     # ... and the second, where main points
    tokenizer: str  # the tokenizer repo's commit
    folders: dict   # commit -> the checkpoint folder published there


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Hub:
    require_olah()
    root = tmp_path_factory.mktemp("pretrained-hub")
    mirrors = root / "mirrors"
    v1, v2 = model_checkpoint(root / "v1", seed=1), model_checkpoint(root / "v2", seed=2)
    repo, first = publish_checkpoint(mirrors, MODEL_REPO, v1)
    second = repo.commit({name: (v2 / name).read_bytes() for name in ("config.json", "model.safetensors")},
                         "retrained")
    tok = tokenizer_checkpoint(root / "tok")
    _, tokenizer = publish_checkpoint(mirrors, TOKENIZER_REPO, tok)
    with running_olah(mirrors, root / "olah") as server:
        yield Hub(server, first, second, tokenizer, {first: v1, second: v2, tokenizer: tok})


def _same_weights(module: torch.nn.Module, folder) -> None:
    expected = type(module).from_pretrained(folder).state_dict()
    got = module.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in got)


def test_a_hub_id_is_synced_verified_and_then_served_offline(hub, tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path, hub.server.url)
    model = Kronos.from_pretrained(MODEL_REPO, revision=hub.first)
    _same_weights(model, hub.folders[hub.first])

    store = Store(tmp_path / "store")
    [artifact] = store.list_artifacts()
    manifest = store.read_manifest(artifact)
    assert manifest.resolved_revision == hub.first and manifest.endpoint == hub.server.url
    assert {"kronos-config", "kronos-weights", "size-and-sha256"} <= set(manifest.checks)
    assert (store.object_dir(artifact) / MANIFEST_NAME).is_file()

    tried = guard_sockets(monkeypatch)
    again = Kronos.from_pretrained(MODEL_REPO, revision=hub.first, local_files_only=True)
    _same_weights(again, hub.folders[hub.first])
    assert tried == []


def test_the_registry_pin_wins_over_the_branch(hub, tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path, hub.server.url)
    unpinned = Kronos.from_pretrained(MODEL_REPO)       # no entry names it: main, now the second commit
    _same_weights(unpinned, hub.folders[hub.second])

    (tmp_path / "models.yaml").write_text(registry_yaml(
        {"tok-x": tokenizer_keys(f"hf://{TOKENIZER_REPO}@{hub.tokenizer}", TINY_TOKENIZER)},
        {"kronos-x": model_keys(f"hf://{MODEL_REPO}@{hub.first}", "tok-x", TINY_MODEL)}))
    pinned = Kronos.from_pretrained(MODEL_REPO)         # ./models.yaml pins the first commit
    _same_weights(pinned, hub.folders[hub.first])


def test_mirrors_of_the_registry_file_are_tried_when_the_endpoint_is_down(hub, tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path, dead_endpoint())
    (tmp_path / "models.yaml").write_text(registry_yaml(
        {"tok-x": tokenizer_keys(f"hf://{TOKENIZER_REPO}@{hub.tokenizer}", TINY_TOKENIZER)}, {},
        mirrors=(hub.server.url,)))
    tokenizer = KronosTokenizer.from_pretrained(TOKENIZER_REPO)
    _same_weights(tokenizer, hub.folders[hub.tokenizer])


def test_a_tokenizer_repo_loaded_as_the_model_is_named(hub, tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path, hub.server.url)
    with pytest.raises(CheckpointError) as e:
        Kronos.from_pretrained(TOKENIZER_REPO, revision=hub.tokenizer)
    assert "holds a KronosTokenizer checkpoint, not a Kronos" in str(e.value)
    assert "KronosTokenizer.from_pretrained" in e.value.hint
    assert Store(tmp_path / "store").list_artifacts() == []   # refused: nothing published
