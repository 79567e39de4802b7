"""Sources: local folders, and hf:// repos served by a real mirror (olah) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import attrs
import pytest

from registry.errors import (
    FileNotInSourceError,
    NetworkError,
    NotSyncedError,
    RepoNotFoundError,
    RevisionNotFoundError,
    SourceError,
)
from registry.sources import (
    DEFAULT_ENDPOINT,
    Endpoints,
    NotInCacheError,
    RemoteFile,
    ResolvedSource,
    fetch,
    hf_cache_dir,
    is_offline,
    resolve,
)
from registry.spec import HfSource, LocalSource
from tests.support.hubrepos import tiny_config, tiny_safetensors
from tests.support.olah import dead_endpoint
from tests.support.sockets import guard_sockets

FAKE_TOKEN = "hf_FAKEtokenFORtestsONLY1234567890"
FILES = ("config.json", "model.safetensors")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty Hugging Face cache for this test only."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def endpoints_for(*urls: str, **kwargs) -> Endpoints:
    return Endpoints(urls=urls, timeout=kwargs.pop("timeout", 3.0), **kwargs)


# --------------------------------------------------------------------------- settings


def test_endpoints_order_env_over_file_then_mirrors():
    env = {"HF_ENDPOINT": "http://env.example/", "HF_TOKEN": FAKE_TOKEN, "KRONOS_REGISTRY_TIMEOUT": "2.5"}
    endpoints = Endpoints.from_settings("http://file.example", ["http://m1.example", "http://m2.example/"], env)
    assert endpoints.urls == ("http://env.example", "http://m1.example", "http://m2.example")
    assert endpoints.timeout == 2.5
    assert endpoints.token == FAKE_TOKEN
    assert FAKE_TOKEN not in repr(endpoints)

    assert Endpoints.from_settings("http://file.example", [], {}).urls == ("http://file.example",)
    assert Endpoints.from_settings(None, ["http://m.example"], {}).urls == (DEFAULT_ENDPOINT, "http://m.example")
    with pytest.raises(SourceError, match="KRONOS_REGISTRY_TIMEOUT"):
        Endpoints.from_settings(None, [], {"KRONOS_REGISTRY_TIMEOUT": "soon"})


def test_is_offline_explicit_wins_then_env():
    assert is_offline(None, {"KRONOS_REGISTRY_OFFLINE": "1"})
    assert is_offline(None, {"HF_HUB_OFFLINE": "true"})
    assert not is_offline(None, {"HF_HUB_OFFLINE": "0"})
    assert not is_offline(False, {"KRONOS_REGISTRY_OFFLINE": "1"})
    assert is_offline(True, {})


def test_hf_cache_dir_read_from_env_at_call_time(tmp_path):
    assert hf_cache_dir({"HF_HUB_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert hf_cache_dir({"HF_HOME": str(tmp_path / "home")}) == tmp_path / "home" / "hub"


# --------------------------------------------------------------------------- local folders


def make_checkpoint(folder: Path, weights: str = "model.safetensors") -> dict[str, bytes]:
    files = {"config.json": tiny_config(), weights: tiny_safetensors(3)}
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_local_resolve_and_fetch_links_or_copies(tmp_path):
    files = make_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / ".git").mkdir()  # dot-folders are not part of a checkpoint
    (tmp_path / "ckpt" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    resolved = resolve(LocalSource(tmp_path / "ckpt"), endpoints_for(DEFAULT_ENDPOINT), offline=True)

    assert resolved.revision is None and resolved.endpoint is None
    assert set(resolved.names) == set(files)
    assert resolved.file("model.safetensors") == RemoteFile("model.safetensors", len(files["model.safetensors"]))

    placed = fetch(resolved, FILES, tmp_path / "dest", endpoints_for(DEFAULT_ENDPOINT), offline=True)
    for name in FILES:
        assert placed[name] == tmp_path / "dest" / name
        assert placed[name].read_bytes() == files[name]
        # A private copy, never a hard link: an edit of either file must not reach the other.
        assert not os.path.samestat(os.stat(placed[name]), os.stat(tmp_path / "ckpt" / name))
        assert placed[name].stat().st_nlink == 1
    assert not list((tmp_path / "dest").glob(".*partial"))


def test_local_missing_folder_names_path_and_fix(tmp_path):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(FileNotInSourceError) as caught:
        resolve(LocalSource(missing), endpoints_for(DEFAULT_ENDPOINT), offline=False)
    assert str(missing) in str(caught.value)
    assert "does not exist" in str(caught.value) and "source:" in caught.value.hint

    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileNotInSourceError, match="is not a folder"):
        resolve(LocalSource(tmp_path / "afile"), endpoints_for(DEFAULT_ENDPOINT), offline=False)


def test_local_pickle_only_folder_suggests_allow_pickle(tmp_path):
    make_checkpoint(tmp_path / "old", weights="pytorch_model.bin")
    resolved = resolve(LocalSource(tmp_path / "old"), endpoints_for(DEFAULT_ENDPOINT), offline=True)
    with pytest.raises(FileNotInSourceError) as caught:
        fetch(resolved, FILES, tmp_path / "dest", endpoints_for(DEFAULT_ENDPOINT), offline=True)
    assert "model.safetensors" in str(caught.value) and str(tmp_path / "old") in str(caught.value)
    assert "allow_pickle: true" in caught.value.hint and "pytorch_model.bin" in caught.value.hint


def test_unsafe_file_name_refused(tmp_path):
    make_checkpoint(tmp_path / "ckpt")
    resolved = resolve(LocalSource(tmp_path / "ckpt"), endpoints_for(DEFAULT_ENDPOINT), offline=True)
    with pytest.raises(FileNotInSourceError, match="plain relative path"):
        fetch(resolved, ["../ckpt/config.json"], tmp_path / "dest", endpoints_for(DEFAULT_ENDPOINT),
              offline=True)


# --------------------------------------------------------------------------- hf:// through olah


def test_resolve_pinned_commit_lists_files_with_sizes_and_lfs_hashes(olah_hub, hf_cache):
    server, hub = olah_hub
    resolved = resolve(HfSource("Org/Tiny-Tokenizer", hub.first), endpoints_for(server.url), offline=False)

    assert resolved.revision == hub.first
    assert resolved.endpoint == server.url
    assert set(resolved.names) == set(hub.files_first)
    weights = hub.files_first["model.safetensors"]
    assert resolved.file("model.safetensors") == RemoteFile(
        "model.safetensors", len(weights), hashlib.sha256(weights).hexdigest())
    # config.json is a plain git file: the hub records git's blob id (a sha1), not a sha256.
    config = hub.files_first["config.json"]
    blob_id = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()
    assert resolved.file("config.json") == RemoteFile("config.json", len(config), None, blob_id)
    assert resolved.file("config.json").recorded and resolved.file("model.safetensors").recorded


@pytest.mark.parametrize("revision, expected", [("main", "second"), ("dev", "first"), ("v1.0", "first")])
def test_branch_and_tag_resolve_to_gits_commit(olah_hub, hf_cache, revision, expected):
    server, hub = olah_hub
    resolved = resolve(HfSource("Org/Tiny-Tokenizer", revision), endpoints_for(server.url), offline=False)
    assert resolved.revision == getattr(hub, expected) == hub.tiny.rev_parse(revision)


def test_fetch_then_offline_refetch_reuses_hf_cache_without_sockets(olah_hub, hf_cache, tmp_path, monkeypatch):
    server, hub = olah_hub
    source = HfSource("Org/Tiny-Tokenizer", "main")
    online = resolve(source, endpoints_for(server.url), offline=False)
    placed = fetch(online, FILES, tmp_path / "first", endpoints_for(server.url), offline=False)
    for name in FILES:
        assert placed[name].read_bytes() == hub.files_second[name]
    assert any(hf_cache.rglob("blobs/*")), "the download must go through the HF cache"

    # Now the endpoint is dead and every socket connect fails: only the cache may answer.
    dead = endpoints_for(dead_endpoint())
    tried = guard_sockets(monkeypatch)
    offline = resolve(source, dead, offline=True)  # the branch resolves through the cache's refs/
    assert offline.revision == hub.second and offline.endpoint is None and offline.from_cache
    again = fetch(offline, FILES, tmp_path / "second", dead, offline=True)
    for name in FILES:
        assert again[name].read_bytes() == hub.files_second[name]
    assert tried == []


def test_complete_files_in_dest_are_not_fetched_again(olah_hub, hf_cache, tmp_path, no_sockets):
    server, hub = olah_hub
    # Sockets are already guarded, so the resolved source is built by hand.
    weights = hub.files_first["model.safetensors"]
    resolved_files = (RemoteFile("model.safetensors", len(weights), None),)
    resolved = ResolvedSource(HfSource("Org/Tiny-Tokenizer", hub.first), hub.first, server.url, resolved_files)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "model.safetensors").write_bytes(weights)
    placed = fetch(resolved, ["model.safetensors"], tmp_path / "dest", endpoints_for(server.url), offline=False)
    assert placed["model.safetensors"].read_bytes() == weights
    assert no_sockets == []


def test_offline_without_cache_says_not_in_cache(hf_cache, no_sockets):
    source = HfSource("Org/Tiny-Tokenizer", "main")
    with pytest.raises(NotInCacheError) as caught:
        resolve(source, endpoints_for(dead_endpoint()), offline=True)
    assert "not in the Hugging Face cache" in str(caught.value) and str(hf_cache) in str(caught.value)
    assert "sync" in caught.value.hint and "import" in caught.value.hint
    assert isinstance(caught.value, SourceError) and isinstance(caught.value, NotSyncedError)
    assert caught.value.exit_code == NotSyncedError.exit_code
    assert no_sockets == []


def test_unknown_repo(olah_hub, hf_cache):
    server, _ = olah_hub
    with pytest.raises(RepoNotFoundError) as caught:
        resolve(HfSource("Org/No-Such-Repo", "main"), endpoints_for(server.url), offline=False)
    message = str(caught.value)
    assert "Org/No-Such-Repo" in message and "main" in message and server.url in message
    assert caught.value.endpoint == server.url


@pytest.mark.parametrize("revision", ["no-such-branch", "0" * 40])
def test_unknown_revision(olah_hub, hf_cache, revision):
    server, _ = olah_hub
    with pytest.raises(RevisionNotFoundError) as caught:
        resolve(HfSource("Org/Tiny-Tokenizer", revision), endpoints_for(server.url), offline=False)
    message = str(caught.value)
    assert "Org/Tiny-Tokenizer" in message and revision in message and server.url in message
    assert "main" in message  # the refs that do exist are listed


def test_dead_first_endpoint_falls_back_to_mirror(olah_hub, hf_cache, tmp_path):
    server, hub = olah_hub
    endpoints = endpoints_for(dead_endpoint(), server.url)
    resolved = resolve(HfSource("Org/Tiny-Tokenizer", hub.first), endpoints, offline=False)
    assert resolved.endpoint == server.url
    placed = fetch(resolved, FILES, tmp_path / "dest", endpoints, offline=False)
    assert placed["model.safetensors"].read_bytes() == hub.files_first["model.safetensors"]


def test_all_endpoints_dead_fails_fast_naming_each_and_hiding_token(hf_cache, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    first, second = dead_endpoint(), dead_endpoint()
    endpoints = Endpoints.from_settings(first, [second], os.environ)
    assert endpoints.token == FAKE_TOKEN and FAKE_TOKEN not in repr(endpoints)

    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        resolve(HfSource("Org/Tiny-Tokenizer", "main"), endpoints, offline=False)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert first in message and second in message
    assert caught.value.endpoints == [first, second]
    assert "HF_ENDPOINT" in message and "mirror" in message and "sync" in message and "import" in message
    assert FAKE_TOKEN not in message and FAKE_TOKEN not in repr(caught.value)


def test_safetensors_missing_but_pickle_present_suggests_allow_pickle(olah_hub, hf_cache, tmp_path):
    server, hub = olah_hub
    resolved = resolve(HfSource("Org/Legacy-Model", hub.legacy_commit), endpoints_for(server.url),
                       offline=False)
    assert "pytorch_model.bin" in resolved.names
    with pytest.raises(FileNotInSourceError) as caught:
        fetch(resolved, FILES, tmp_path / "dest", endpoints_for(server.url), offline=False)
    assert "model.safetensors" in str(caught.value) and "Org/Legacy-Model" in str(caught.value)
    assert "allow_pickle: true" in str(caught.value)


def test_fetch_skips_a_dead_endpoint_even_when_resolve_used_it(olah_hub, hf_cache, tmp_path):
    server, hub = olah_hub
    dead = dead_endpoint()
    resolved = resolve(HfSource("Org/Tiny-Tokenizer", "dev"), endpoints_for(server.url), offline=False)
    went_away = attrs.evolve(resolved, endpoint=dead)  # as if the endpoint died after resolving
    placed = fetch(went_away, FILES, tmp_path / "dest", endpoints_for(dead, server.url), offline=False)
    for name in FILES:
        assert placed[name].read_bytes() == hub.files_first[name]


@pytest.fixture
def not_a_hub():
    """A web server on loopback that answers every request with an HTML page (a captive portal)."""
    class Portal(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html>please log in</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_that_is_no_hub_counts_as_unreachable(olah_hub, hf_cache, not_a_hub):
    server, hub = olah_hub
    resolved = resolve(HfSource("Org/Tiny-Tokenizer", hub.first), endpoints_for(not_a_hub, server.url),
                       offline=False)
    assert resolved.endpoint == server.url
    with pytest.raises(NetworkError, match="not like a Hugging Face hub"):
        resolve(HfSource("Org/Tiny-Tokenizer", hub.first), endpoints_for(not_a_hub), offline=False)


def test_offline_fetch_of_a_file_never_downloaded_says_which(olah_hub, hf_cache, tmp_path, monkeypatch):
    server, hub = olah_hub
    source = HfSource("Org/Tiny-Tokenizer", hub.first)
    online = resolve(source, endpoints_for(server.url), offline=False)
    fetch(online, ["config.json"], tmp_path / "partial", endpoints_for(server.url), offline=False)

    tried = guard_sockets(monkeypatch)
    cached = resolve(source, endpoints_for(server.url), offline=True)
    assert cached.names == ("config.json",)  # the cache holds only what was downloaded
    with pytest.raises(NotInCacheError) as caught:
        fetch(cached, FILES, tmp_path / "dest", endpoints_for(server.url), offline=True)
    assert caught.value.missing == "model.safetensors" and "model.safetensors" in str(caught.value)
    assert tried == []


def test_overlapping_downloads_restore_huggingface_hubs_timeout():
    from huggingface_hub import constants

    from registry.sources.hub_download import _download_timeout

    original = constants.HF_HUB_DOWNLOAD_TIMEOUT
    first, second = _download_timeout(2.0), _download_timeout(5.0)
    first.__enter__()
    second.__enter__()   # a second thread's download starts while the first runs
    first.__exit__(None, None, None)
    assert constants.HF_HUB_DOWNLOAD_TIMEOUT == 5.0  # still in flight: not restored yet
    second.__exit__(None, None, None)
    assert constants.HF_HUB_DOWNLOAD_TIMEOUT == original
