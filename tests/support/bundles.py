"""Hostile bundles for `import`: real exports whose objects are not what their ids promise.

``impostor_bundle`` writes a bundle whose objects carry the pinned artifact ids of the
packaged kronos-small and kronos-tokenizer-base but hold tiny checkpoints (or, with
``pickle_only``, a model holding only ``pytorch_model.bin``), exported through the real
``export_bundle`` from a scratch store, with a registry.yaml that redefines both entries
without their pinned config and parameter count (what an attacker would ship).

``lying_bundle`` rewrites a bundle so that one member holds ``actual`` bytes of zeros while
its manifest still declares the original size.

``renamed_bundle`` rewrites a real export so that one entry goes by another name (its
registry.yaml and bundle.json edited, every hash left intact): the rename an attacker makes
to slip a checkpoint in under a trusted name.

``socket_refusal(folder)`` writes a ``sitecustomize.py`` that refuses every outgoing
connection in a subprocess and records the address in ``folder/attempts``; put ``folder``
first on the subprocess's PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from registry.bundle import export_bundle
from registry.spec import HfSource, parse_registry
from registry.store import FileRecord, Manifest, Store, hf_artifact_id

from .cli import PACKAGE_DIR
from .kronos_checkpoints import model_checkpoint, tokenizer_checkpoint

PACKAGED_REGISTRY = PACKAGE_DIR / "models.yaml"
MODEL = "kronos-small"
TOKENIZER = "kronos-tokenizer-base"


def packaged_source(name: str) -> HfSource:
    source = parse_registry(PACKAGED_REGISTRY).get(name).source
    assert isinstance(source, HfSource) and source.is_pinned, source
    return source


def packaged_id(name: str) -> str:
    source = packaged_source(name)
    return hf_artifact_id(source.repo_id, source.revision, source.repo_type)


def _publish(store: Store, artifact_id: str, kind: str, entry: str, source: HfSource, folder: Path) -> None:
    with store.lock(artifact_id):
        staging = store.staging(artifact_id)
        records = []
        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            (staging / path.name).write_bytes(data)
            records.append(FileRecord(path.name, len(data), hashlib.sha256(data).hexdigest()))
        manifest = Manifest(artifact_id=artifact_id, kind=kind, entry=entry, source=str(source),
                            resolved_revision=source.revision, files=tuple(records), checks=("config-schema",))
        assert store.publish(artifact_id, staging, manifest)


def impostor_bundle(root: Path, output: Path, *, pickle_only: bool = False) -> Path:
    """Export tiny checkpoints under the packaged kronos-small/kronos-tokenizer-base ids."""
    import torch
    from safetensors.torch import load_file

    root.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_checkpoint(root / "tokenizer", group_size=4, seed=11)
    model = model_checkpoint(root / "model", seed=12)
    files = ""
    if pickle_only:
        weights = model / "model.safetensors"
        torch.save(load_file(str(weights)), model / "pytorch_model.bin")
        weights.unlink()
        files = "    files: [config.json, pytorch_model.bin]\n    allow_pickle: true\n"
    store = Store(root / "store")
    _publish(store, packaged_id(TOKENIZER), "tokenizer", TOKENIZER, packaged_source(TOKENIZER), tokenizer)
    _publish(store, packaged_id(MODEL), "model", MODEL, packaged_source(MODEL), model)
    registry = root / "models.yaml"
    registry.write_text(
        f"schema: 1\ntokenizers:\n  {TOKENIZER}:\n    source: {packaged_source(TOKENIZER)}\n"
        f"models:\n  {MODEL}:\n    source: {packaged_source(MODEL)}\n    tokenizer: {TOKENIZER}\n"
        f"    context_length: 512\n{files}")
    export_bundle(store, parse_registry(registry, check_references=True), [MODEL], output)
    return output


def lying_bundle(good: Path, output: Path, member_suffix: str, actual: int) -> Path:
    """A gzip copy of ``good`` whose member ending in ``member_suffix`` holds ``actual`` zero bytes."""
    with tarfile.open(good) as tin, tarfile.open(output, "w:gz", format=tarfile.PAX_FORMAT) as tout:
        for info in tin.getmembers():
            if info.name.endswith(member_suffix):
                info.size = actual
                tout.addfile(info, _Zeros(actual))
            else:
                tout.addfile(info, tin.extractfile(info))
    return output


def renamed_bundle(good: Path, output: Path, old: str, new: str) -> Path:
    """A copy of ``good`` whose entry ``old`` is called ``new`` in registry.yaml and bundle.json."""
    def rename(data: bytes) -> bytes:
        text = data.decode()
        return text.replace(f"  {old}:", f"  {new}:").replace(f'"{old}"', f'"{new}"').encode()

    with tarfile.open(good) as tin, tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read() if info.isfile() else None
            if info.name.rsplit("/", 1)[-1] in ("registry.yaml", "bundle.json"):
                data = rename(data)
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    return output


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read in chunks (never held in memory at once)."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


SITECUSTOMIZE = '''\
import socket

def _refuse(self, address, *args):
    with open({attempts!r}, "a") as log:
        log.write(repr(address) + "\\n")
    raise OSError("test guard: network connection attempted to %r" % (address,))

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
'''


def socket_refusal(folder: Path) -> Path:
    """A folder holding a sitecustomize.py that refuses (and logs) every connection."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(attempts=str(folder / "attempts")))
    return folder
