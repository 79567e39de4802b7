"""Bundles: export from one store, import into another, and every unsafe or corrupt bundle refused.

Every refusal must name the bundle and the culprit member and leave the target store
byte-for-byte as it was (checked by hashing every path and file before and after).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import struct
import tarfile
from pathlib import Path
from typing import Callable

import attrs
import pytest

from registry.bundle import ImportSummary, export_bundle, import_bundle
from registry.errors import (
    InputDataError,
    NotSyncedError,
    ShadowingError,
    UnknownEntryError,
    VerificationError,
)
from registry.spec import LocalSource, parse_registry
from registry.store import FileRecord, Manifest, Ref, Store, hf_artifact_id, local_artifact_id
from tests.support.trees import tree_digest

TOK_SHA = "1a" * 20
OTHER_SHA = "2b" * 20
TOK_ID = hf_artifact_id("acme/tiny-tok", TOK_SHA)


def safetensors_bytes(payload: bytes) -> bytes:
    """A well-formed safetensors file holding ``payload`` as one U8 tensor (import checks headers)."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + payload


TOK_FILES = {"config.json": b'{"d_in": 6, "group_size": 4}', "model.safetensors": safetensors_bytes(bytes(range(256)) * 8)}
MODEL_FILES = {"config.json": b'{"s1_bits": 10}', "model.safetensors": safetensors_bytes(b"w" * 40_000)}
MODEL_ID = local_artifact_id("tiny-model", {n: hashlib.sha256(d).hexdigest() for n, d in MODEL_FILES.items()})

REGISTRY = f"""\
schema: 1
endpoint: https://hub.example.com
tokenizers:
  tiny-tok:
    source: hf://acme/tiny-tok@main
    params: 1000
    config: {{d_in: 6, group_size: 4}}
models:
  tiny-model:
    display_name: Tiny
    description: "no"
    source: ./ckpt/tiny-model
    tokenizer: tiny-tok
    context_length: 64
    params: 1.2K
    config: {{s1_bits: 10, ffn_dropout_p: 0.1, learn_te: true}}
  other-model:
    source: hf://acme/other@{OTHER_SHA}
    tokenizer: tiny-tok
    context_length: 64
"""


def publish(store: Store, artifact_id: str, entry: str, kind: str, source: str, revision: str | None,
            files: dict[str, bytes]) -> None:
    """Publish ``files`` as one artifact through the store's own path, then point ``entry`` at it."""
    with store.lock(artifact_id):
        staging = store.staging(artifact_id)
        records = []
        for name, data in files.items():
            (staging / name).write_bytes(data)
            records.append(FileRecord(name, len(data), hashlib.sha256(data).hexdigest()))
        manifest = Manifest(artifact_id=artifact_id, kind=kind, entry=entry, source=source,
                            resolved_revision=revision, files=tuple(records), checks=("test",))
        assert store.publish(artifact_id, staging, manifest)
    store.set_ref(Ref(entry=entry, artifact_id=artifact_id, source=source, resolved_revision=revision,
                      fingerprint=(("config.json", 1, 2),) if revision is None else None))


@pytest.fixture
def source(tmp_path):
    """A registry file and a store holding its tokenizer (hf, unpinned) and a local model."""
    folder = tmp_path / "src"
    folder.mkdir()
    registry = folder / "models.yaml"
    registry.write_text(REGISTRY)
    spec = parse_registry(registry, check_references=True)
    store = Store(tmp_path / "store-a")
    publish(store, TOK_ID, "tiny-tok", "tokenizer", "hf://acme/tiny-tok@main", TOK_SHA, TOK_FILES)
    publish(store, MODEL_ID, "tiny-model", "model", str(spec.get("tiny-model").source), None, MODEL_FILES)
    return spec, store


@pytest.fixture
def bundle(source, tmp_path) -> Path:
    spec, store = source
    output = tmp_path / "out" / "tiny.tar"
    export_bundle(store, spec, ["tiny-model"], output)
    return output


# --- round trip ---------------------------------------------------------------------------------

def portable(store: Store, artifact_id: str) -> tuple[dict, Manifest]:
    """An object as any machine holds it: every file, and the manifest less the stat that
    publish records of this machine's copy (mtime_ns, inode: what lets a load skip hashing)
    and what this machine checked each file against (an import can only vouch for a bundle)."""
    digest = tree_digest(store.object_dir(artifact_id))
    digest["MANIFEST.json"] = digest["MANIFEST.json"][:2]  # type and mode; the bytes compare below
    manifest = store.read_manifest(artifact_id)
    local = tuple(attrs.evolve(record, mtime_ns=None, inode=None, checked_against=None) for record in manifest.files)
    return digest, attrs.evolve(manifest, files=local)


@pytest.mark.parametrize("name", ["tiny.tar", "tiny.tar.gz"])
def test_round_trip_gives_equal_objects_and_refs(source, tmp_path, name):
    spec, store = source
    output = tmp_path / name
    summary = export_bundle(store, spec, ["tiny-model"], output)
    assert summary.artifacts == (TOK_ID, MODEL_ID)
    assert summary.entries == ("tiny-tok", "tiny-model")
    assert summary.bytes == sum(map(len, [*TOK_FILES.values(), *MODEL_FILES.values()]))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    if name.endswith(".gz"):
        assert output.read_bytes()[:2] == b"\x1f\x8b"

    target = Store(tmp_path / "store-b")
    result = import_bundle(target, output)
    assert isinstance(result, ImportSummary)
    assert result.artifacts == tuple(sorted((TOK_ID, MODEL_ID))) and result.skipped == ()
    assert result.bytes == summary.bytes
    assert set(result.refs) == {"tiny-tok", "tiny-model"}
    for artifact_id in (TOK_ID, MODEL_ID):
        assert portable(target, artifact_id) == portable(store, artifact_id)
        # Nothing in this store pins these files: they rest on the exporter's record alone.
        assert {r.checked_against for r in target.read_manifest(artifact_id).files} == {"bundle"}
        assert target.check(artifact_id, deep=True) == []

    tok_ref = target.get_ref("tiny-tok")
    assert (tok_ref.artifact_id, tok_ref.source, tok_ref.resolved_revision) == (
        TOK_ID, "hf://acme/tiny-tok@main", TOK_SHA)
    model_ref = target.get_ref("tiny-model")
    assert model_ref.artifact_id == MODEL_ID
    # The exporting machine's folder means nothing here: the ref names the store's copy.
    assert model_ref.source == str(target.object_dir(MODEL_ID)) and model_ref.fingerprint is None


def test_saved_registry_is_valid_and_points_into_the_target_store(bundle, tmp_path):
    target = Store(tmp_path / "store-b")
    result = import_bundle(target, bundle)
    assert result.registry_path == target.root / "registries" / "tiny.yaml"
    spec = parse_registry(result.registry_path, check_references=True)
    assert sorted(spec.names()) == ["tiny-model", "tiny-tok"]  # other-model was not exported
    assert spec.endpoint is None  # never overrides the target machine's own hub settings
    model = spec.get("tiny-model")
    assert model.source == LocalSource(target.object_dir(MODEL_ID))
    assert (model.tokenizer, model.context_length, str(model.params), model.description) == (
        "tiny-tok", 64, "1.2K", "no")
    assert model.config == {"s1_bits": 10, "ffn_dropout_p": 0.1, "learn_te": True}
    # An unpinned hub source is written pinned to the commit that was exported.
    assert str(spec.get("tiny-tok").source) == f"hf://acme/tiny-tok@{TOK_SHA}"


def test_bundle_registry_member_parses_on_its_own(bundle, tmp_path):
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        text = tar.extractfile("registry.yaml").read()
    assert names[:2] == ["bundle.json", "registry.yaml"]
    assert f"objects/{MODEL_ID}/MANIFEST.json" in names
    path = tmp_path / "registries" / "registry.yaml"
    path.parent.mkdir()
    path.write_bytes(text)
    spec = parse_registry(path, check_references=True)
    assert spec.get("tiny-model").source == LocalSource(tmp_path / "objects" / MODEL_ID)


def test_loader_finds_imported_entries_offline(bundle, tmp_path):
    from registry.loader import Loader

    target = Store(tmp_path / "store-b")
    result = import_bundle(target, bundle)
    loader = Loader(parse_registry(result.registry_path, check_references=True), target, offline=True,
                    env={"HF_HUB_OFFLINE": "1"})
    located = loader.locate("tiny-model", sync_missing=False)
    assert located.artifact_id == MODEL_ID and located.tokenizer.artifact_id == TOK_ID


def test_import_twice_skips_the_second_time(bundle, tmp_path):
    target = Store(tmp_path / "store-b")
    import_bundle(target, bundle)
    objects_before = tree_digest(target.objects_dir)
    again = import_bundle(target, bundle)
    assert again.artifacts == () and again.skipped == tuple(sorted((TOK_ID, MODEL_ID)))
    assert again.bytes == 0
    assert tree_digest(target.objects_dir) == objects_before


def test_import_repairs_a_damaged_stored_copy(bundle, tmp_path):
    target = Store(tmp_path / "store-b")
    import_bundle(target, bundle)
    (target.object_dir(MODEL_ID) / "model.safetensors").write_bytes(b"short")
    again = import_bundle(target, bundle)
    assert again.artifacts == (MODEL_ID,) and again.skipped == (TOK_ID,)
    assert target.check(MODEL_ID, deep=True) == []


def test_bundle_holds_no_token(source, tmp_path, monkeypatch):
    token = "hf_secretTOKEN1234567890"
    monkeypatch.setenv("HF_TOKEN", token)
    spec, store = source
    output = tmp_path / "tiny.tar"
    export_bundle(store, spec, ["tiny-model"], output)
    assert token.encode() not in output.read_bytes()


# --- export errors ------------------------------------------------------------------------------

def test_export_of_an_unsynced_entry_is_a_clear_error(source, tmp_path):
    spec, store = source
    output = tmp_path / "x.tar"
    with pytest.raises(NotSyncedError) as caught:
        export_bundle(store, spec, ["other-model"], output)
    assert "'other-model' is not in the store" in str(caught.value)
    assert "kronos-registry sync other-model" in str(caught.value)
    assert list(tmp_path.glob("*x.tar*")) == []


def test_export_of_an_unknown_name_suggests_one(source, tmp_path):
    spec, store = source
    with pytest.raises(UnknownEntryError, match="tiny-model"):
        export_bundle(store, spec, ["tiny-modle"], tmp_path / "x.tar")


def test_export_refuses_a_copy_damaged_in_place(source, tmp_path):
    spec, store = source
    path = store.object_dir(MODEL_ID) / "model.safetensors"
    path.write_bytes(b"x" * path.stat().st_size)  # same size: only the hash can tell
    output = tmp_path / "x.tar"
    with pytest.raises(VerificationError, match="model.safetensors"):
        export_bundle(store, spec, ["tiny-model"], output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "store-a"]


# --- refused bundles ----------------------------------------------------------------------------

def member(name: str, data: bytes = b"x", type_: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.size = len(data) if type_ == tarfile.REGTYPE else 0
    return info, data if type_ == tarfile.REGTYPE else None


def rewrite(src: Path, dst: Path, *, drop=(), replace=None, add=()) -> Path:
    """A copy of bundle ``src`` with members dropped, their bytes replaced, or members added."""
    replace = replace or {}
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for info in tin.getmembers():
            if info.name in drop:
                continue
            data = replace.get(info.name, tin.extractfile(info).read())
            info = copy.copy(info)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
        for info, data in add:
            tout.addfile(info, None if data is None else io.BytesIO(data))
    return dst


def flipped(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


def truncated(src: Path, dst: Path) -> Path:
    with tarfile.open(src) as tar:
        last = tar.getmember(f"objects/{MODEL_ID}/model.safetensors")
    dst.write_bytes(src.read_bytes()[: last.offset_data + last.size // 2])
    return dst


def truncated_gz(src: Path, dst: Path) -> Path:
    import gzip

    data = gzip.compress(src.read_bytes())
    dst.write_bytes(data[: len(data) * 2 // 3])
    return dst


MODEL_FILE = f"objects/{MODEL_ID}/model.safetensors"
TOK_MANIFEST = f"objects/{TOK_ID}/MANIFEST.json"

# name -> (make the bad bundle from a good one, the error class, the culprit the message names)
CASES: dict[str, tuple[Callable[[Path, Path], Path], type, str]] = {
    "absolute path": (lambda s, d: rewrite(s, d, add=[member("/tmp/evil")]), InputDataError, "/tmp/evil"),
    "dot-dot": (lambda s, d: rewrite(s, d, add=[member("../escape")]), InputDataError, "../escape"),
    "dot-dot inside objects": (lambda s, d: rewrite(s, d, add=[member(f"objects/{TOK_ID}/../../escape")]),
                               InputDataError, f"objects/{TOK_ID}/../../escape"),
    "symlink": (lambda s, d: rewrite(s, d, add=[member(f"objects/{TOK_ID}/link", type_=tarfile.SYMTYPE,
                                                       linkname="/etc/passwd")]),
                InputDataError, f"objects/{TOK_ID}/link"),
    "hardlink": (lambda s, d: rewrite(s, d, add=[member(f"objects/{MODEL_ID}/hard", type_=tarfile.LNKTYPE,
                                                        linkname=MODEL_FILE)]),
                 InputDataError, f"objects/{MODEL_ID}/hard"),
    "fifo": (lambda s, d: rewrite(s, d, add=[member(f"objects/{TOK_ID}/pipe", type_=tarfile.FIFOTYPE)]),
             InputDataError, f"objects/{TOK_ID}/pipe"),
    "device": (lambda s, d: rewrite(s, d, add=[member(f"objects/{TOK_ID}/dev", type_=tarfile.CHRTYPE)]),
               InputDataError, f"objects/{TOK_ID}/dev"),
    "sha256 mismatch": (lambda s, d: rewrite(s, d, replace={MODEL_FILE: flipped(MODEL_FILES["model.safetensors"])}),
                        VerificationError, "model.safetensors"),
    "size mismatch": (lambda s, d: rewrite(s, d, replace={MODEL_FILE: b"short"}),
                      VerificationError, "model.safetensors"),
    "missing manifest": (lambda s, d: rewrite(s, d, drop=[TOK_MANIFEST]), InputDataError, TOK_MANIFEST),
    "member outside objects": (lambda s, d: rewrite(s, d, add=[member("notes.txt")]), InputDataError, "notes.txt"),
    "file directly in objects": (lambda s, d: rewrite(s, d, add=[member("objects/loose")]),
                                 InputDataError, "objects/loose"),
    "invalid artifact id": (lambda s, d: rewrite(s, d, add=[member("objects/bad..id/config.json")]),
                            InputDataError, "objects/bad..id/config.json"),
    "hidden artifact id": (lambda s, d: rewrite(s, d, add=[member("objects/.hidden/config.json")]),
                           InputDataError, "objects/.hidden/config.json"),
    "duplicated member": (lambda s, d: rewrite(s, d, add=[member(f"objects/{TOK_ID}/config.json", b"{}")]),
                          InputDataError, f"objects/{TOK_ID}/config.json"),
    "file not in manifest": (lambda s, d: rewrite(s, d, add=[member(f"objects/{TOK_ID}/extra.bin")]),
                             InputDataError, f"objects/{TOK_ID}/extra.bin"),
    "manifest file missing": (lambda s, d: rewrite(s, d, drop=[MODEL_FILE]), InputDataError, MODEL_FILE),
    "missing bundle.json": (lambda s, d: rewrite(s, d, drop=["bundle.json"]), InputDataError, "bundle.json"),
    "bad bundle.json": (lambda s, d: rewrite(s, d, replace={"bundle.json": b"{not json"}),
                        InputDataError, "bundle.json"),
    "registry names a foreign folder": (
        lambda s, d: rewrite(s, d, replace={"registry.yaml": (
            "schema: 1\ntokenizers:\n  tiny-tok:\n    source: hf://acme/tiny-tok@main\n"
            "models:\n  tiny-model:\n    source: /etc\n    tokenizer: tiny-tok\n    context_length: 8\n"
        ).encode()}),
        InputDataError, "registry.yaml"),
    "invalid registry": (lambda s, d: rewrite(s, d, replace={"registry.yaml": b"schema: 7\n"}),
                         InputDataError, "registry.yaml"),
    "truncated tar": (truncated, InputDataError, MODEL_FILE),
    "truncated tar.gz": (truncated_gz, InputDataError, "truncated or corrupt"),
    "not a tar": (lambda s, d: (d.write_bytes(b"PK\x03\x04 certainly not a tar" * 40), d)[1],
                  InputDataError, "not a readable tar"),
    "empty file": (lambda s, d: (d.write_bytes(b""), d)[1], InputDataError, "not a readable tar"),
}


@pytest.fixture(params=["missing", "populated"])
def target(request, tmp_path) -> Store:
    """The store a bad bundle is imported into: not yet created, or already holding an artifact."""
    store = Store(tmp_path / f"target-{request.param}")
    if request.param == "populated":
        publish(store, hf_artifact_id("acme/else", OTHER_SHA), "else", "tokenizer",
                f"hf://acme/else@{OTHER_SHA}", OTHER_SHA, {"config.json": b"{}"})
    return store


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_bundle_is_refused_and_the_store_unchanged(case, bundle, target, tmp_path):
    make, error, culprit = CASES[case]
    bad = make(bundle, tmp_path / ("bad.tar.gz" if case.endswith(".gz") else "bad.tar"))
    before = tree_digest(target.root)
    with pytest.raises(error) as caught:
        import_bundle(target, bad)
    message = str(caught.value)
    assert str(bad) in message, message
    assert culprit in message, message
    if error is VerificationError:
        assert MODEL_ID in message
    assert tree_digest(target.root) == before


def test_bundle_over_the_size_bound_is_refused(bundle, target):
    before = tree_digest(target.root)
    with pytest.raises(InputDataError, match="limit") as caught:
        import_bundle(target, bundle, max_bytes=1000)
    assert str(bundle) in str(caught.value)
    assert tree_digest(target.root) == before


def test_missing_bundle_file(target, tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        import_bundle(target, tmp_path / "nope.tar")


# --- imported objects pass the same checks as a sync (issue 9 item 1) ----------------------------

@pytest.fixture(scope="module")
def packaged_registry():
    from kronos_registry.api import PACKAGED_REGISTRY
    from registry.spec import load_registry

    return load_registry(None, default_path=PACKAGED_REGISTRY, env={}, cwd=PACKAGED_REGISTRY.parent)


@pytest.mark.parametrize("pickle_only", [False, True], ids=["tiny-model", "pickle-only"])
def test_impostor_of_packaged_entries_is_refused_before_publishing(packaged_registry, tmp_path, pickle_only):
    from kronos_registry.kronos.checks import kronos_checks
    from registry.loader import Loader
    from tests.support.bundles import MODEL, TOKENIZER, impostor_bundle, packaged_id

    bundle = impostor_bundle(tmp_path / "attacker", tmp_path / "evil.tar", pickle_only=pickle_only)
    target = Store(tmp_path / "target")
    publish(target, hf_artifact_id("acme/else", OTHER_SHA), "else", "tokenizer",  # a store in use
            f"hf://acme/else@{OTHER_SHA}", OTHER_SHA, {"config.json": b"{}"})
    before = tree_digest(target.root)
    with pytest.raises(ShadowingError):  # unasked, it cannot take the packaged names at all
        import_bundle(target, bundle, checks=kronos_checks, registry=packaged_registry)
    with pytest.raises(VerificationError) as caught:  # asked, it must still pass their checks
        import_bundle(target, bundle, checks=kronos_checks, registry=packaged_registry,
                      replace={MODEL, TOKENIZER})
    message = str(caught.value)
    assert str(bundle) in message and "nothing was imported" in message
    # Checked against the packaged entries, which pin the config and the parameter count.
    assert f"'{MODEL}'" in message and "d_model is 32 but the registry pins 512" in message
    if pickle_only:
        assert "model.safetensors is missing" in message
    assert tree_digest(target.root) == before  # no object, no ref, no staging, no registry file
    loader = Loader(packaged_registry, target, checks=kronos_checks, offline=True, env={})
    assert loader.status(MODEL) is None and loader.status(TOKENIZER) is None
    assert not target.has(packaged_id(MODEL)) and not target.has(packaged_id(TOKENIZER))


def _demo_bundle(tmp_path: Path) -> Path:
    """The packaged demo, synced and exported through the real CLI."""
    from tests.support.cli import Cli

    exporter = Cli(tmp_path / "exporter")
    demo = tmp_path / "demo.tar"
    assert (done := exporter("sync", "kronos-demo")).code == 0, done.output
    assert (done := exporter("export", "kronos-demo", "-o", demo)).code == 0, done.output
    return demo


def test_a_bundle_renamed_to_a_packaged_name_takes_it_only_when_asked(tmp_path):
    """Issue 23 item 1: the demo exported, renamed kronos-small inside the tar, imported afresh."""
    from tests.support.bundles import renamed_bundle
    from tests.support.cli import Cli

    demo = _demo_bundle(tmp_path)
    evil = renamed_bundle(demo, tmp_path / "small.tar", "kronos-demo", "kronos-small")
    fresh = Cli(tmp_path / "fresh")
    before = tree_digest(fresh.store) if fresh.store.exists() else None
    refused = fresh("import", evil)
    assert refused.code == InputDataError.exit_code, refused.output
    assert "'kronos-small'" in refused.output and "--replace kronos-small" in refused.output
    assert "Traceback" not in refused.output
    assert (tree_digest(fresh.store) if fresh.store.exists() else None) == before
    listed = {i["name"]: i for i in json.loads(fresh("list", "--json").stdout)}
    assert listed["kronos-small"]["replaces"] is None and listed["kronos-small"]["bundle"] is None

    taken = fresh("import", evil, "--replace", "kronos-small")
    assert taken.code == 0, taken.output
    listed = {i["name"]: i for i in json.loads(fresh("list", "--json").stdout)}
    assert listed["kronos-small"]["replaces"].endswith("models.yaml"), listed["kronos-small"]
    assert listed["kronos-mini"]["replaces"] is None
    assert listed["kronos-demo-tokenizer"]["replaces"] is None  # the same files: not a replacement
    assert "[replaces models.yaml]" in fresh("list").stdout
    assert "replaces" in (shown := fresh("show", "kronos-small")).stdout, shown.output
    _served_names_say_replaced(fresh.store)


def _served_names_say_replaced(store):
    """HTTP's /v1/models and the page read the service's infos; MCP's list_models its summaries."""
    from kronos_registry.services.lanes import ForecastService
    from kronos_registry.services.registry import Registry
    from kronos_registry.services.wire import ModelSummary

    service = ForecastService(Registry(None, store, offline=True, env={}))
    try:
        infos = {info["name"]: info for info in service.models()}
    finally:
        service.close()
    assert infos["kronos-small"]["replaces"].endswith("models.yaml")
    summary = ModelSummary.from_info(infos["kronos-small"])
    assert summary.replaces == infos["kronos-small"]["replaces"] and summary.bundle == "small.tar"
    assert ModelSummary.from_info(infos["kronos-mini"]).replaces is None


def test_a_bundle_of_an_entry_as_the_registry_defines_it_needs_no_replace(tmp_path):
    from tests.support.cli import Cli

    demo = _demo_bundle(tmp_path)
    fresh = Cli(tmp_path / "fresh")
    assert (done := fresh("import", demo)).code == 0, done.output
    listed = {i["name"]: i for i in json.loads(fresh("list", "--json").stdout)}
    assert listed["kronos-demo"]["bundle"] == "demo.tar" and listed["kronos-demo"]["replaces"] is None


def test_artifact_used_by_no_entry_cannot_be_verified(bundle, tmp_path):
    with tarfile.open(bundle) as tar:
        index = json.loads(tar.extractfile("bundle.json").read())
    index["refs"] = [r for r in index["refs"] if r["entry"] != "tiny-model"]
    text = (f"schema: 1\ntokenizers:\n  tiny-tok:\n    source: hf://acme/tiny-tok@{TOK_SHA}\n"
            "    params: 1000\n    config: {d_in: 6, group_size: 4}\n")
    bad = rewrite(bundle, tmp_path / "orphan.tar", replace={"bundle.json": json.dumps(index).encode(),
                                                              "registry.yaml": text.encode()})
    target = Store(tmp_path / "target")
    with pytest.raises(InputDataError, match=f"{MODEL_ID} is used by no entry"):
        import_bundle(target, bad)
    assert not target.root.exists()


# --- a lying bundle never fills the disk (issue 9 item 5) ----------------------------------------

def test_member_larger_than_its_manifest_says_is_refused_before_copying(bundle, target, tmp_path):
    from tests.support.bundles import lying_bundle

    actual = 16 * 2**20  # 16 MiB of zeros: a ~16 KB .tar.gz
    bad = lying_bundle(bundle, tmp_path / "liar.tar.gz", MODEL_FILE, actual)
    assert bad.stat().st_size < 2**20
    before = tree_digest(target.root)
    with pytest.raises(VerificationError) as caught:
        import_bundle(target, bad)
    message = str(caught.value)
    declared = len(MODEL_FILES["model.safetensors"])
    assert f"bundle {bad} lied" in message, message
    assert f"member '{MODEL_FILE}' is {actual} bytes" in message and f"declares {declared}" in message
    assert tree_digest(target.root) == before  # nothing in staging either


def test_copy_stops_at_the_declared_size_even_when_the_header_agrees(bundle, tmp_path, monkeypatch):
    # Defence in depth: should the tar stream deliver more than its header says, the copy
    # still stops one byte past the manifest's size.
    import registry.bundle.importing as bundle_module

    real_open = bundle_module._open_member

    def endless(bundle_path, tar, member):
        handle = real_open(bundle_path, tar, member)
        if not member.name.endswith("/model.safetensors"):
            return handle

        class Endless:  # "endless" up to 32 MiB: a broken importer must not fill the test's disk
            left = 32 * 2**20

            def read(self, n=-1):
                n = min(n, Endless.left)
                Endless.left -= n
                return b"\0" * n
        return Endless()

    monkeypatch.setattr(bundle_module, "_open_member", endless)
    target = Store(tmp_path / "target")
    with pytest.raises(VerificationError, match="lied"):
        import_bundle(target, bundle)
    assert not target.root.exists()


# --- imported entries work by name; imports never lose each other's entries (issue 10 item 2) ----

def _second_bundle(tmp_path: Path, name: str, entry: str, payload: bytes, folder: str = "second") -> Path:
    """A bundle from another machine: one local tokenizer entry ``entry``."""
    files = {"config.json": b'{"d_in": 6}', "model.safetensors": safetensors_bytes(payload)}
    artifact = local_artifact_id(entry, {n: hashlib.sha256(d).hexdigest() for n, d in files.items()})
    root = tmp_path / folder
    root.mkdir(exist_ok=True)
    (root / "models.yaml").write_text(f"schema: 1\ntokenizers:\n  {entry}:\n    source: ./ckpt\n")
    spec = parse_registry(root / "models.yaml")
    store = Store(root / "store")
    publish(store, artifact, entry, "tokenizer", str(spec.get(entry).source), None, files)
    return export_bundle(store, spec, [entry], root / name).path


def test_imported_registry_files_overlay_the_packaged_one_by_name(bundle, tmp_path):
    from registry.bundle.imported import bundle_name, registry_files
    from registry.spec import load_registry

    target = Store(tmp_path / "target")
    first = import_bundle(target, bundle)
    second = import_bundle(target, _second_bundle(tmp_path, "other.tar", "other-tok", b"o" * 64))
    assert registry_files(target.root) == sorted([first.registry_path, second.registry_path])
    assert bundle_name(first.registry_path) == "tiny.tar" and bundle_name(second.registry_path) == "other.tar"
    packaged = tmp_path / "packaged.yaml"
    packaged.write_text("schema: 1\ntokenizers:\n  base-tok:\n    source: hf://acme/base@main\n")
    user = tmp_path / "user.yaml"
    user.write_text(f"schema: 1\ntokenizers:\n  other-tok:\n    source: hf://acme/mine@{OTHER_SHA}\n")
    spec = load_registry(user, default_path=packaged, env={}, overlays=registry_files(target.root))
    assert sorted(spec.names()) == ["base-tok", "other-tok", "tiny-model", "tiny-tok"]
    assert spec.get("tiny-model").source == LocalSource(target.object_dir(MODEL_ID))
    assert str(spec.get("other-tok").source).startswith("hf://acme/mine")  # the user's file wins
    assert spec.paths == (str(packaged), *map(str, registry_files(target.root)), str(user))


def test_a_second_bundle_of_the_same_file_name_keeps_the_first_ones_entries(bundle, tmp_path):
    target = Store(tmp_path / "target")
    first = import_bundle(target, bundle)
    again = import_bundle(target, bundle)  # the same bundle again: its own file is rewritten
    assert again.registry_path == first.registry_path
    other = _second_bundle(tmp_path, "tiny.tar", "other-tok", b"o" * 64)
    second = import_bundle(target, other)
    assert second.registry_path == target.root / "registries" / "tiny-2.yaml"
    assert sorted(parse_registry(first.registry_path).names()) == ["tiny-model", "tiny-tok"]
    assert parse_registry(second.registry_path).names() == ["other-tok"]


def test_a_name_defined_differently_by_an_earlier_import_is_refused(bundle, tmp_path):
    target = Store(tmp_path / "target")
    first = import_bundle(target, bundle)
    clash = _second_bundle(tmp_path, "clash.tar", "tiny-tok", b"c" * 64)
    before = tree_digest(target.root)
    with pytest.raises(InputDataError) as caught:
        import_bundle(target, clash)
    message = str(caught.value)
    assert f"entry 'tiny-tok' is already defined differently by {first.registry_path}" in message
    assert "imported from tiny.tar" in message and "nothing was imported" in message
    assert f"delete {first.registry_path}" in message and "rename 'tiny-tok'" in message
    assert tree_digest(target.root) == before


def test_offline_flow_export_import_predict_by_name_with_sockets_refused(tmp_path):
    """Issue 10 item 2: export on one machine, import into a fresh store, `predict NAME` offline."""
    import os

    from tests.support.bundles import socket_refusal
    from tests.support.cli import SAMPLE_CSV, Cli
    from tests.support.kronos_checkpoints import TINY_MODEL, TINY_TOKENIZER, model_checkpoint, tokenizer_checkpoint

    project = tmp_path / "project"
    tokenizer_checkpoint(project / "ckpt" / "tok", seed=3)
    model_checkpoint(project / "ckpt" / "model", seed=4)
    (project / "models.yaml").write_text(
        f"schema: 1\ntokenizers:\n  my-tok:\n    source: ./ckpt/tok\n    config: {json.dumps(TINY_TOKENIZER)}\n"
        f"models:\n  my-finetune:\n    source: ./ckpt/model\n    tokenizer: my-tok\n    context_length: 64\n"
        f"    config: {json.dumps(TINY_MODEL)}\n")
    connected = Cli(tmp_path / "connected")
    assert (done := connected("--registry", project / "models.yaml", "sync", "my-finetune")).code == 0, done.output
    bundle = tmp_path / "carry" / "bundle.tar"
    assert (done := connected("--registry", project / "models.yaml", "export", "my-finetune", "-o", bundle)).code == 0, \
        done.output

    guard = socket_refusal(tmp_path / "guard")
    offline = Cli(tmp_path / "air-gapped")  # a fresh store, no models.yaml anywhere near
    env = {"PYTHONPATH": os.pathsep.join([str(guard), offline.env()["PYTHONPATH"]])}
    imported = offline("import", bundle, env=env)
    assert imported.code == 0, imported.output
    forecast = offline("--offline", "predict", "my-finetune", "--input", SAMPLE_CSV, "--pred-len", "3",
                       "--seed", "1", env=env)
    assert forecast.code == 0, forecast.output
    listed = {i["name"]: i for i in json.loads(offline("--offline", "list", "--json", env=env).stdout)}
    assert listed["my-finetune"]["synced"] and listed["my-tok"]["synced"]
    assert listed["my-finetune"]["bundle"] == "bundle.tar" and listed["kronos-small"]["bundle"] is None
    table = offline("--offline", "list", env=env)
    assert "[from bundle.tar]" in table.stdout, table.output
    # A second bundle (same file name, another machine's entry) adds; the first's entries stay.
    other = tmp_path / "other-project"
    tokenizer_checkpoint(other / "ckpt", seed=9)
    (other / "models.yaml").write_text("schema: 1\ntokenizers:\n  their-tok:\n    source: ./ckpt\n")
    second_machine = Cli(tmp_path / "second")
    assert second_machine("--registry", other / "models.yaml", "sync", "their-tok").code == 0
    second = tmp_path / "carry2" / "bundle.tar"
    assert second_machine("--registry", other / "models.yaml", "export", "their-tok", "-o", second).code == 0
    assert (done := offline("import", second, env=env)).code == 0, done.output
    names = {i["name"] for i in json.loads(offline("--offline", "list", "--json", env=env).stdout)}
    assert {"my-finetune", "my-tok", "their-tok"} <= names
    assert not (guard / "attempts").exists(), (guard / "attempts").read_text()
