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

import pytest

from registry.bundle import ImportSummary, export_bundle, import_bundle
from registry.errors import InputDataError, NotSyncedError, UnknownEntryError, VerificationError
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
        assert tree_digest(target.object_dir(artifact_id)) == tree_digest(store.object_dir(artifact_id))
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
