"""A catalogue of bad input, each case run through the real `kronos-registry` subprocess.

Every case starts from a store that already holds a good, synced artifact (kronos-demo and its
tokenizer, synced once per module into a template and copied per case), feeds the CLI one
mistake, and asserts the four things a user and an operator rely on:

1. the documented non-zero exit code of that class of mistake (cli.py's EXIT_CODES_HELP),
2. a message on stderr that names the culprit (the file, line, key, column, member or option),
3. no traceback anywhere,
4. the store byte for byte as it was: every path, its type, its permission bits and the bytes
   of every file (a failed sync must not leave staging debris, lock files or a rewritten ref);
5. the user's inputs as they were, by the same measure: the registry file, checkpoint folder,
   CSV or bundle the case wrote, and a regular file given as the store.

The cases are table-driven (``CASES``), grouped by what is wrong: the registry file, a
checkpoint's config, its weights, a candle CSV, a command-line argument, an import bundle.
They are independent, so a module fixture runs the selected ones two at a time (each
subprocess spends most of its time importing torch) and each test only checks its outcome.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import shutil
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests.support.cli import (
    DEMO,
    DEMO_MODEL_DIR,
    DEMO_TOKENIZER,
    DEMO_TOKENIZER_DIR,
    SAMPLE_CSV,
    Cli,
    Result,
)
from tests.support.trees import describe_changes, tree_digest

REGISTRY = "models.yaml"  # every case writes its registry file, CSV, bundle under its own folder
CSV = "candles.csv"
BUNDLE = "bundle.tar"
WORKERS = 2  # the machine has two cores; each subprocess is mostly torch's import


# =============================================================================================
# The assets every case may start from (built once per module)
# =============================================================================================


@dataclass(frozen=True)
class Assets:
    template: Cli          # its store holds kronos-demo and its tokenizer, synced; never modified
    tokenizer_2k: Path     # a genuine tiny tokenizer checkpoint with group_size 5 (Tokenizer-2k's)
    pickle_weights: Path   # the demo model's state dict saved with torch.save (pytorch_model.bin)
    bundle: Path           # a good export of an artifact the template store does NOT hold
    bundle_artifact: str   # that artifact's id


def _build_assets(root: Path) -> Assets:
    import torch
    from safetensors.torch import load_file

    from tests.support.kronos_checkpoints import TINY_TOKENIZER, tokenizer_checkpoint

    template = Cli(root / "template")
    # A second store exports a tiny tokenizer: importing it into a copy of the template has
    # real work to do (an artifact already stored intact would be skipped unhashed).
    exporter = Cli(root / "exporter")
    tiny = tokenizer_checkpoint(root / "tiny-tokenizer", group_size=4, seed=3)
    exporter_registry = root / "exporter.yaml"
    exporter_registry.write_text(
        "schema: 1\ntokenizers:\n  tiny-tokenizer:\n"
        f"    source: {tiny}\n    config: {json.dumps(TINY_TOKENIZER)}\n")
    bundle = root / "tiny.tar"
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        synced = pool.submit(template, "sync", DEMO)
        exported = pool.submit(exporter, "--registry", exporter_registry, "sync", "tiny-tokenizer")
        tokenizer_2k = tokenizer_checkpoint(root / "tokenizer-2k", group_size=5, seed=5)
        pickle_weights = root / "pytorch_model.bin"
        torch.save(load_file(str(DEMO_MODEL_DIR / "model.safetensors")), pickle_weights)
        for future in (synced, exported):
            result = future.result()
            assert result.code == 0, result.output
    result = exporter("--registry", exporter_registry, "export", "tiny-tokenizer", "-o", bundle)
    assert result.code == 0, result.output
    [artifact] = [p.name for p in (exporter.store / "objects").iterdir()]
    return Assets(template=template, tokenizer_2k=tokenizer_2k, pickle_weights=pickle_weights,
                  bundle=bundle, bundle_artifact=artifact)


# =============================================================================================
# Building blocks for the cases: each returns a `prepare(folder, assets) -> CLI args`
# =============================================================================================

Prepare = Callable[[Path, Assets], Sequence[object]]


def registry_file(text: str | bytes, *command: str) -> Prepare:
    """A user registry file overlaying the packaged one, then a command that has to read it."""
    command = command or ("sync", DEMO)

    def prepare(folder: Path, assets: Assets) -> list:
        path = folder / REGISTRY
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["--registry", path, *command]
    return prepare


def _model_entry(extra: str) -> str:
    return ("schema: 1\nmodels:\n  bad-model:\n    source: ./checkpoint\n"
            f"    tokenizer: {DEMO_TOKENIZER}\n    context_length: 512\n{extra}")


def _tokenizer_entry(extra: str) -> str:
    return f"schema: 1\ntokenizers:\n  bad-tokenizer:\n    source: ./checkpoint\n{extra}"


def checkpoint(change: Callable[[Path, Assets], None], *, role: str = "model", extra: str = "",
               origin: Path | None = None) -> Prepare:
    """`sync` of a local entry whose folder is a copy of a demo checkpoint, then ``change``d."""
    origin = origin or (DEMO_MODEL_DIR if role == "model" else DEMO_TOKENIZER_DIR)

    def prepare(folder: Path, assets: Assets) -> list:
        shutil.copytree(origin, folder / "checkpoint")
        change(folder / "checkpoint", assets)
        text = _model_entry(extra) if role == "model" else _tokenizer_entry(extra)
        (folder / REGISTRY).write_text(text)
        return ["--registry", folder / REGISTRY, "sync", "bad-model" if role == "model" else "bad-tokenizer"]
    return prepare


def edit_config(**changes: object) -> Callable[[Path, Assets], None]:
    """Set keys of config.json (a value of ``DROP`` removes the key)."""
    def change(folder: Path, assets: Assets) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if value is DROP:
                config.pop(key)
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    return change


DROP = object()


def write_file(name: str, data: bytes) -> Callable[[Path, Assets], None]:
    def change(folder: Path, assets: Assets) -> None:
        (folder / name).write_bytes(data)
    return change


def remove_file(name: str) -> Callable[[Path, Assets], None]:
    def change(folder: Path, assets: Assets) -> None:
        (folder / name).unlink()
    return change


def truncate_weights(folder: Path, assets: Assets) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def garble_header(folder: Path, assets: Assets) -> None:
    # Same length, so only the header parser can tell: the JSON after the 8-byte length is noise.
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:40] = b"\x00\xff{not json at all}\xfe\x01" + b"#" * (32 - 21)
    (folder / "model.safetensors").write_bytes(bytes(data))


def pickle_instead_of_safetensors(folder: Path, assets: Assets) -> None:
    (folder / "model.safetensors").unlink()
    shutil.copyfile(assets.pickle_weights, folder / "pytorch_model.bin")


def oversized_config(folder: Path, assets: Assets) -> None:
    # 2 MB of unknown keys: once read whole and listed whole (a 40 MB one gave a 20 MB message).
    config = json.loads((folder / "config.json").read_text())
    config.update({f"unknown_key_{i}": 0 for i in range(100_000)})
    (folder / "config.json").write_text(json.dumps(config))


def poison_weights(value: float) -> Callable[[Path, Assets], None]:
    def change(folder: Path, assets: Assets) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        state["transformer.1.ffn.w2.weight"][0, 0] = value
        save_file(state, str(folder / "model.safetensors"))
    return change


def retype_weights(dtype_name: str) -> Callable[[Path, Assets], None]:
    def change(folder: Path, assets: Assets) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        for name in ("head.proj_s1.weight", "norm.weight"):
            state[name] = (state[name] * 100).to(getattr(torch, dtype_name))
        save_file(state, str(folder / "model.safetensors"))
    return change


def genuine_tokenizer_2k(folder: Path, assets: Assets) -> None:
    shutil.rmtree(folder)
    shutil.copytree(assets.tokenizer_2k, folder)


def predict_csv(change: Callable[[list[str]], list[str]] | None, *extra: str, data: bytes | None = None) -> Prepare:
    """`predict kronos-demo` on the sample candles, with ``change`` applied to its lines."""
    def prepare(folder: Path, assets: Assets) -> list:
        path = folder / CSV
        if data is not None:
            path.write_bytes(data)
        elif change is not None:
            lines = SAMPLE_CSV.read_text().splitlines()[:81]  # a header and 80 bars
            path.write_text("\n".join(change(lines)) + "\n")
        return ["predict", DEMO, "--input", path, "--pred-len", "4", "--seed", "1", *extra]
    return prepare


def set_cell(line: int, column: str, value: str) -> Callable[[list[str]], list[str]]:
    """Put ``value`` in ``column`` of the file's ``line`` (1-based; line 1 is the header)."""
    def change(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        cells = lines[line - 1].split(",")
        cells[header.index(column)] = value
        lines[line - 1] = ",".join(cells)
        return lines
    return change


def drop_column(column: str) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        index = lines[0].split(",").index(column)
        return [",".join(c for i, c in enumerate(line.split(",")) if i != index) for line in lines]
    return change


def copy_timestamp(to_line: int, from_line: int) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        cells = lines[to_line - 1].split(",")
        cells[0] = lines[from_line - 1].split(",")[0]
        lines[to_line - 1] = ",".join(cells)
        return lines
    return change


def swap_lines(a: int, b: int) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
        return lines
    return change


def cli_args(*args: object) -> Prepare:
    def prepare(folder: Path, assets: Assets) -> list:
        return [str(a).format(dir=folder, csv=SAMPLE_CSV) for a in args]
    return prepare


def store_is_a_file(folder: Path, assets: Assets) -> list:
    (folder / "not-a-folder").write_text("a regular file where the store should be\n")
    return ["--store", folder / "not-a-folder", "sync", DEMO]


def bundle(change: Callable[[list[tuple[tarfile.TarInfo, bytes | None]], Assets], None] | None = None, *,
           data: bytes | None = None, missing: bool = False) -> Prepare:
    """`import` of the good tiny-tokenizer bundle, its members edited by ``change``."""
    def prepare(folder: Path, assets: Assets) -> list:
        path = folder / BUNDLE
        if missing:
            return ["import", path]
        if data is not None:
            path.write_bytes(data)
            return ["import", path]
        members = []
        with tarfile.open(assets.bundle) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                members.append((member, handle.read() if handle else None))
        if change is not None:
            change(members, assets)
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for member, content in members:
                tar.addfile(member, io.BytesIO(content) if content is not None else None)
        return ["import", path]
    return prepare


def _extra_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "",
                  content: bytes = b"payload\n") -> Callable:
    def change(members: list, assets: Assets) -> None:
        info = tarfile.TarInfo(name.format(artifact=assets.bundle_artifact))
        info.type = kind
        info.linkname = linkname
        info.mode = 0o644
        body = content if kind == tarfile.REGTYPE else None
        info.size = len(body) if body is not None else 0
        members.insert(2, (info, body))  # after bundle.json and registry.yaml, before the objects
    return change


def _flip_weights_byte(members: list, assets: Assets) -> None:
    for member, content in members:
        if member.name.endswith("/model.safetensors"):
            data = bytearray(content)
            data[-5] ^= 0xFF  # same size: only the sha256 tells
            members[members.index((member, content))] = (member, bytes(data))
            return
    raise AssertionError("the bundle has no weights")


def _drop_weights(members: list, assets: Assets) -> None:
    members[:] = [(m, c) for m, c in members if not m.name.endswith("/model.safetensors")]


def _grow_weights(members: list, assets: Assets) -> None:
    """The weights member holds more than its manifest declares (the tar header agrees with it)."""
    for index, (member, content) in enumerate(members):
        if member.name.endswith("/model.safetensors"):
            member.size = len(content) + 2**20
            members[index] = (member, content + bytes(2**20))
            return
    raise AssertionError("the bundle has no weights")


def impostor(*, pickle_only: bool, replace: bool = True) -> Prepare:
    """`import` of a bundle whose objects carry kronos-small's and its tokenizer's pinned ids
    but hold a tiny model (or only pytorch_model.bin), its registry.yaml stripped of their pins.

    With ``replace`` the import asks to take over both names, so the shadowing refusal steps
    aside and the objects' own verification is what must refuse them."""
    def prepare(folder: Path, assets: Assets) -> list:
        from tests.support.bundles import MODEL, TOKENIZER, impostor_bundle

        asked = ["--replace", MODEL, "--replace", TOKENIZER] if replace else []
        return ["import", impostor_bundle(folder / "attacker", folder / BUNDLE, pickle_only=pickle_only), *asked]
    return prepare


# =============================================================================================
# The catalogue
# =============================================================================================


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    prepare: Prepare
    code: int                   # the documented exit code of this class of mistake
    culprit: tuple[str, ...]    # each must be on stderr; {dir} is the case's folder
    bug: str | None = None      # a known bug: the case is a strict xfail until it is fixed
    max_lines: int | None = None      # the refusal fits in this many lines of stderr
    max_seconds: float | None = None  # and is this quick (loose: a bound on doing the wrong work)


REG = "{dir}/" + REGISTRY
VALID_TOKENIZER = f"    tokenizer: {DEMO_TOKENIZER}\n"

CASES: list[Case] = [
    # --- registry files: exit 3, the file:line:column and the key --------------------------------
    Case("registry-yaml-syntax-error", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n    source: [./checkpoint\n" + VALID_TOKENIZER),
        3, (REG + ":", "invalid YAML")),
    Case("registry-unknown-key", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n    source: ./checkpoint\n" + VALID_TOKENIZER
        + "    context_length: 512\n    colour: blue\n"),
        3, (REG + ":7:", "unknown key 'colour'")),
    Case("registry-misspelt-key", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n    source: ./checkpoint\n" + VALID_TOKENIZER
        + "    context_lenght: 512\n"),
        3, (REG + ":6:", "context_lenght", "did you mean 'context_length'")),
    Case("registry-context-length-is-text", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n    source: ./checkpoint\n" + VALID_TOKENIZER
        + "    context_length: lots\n"),
        3, (REG + ":6:", "context_length", "lots")),
    Case("registry-params-negative", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n    params: -5\n"),
        3, (REG + ":5:", "params")),
    Case("registry-available-not-a-flag", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n    available: perhaps\n"),
        3, (REG + ":5:", "available", "true or false")),
    Case("registry-config-is-a-list", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n    config: [1, 2]\n"),
        3, (REG + ":5:", "config", "mapping")),
    Case("registry-missing-source", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n" + VALID_TOKENIZER + "    context_length: 512\n"),
        3, (REG + ":3:", "my-model", "'source'")),
    Case("registry-bad-hf-uri", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: hf://datasets/acme/candles@main\n"),
        3, (REG + ":4:", "source", "hf://datasets/acme/candles@main")),
    Case("registry-web-url-source", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: https://huggingface.co/NeoQuasar/Kronos-small\n"),
        3, (REG + ":4:", "source", "hf://NeoQuasar/Kronos-small")),
    Case("registry-duplicate-key", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./a\n    source: ./b\n"),
        3, (REG + ":5:", "duplicate key 'source'", "line 4")),
    Case("registry-duplicate-entry", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./a\n  my-tokenizer:\n    source: ./b\n"),
        3, (REG + ":5:", "duplicate key 'my-tokenizer'")),
    Case("registry-tokenizer-reference-to-nothing", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n    source: ./checkpoint\n    tokenizer: kronos-demo-tokeniser\n"
        "    context_length: 512\n"),
        3, (REG + ":5:", "no tokenizer named 'kronos-demo-tokeniser'", f"did you mean '{DEMO_TOKENIZER}'")),
    Case("registry-tokenizer-names-a-model", "registry", registry_file(
        "schema: 1\nmodels:\n  my-model:\n    source: ./checkpoint\n    tokenizer: kronos-small\n"
        "    context_length: 512\n"),
        3, (REG + ":5:", "'kronos-small' is a model, not a tokenizer")),
    Case("registry-unsupported-schema", "registry", registry_file("schema: 2\nmodels:\n"),
         3, (REG + ":1:", "unsupported schema 2")),
    Case("registry-no-schema", "registry", registry_file("models:\n"),
         3, (REG, "schema: 1")),
    Case("registry-top-level-list", "registry", registry_file("- schema: 1\n- models: {}\n"),
         3, (REG + ":1:", "mapping")),
    Case("registry-empty-file", "registry", registry_file(""),
         3, (REG, "the file is empty")),
    Case("registry-not-utf8", "registry", registry_file(b"schema: 1\n# caf\xe9\n"),
         3, (REG, "not UTF-8")),
    Case("registry-unavailable-without-reason", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    available: false\n"),
        3, (REG + ":4:", "reason")),
    Case("registry-sha256-not-a-digest", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n    sha256:\n"
        "      model.safetensors: abc123\n"),
        3, (REG + ":6:", "'abc123' is not a sha256 digest")),
    Case("registry-file-name-climbs-out", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n    files:\n"
        "      - config.json\n      - ../../etc/passwd\n"),
        3, (REG + ":7:", "'../../etc/passwd' is not a plain file name")),
    Case("registry-pickle-file-without-opt-in", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n"
        "    files: [config.json, pytorch_model.bin]\n"),
        3, (REG + ":5:", "pytorch_model.bin", "allow_pickle")),
    Case("registry-model-only-key-on-tokenizer", "registry", registry_file(
        "schema: 1\ntokenizers:\n  my-tokenizer:\n    source: ./checkpoint\n    context_length: 512\n",
        "validate"),
        3, (REG + ":5:", "'context_length' applies to models only")),
    Case("registry-nested-5000-deep", "registry", registry_file(
        "schema: 1\nmodels:\n  deep:\n    source: " + "[" * 5000 + "]" * 5000 + "\n", "list"),
        3, (REG + ":4:", "nested more than")),

    # --- checkpoint configs: exit 6 (verification), config.json and the key ---------------------
    Case("config-missing", "config", checkpoint(remove_file("config.json")),
         6, ("config.json is missing", "bad-model")),
    Case("config-not-json", "config", checkpoint(write_file("config.json", b"{d_model: 64,")),
         6, ("config.json is not valid JSON",)),
    Case("config-is-a-list", "config", checkpoint(write_file("config.json", b"[64, 4, 2]\n")),
         6, ("config.json holds a list, not a JSON object",)),
    Case("config-missing-key", "config", checkpoint(edit_config(n_layers=DROP)),
         6, ("config.json", "missing keys: n_layers")),
    Case("config-unknown-key", "config", checkpoint(edit_config(dropout=0.1)),
         6, ("config.json", "unknown keys: dropout")),
    Case("config-wrong-type", "config", checkpoint(edit_config(d_model="64")),
         6, ("config.json", "d_model = '64' must be a number")),
    Case("config-non-positive-size", "config", checkpoint(edit_config(n_layers=0)),
         6, ("config.json", "n_layers = 0 must be positive")),
    Case("config-d-model-not-divisible-by-heads", "config", checkpoint(edit_config(n_heads=5)),
         6, ("config.json", "d_model 64 is not divisible by n_heads 5")),
    Case("config-tokenizer-given-as-model", "config",
         checkpoint(lambda folder, assets: None, role="model", origin=DEMO_TOKENIZER_DIR),
         6, ("tokenizer checkpoint", "'bad-model' is declared as a model")),
    Case("config-model-given-as-tokenizer", "config",
         checkpoint(lambda folder, assets: None, role="tokenizer", origin=DEMO_MODEL_DIR),
         6, ("model checkpoint", "'bad-tokenizer' is declared as a tokenizer")),
    Case("config-checkpoint-folder-missing", "config",
         checkpoint(lambda folder, assets: shutil.rmtree(folder)),
         5, ("{dir}/checkpoint", "does not exist")),
    Case("config-tokenizer-2k-behind-base-pin", "config",
         checkpoint(genuine_tokenizer_2k, role="tokenizer",
                    extra="    config: {d_in: 6, d_model: 16, n_heads: 2, ff_dim: 32, n_enc_layers: 1,"
                          " n_dec_layers: 1, s1_bits: 10, s2_bits: 10, group_size: 4}\n"),
         6, ("config.json", "group_size is 5 but the registry pins 4", REG + ":5:")),
    # Cheap checks first: nothing is built (not even on the meta device) from a refused config.
    Case("config-huge-layer-count-behind-a-pin", "config",
         checkpoint(edit_config(n_layers=30000), extra="    config: {n_layers: 2}\n"),
         6, ("config.json", "'n_layers'", "n_layers = 30000", "beyond any Kronos"), max_lines=4, max_seconds=30),
    Case("config-huge-layer-count-unpinned", "config", checkpoint(edit_config(n_layers=200)),
         6, ("config.json", "n_layers=200 does not fit the weights", "n_layers=2"), max_lines=4, max_seconds=30),
    Case("config-oversized-file", "config", checkpoint(oversized_config),
         6, ("config.json", "bytes; a Kronos config is a few hundred"), max_lines=4),
    Case("config-many-unknown-keys", "config", checkpoint(edit_config(**{f"k{i:05}": 0 for i in range(20_000)})),
         6, ("config.json", "unknown keys: k00000, k00001, k00002, k00003, k00004 and 19,995 more"), max_lines=4),

    # --- weights: exit 6, the weights file and what is wrong with it ----------------------------
    Case("weights-truncated", "weights", checkpoint(truncate_weights),
         6, ("model.safetensors", "file truncated", "tensors lie past the end"), max_lines=4),
    Case("weights-header-garbage", "weights", checkpoint(garble_header),
         6, ("model.safetensors", "header is not valid JSON")),
    Case("weights-mis-shaped", "weights", checkpoint(edit_config(ff_dim=96)),
         6, ("config.json", "ff_dim=96 does not fit the weights", "looks like d_model=64, ff_dim=128, n_layers=2",
             "\n    fix: make sure config.json and model.safetensors"), max_lines=4),
    Case("weights-nan", "weights", checkpoint(poison_weights(float("nan"))),
         6, ("model.safetensors", "'transformer.1.ffn.w2.weight'", "NaN or Inf")),
    Case("weights-inf", "weights", checkpoint(poison_weights(float("-inf"))),
         6, ("model.safetensors", "'transformer.1.ffn.w2.weight'", "NaN or Inf")),
    Case("weights-uint8", "weights", checkpoint(retype_weights("uint8")),
         6, ("model.safetensors", "2 tensors of dtype U8", "'head.proj_s1.weight'", "F32, F16, BF16"), max_lines=4),
    Case("weights-bool", "weights", checkpoint(retype_weights("bool")),
         6, ("model.safetensors", "2 tensors of dtype BOOL", "'norm.weight'")),
    Case("weights-pickle-only", "weights", checkpoint(pickle_instead_of_safetensors),
         6, ("model.safetensors is missing", "allow_pickle")),
    Case("weights-sha256-pin-mismatch", "weights", checkpoint(
        lambda folder, assets: None, extra="    sha256:\n      model.safetensors: " + "0" * 64 + "\n"),
        6, ("model.safetensors", "sha256 mismatch")),
    Case("weights-zero-bytes", "weights", checkpoint(write_file("model.safetensors", b"")),
         6, ("model.safetensors is empty",)),

    # --- candle CSVs for predict: exit 9, the file, the line and the column ----------------------
    Case("csv-missing-column", "csv", predict_csv(drop_column("low")),
         9, ("{dir}/" + CSV, "low")),
    Case("csv-non-numeric-cell", "csv", predict_csv(set_cell(5, "open", "12x5")),
         9, ("{dir}/" + CSV, "line 5", "column 'open'", "'12x5' is not a number")),
    Case("csv-nan-cell", "csv", predict_csv(set_cell(7, "close", "NaN")),
         9, ("{dir}/" + CSV, "line 7", "column 'close'", "missing value")),
    Case("csv-duplicate-timestamp", "csv", predict_csv(copy_timestamp(11, 10)),
         9, ("{dir}/" + CSV, "line 11", "duplicate timestamp", "line 10")),
    Case("csv-decreasing-timestamps", "csv", predict_csv(swap_lines(20, 21)),
         9, ("{dir}/" + CSV, "line 21", "is earlier than")),
    Case("csv-too-few-rows", "csv", predict_csv(lambda lines: lines[:2]),
         9, ("{dir}/" + CSV, "only 1 row")),
    Case("csv-empty-file", "csv", predict_csv(None, data=b""),
         9, ("{dir}/" + CSV, "is empty")),
    Case("csv-missing-file", "csv", predict_csv(None),
         9, ("{dir}/" + CSV, "does not exist")),
    Case("csv-high-below-low", "csv", predict_csv(set_cell(9, "high", "1.0")),
         9, ("{dir}/" + CSV, "line 9", "column 'high'", "is below low")),
    Case("csv-negative-volume", "csv", predict_csv(set_cell(13, "volume", "-10")),
         9, ("{dir}/" + CSV, "line 13", "column 'volume'", "negative volume")),
    Case("csv-ragged-row", "csv", predict_csv(lambda lines: lines[:30] + [lines[30] + ",1,2"] + lines[31:]),
         9, ("{dir}/" + CSV, "line 31")),
    Case("csv-header-only", "csv", predict_csv(lambda lines: lines[:1]),
         9, ("{dir}/" + CSV, "only 0 rows")),
    Case("csv-is-a-folder", "csv", lambda folder, assets: (
        (folder / CSV).mkdir(), ["predict", DEMO, "--input", folder / CSV, "--pred-len", "4"])[1],
         9, ("{dir}/" + CSV, "is a folder")),
    Case("csv-bad-timestamp", "csv", predict_csv(set_cell(4, "timestamps", "yesterday-ish")),
         9, ("{dir}/" + CSV, "line 4", "'yesterday-ish' is not a date and time")),

    # --- command-line arguments: click usage errors exit 2, others their class's code -------------
    Case("args-pred-len-zero", "args", cli_args("predict", DEMO, "-i", "{csv}", "--pred-len", "0"),
         2, ("--pred-len", "0")),
    Case("args-pred-len-negative", "args", cli_args("predict", DEMO, "-i", "{csv}", "--pred-len", "-3"),
         2, ("--pred-len", "-3")),
    Case("args-pred-len-not-an-integer", "args", cli_args("predict", DEMO, "-i", "{csv}", "--pred-len", "2.5"),
         2, ("--pred-len", "2.5")),
    Case("args-samples-zero", "args", cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--samples", "0"),
         2, ("--samples",)),
    Case("args-top-p-above-one", "args", cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--top-p", "2"),
         2, ("--top-p",)),
    Case("args-temperature-zero", "args", cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--temperature", "0"),
         2, ("--temperature",)),
    Case("args-temperature-negative", "args",
         cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--temperature", "-0.5"),
         2, ("--temperature",)),
    # Values that pass the option types but cannot be computed: refused before any work (issue 23).
    Case("args-pred-len-over-the-context", "args",
         cli_args("predict", DEMO, "-i", "{csv}", "-n", "600"),
         9, ("pred_len is 600", "context of 512", "at most 512"), max_seconds=30),
    Case("args-temperature-below-the-floor", "args",
         cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--temperature", "1e-300"),
         2, ("--temperature", "0.001")),
    Case("csv-price-too-large-to-normalise", "csv", predict_csv(set_cell(5, "high", "1e300")),
         9, ("high reaches 1e+300", "rescale high")),
    Case("csv-forecast-past-pandas-last-time", "csv", predict_csv(None, data=(
        "timestamps,open,high,low,close\n" + "".join(f"2262-04-{day:02d},1,2,0.5,1.5\n" for day in range(1, 11))
    ).encode()), 9, ("pass 2262-04-11", "the last time pandas can represent")),
    Case("args-lookback-beyond-rows", "args",
         cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--lookback", "100000"),
         9, ("lookback of 100000", "512 rows")),
    Case("args-unknown-model", "args", cli_args("predict", "kronos-dmeo", "-i", "{csv}", "-n", "3"),
         4, ("no entry named 'kronos-dmeo'", f"did you mean '{DEMO}'")),
    Case("args-unavailable-model", "args", cli_args("predict", "kronos-large", "-i", "{csv}", "-n", "3"),
         4, ("'kronos-large' is not available",)),
    Case("args-tokenizer-to-predict", "args", cli_args("predict", DEMO_TOKENIZER, "-i", "{csv}", "-n", "3"),
         4, (f"'{DEMO_TOKENIZER}' is a tokenizer, not a model", DEMO)),
    Case("args-registry-file-missing", "args", cli_args("--registry", "{dir}/nowhere.yaml", "list"),
         3, ("{dir}/nowhere.yaml", "does not exist")),
    Case("args-store-is-a-regular-file", "args", store_is_a_file,
         9, ("{dir}/not-a-folder", "not a folder")),
    Case("args-top-k-negative", "args", cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--top-k", "-1"),
         2, ("--top-k",)),
    Case("args-device-unknown", "args", cli_args("predict", DEMO, "-i", "{csv}", "-n", "3", "--device", "gpu9"),
         2, ("--device", "gpu9")),
    Case("args-output-under-a-regular-file", "args", lambda folder, assets: (
        (folder / "plain-file").write_text("x\n"),
        ["predict", DEMO, "-i", SAMPLE_CSV, "-n", "2", "--lookback", "32", "--seed", "1",
         "--output", folder / "plain-file" / "forecast.csv"])[1],
         9, ("{dir}/plain-file/forecast.csv", "cannot write")),
    # `doctor` is where a person looks when syncs fail with "Not a directory": it must say so.
    Case("args-doctor-store-is-a-regular-file", "args", lambda folder, assets: (
        (folder / "not-a-folder").write_text("x\n"), ["--store", folder / "not-a-folder", "doctor"])[1],
         9, ("{dir}/not-a-folder", "not a folder", "KRONOS_REGISTRY_HOME")),
    Case("args-list-store-is-a-regular-file", "args", lambda folder, assets: (
        (folder / "not-a-folder").write_text("x\n"), ["--store", folder / "not-a-folder", "list"])[1],
         9, ("{dir}/not-a-folder", "not a folder")),
    Case("args-sync-unknown-entry", "args", cli_args("sync", "kronos-smol"),
         4, ("no entry named 'kronos-smol'", "did you mean 'kronos-small'")),

    # --- bundles for import: exit 9 for an unsafe or unreadable bundle, 6 for a hash mismatch -----
    Case("bundle-absolute-member", "bundle", bundle(_extra_member("/tmp/kronos-registry-escape/evil.txt")),
         9, ("{dir}/" + BUNDLE, "/tmp/kronos-registry-escape/evil.txt", "absolute path")),
    Case("bundle-dotdot-member", "bundle", bundle(_extra_member("objects/{artifact}/../../../evil.txt")),
         9, ("{dir}/" + BUNDLE, "../../../evil.txt", "'..'")),
    Case("bundle-symlink-member", "bundle",
         bundle(_extra_member("objects/{artifact}/passwd", tarfile.SYMTYPE, "/etc/passwd")),
         9, ("{dir}/" + BUNDLE, "passwd", "symbolic link")),
    Case("bundle-hardlink-member", "bundle",
         bundle(_extra_member("objects/{artifact}/shadow", tarfile.LNKTYPE, "/etc/shadow")),
         9, ("{dir}/" + BUNDLE, "shadow", "hard link")),
    Case("bundle-fifo-member", "bundle", bundle(_extra_member("objects/{artifact}/pipe", tarfile.FIFOTYPE)),
         9, ("{dir}/" + BUNDLE, "pipe", "FIFO")),
    Case("bundle-hash-mismatch", "bundle", bundle(_flip_weights_byte),
         6, ("{dir}/" + BUNDLE, "model.safetensors", "sha256")),
    Case("bundle-member-missing", "bundle", bundle(_drop_weights),
         9, ("{dir}/" + BUNDLE, "model.safetensors", "missing")),
    Case("bundle-not-a-tar", "bundle", bundle(data=b"PK\x03\x04 this is a zip, not a tar" * 40),
         9, ("{dir}/" + BUNDLE, "not a readable tar file")),
    Case("bundle-empty-file", "bundle", bundle(data=b""),
         9, ("{dir}/" + BUNDLE, "is empty")),
    Case("bundle-missing-file", "bundle", bundle(missing=True),
         9, ("{dir}/" + BUNDLE, "does not exist")),
    # --- imported objects pass the checks a sync runs, against the entries that will use them -----
    Case("bundle-impostor-shadows-packaged-names", "bundle", impostor(pickle_only=False, replace=False),
         9, ("{dir}/" + BUNDLE, "would replace 'kronos-small'", "nothing was imported", "--replace kronos-small")),
    Case("bundle-impostor-under-packaged-ids", "bundle", impostor(pickle_only=False),
         6, ("{dir}/" + BUNDLE, "'kronos-small'", "d_model is 32 but the registry pins 512", "nothing was imported")),
    Case("bundle-pickle-only-under-packaged-id", "bundle", impostor(pickle_only=True),
         6, ("{dir}/" + BUNDLE, "'kronos-small'", "model.safetensors is missing", "nothing was imported")),
    Case("bundle-member-larger-than-declared", "bundle", bundle(_grow_weights),
         6, ("{dir}/" + BUNDLE, "lied", "/model.safetensors'", "but its manifest declares")),
]


def _truncated_bundle_case() -> Case:
    def prepare(folder: Path, assets: Assets) -> list:
        # Cut inside the weights' data (a cut in the tar's zero padding would lose nothing).
        with tarfile.open(assets.bundle) as tar:
            [weights] = [m for m in tar.getmembers() if m.name.endswith("/model.safetensors")]
        data = assets.bundle.read_bytes()
        (folder / BUNDLE).write_bytes(data[: weights.offset_data + weights.size // 2])
        return ["import", folder / BUNDLE]
    return Case("bundle-truncated", "bundle", prepare, 9, ("{dir}/" + BUNDLE, "truncated"))


CASES.append(_truncated_bundle_case())


def test_catalogue_is_large_and_covers_every_category():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    counts = Counter(case.category for case in CASES)
    assert len(CASES) >= 40, counts
    assert set(counts) == {"registry", "config", "weights", "csv", "args", "bundle"}


# =============================================================================================
# Running the cases
# =============================================================================================


@dataclass(frozen=True)
class Outcome:
    folder: Path
    result: Result | None
    before: dict
    after: dict
    inputs_before: dict
    inputs_after: dict
    error: BaseException | None = None  # the case could not run (e.g. a timeout): its test fails


# A case folder holds the Cli's own store, working directory and HF home; the rest is its input.
CLI_DIRS = ("store", "cwd", "hf-home")


def input_digest(folder: Path) -> dict:
    """``tree_digest`` of what the case wrote into its folder for the command to read."""
    return {path: entry for path, entry in tree_digest(folder).items()
            if path != "." and path.split("/")[0] not in CLI_DIRS}


def run_case(case: Case, assets: Assets, root: Path) -> Outcome:
    folder = root / case.id
    cli = assets.template.clone(folder)  # a private copy of the synced template store
    before = tree_digest(cli.store)
    inputs = {}
    try:
        args = case.prepare(folder, assets)
        inputs = input_digest(folder)
        result = cli(*args)
    except Exception as error:  # noqa: BLE001 - reported by this case's test, not the whole module
        return Outcome(folder=folder, result=None, before=before, after=tree_digest(cli.store),
                       inputs_before=inputs, inputs_after=input_digest(folder), error=error)
    return Outcome(folder=folder, result=result, before=before, after=tree_digest(cli.store),
                   inputs_before=inputs, inputs_after=input_digest(folder))


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Run every selected case, two at a time, and keep what each did."""
    selected = {item.callspec.params["case"].id for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec") and "case" in item.callspec.params}
    root = tmp_path_factory.mktemp("bad-input")
    assets = _build_assets(root / "assets")
    chosen = [case for case in CASES if case.id in selected]
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {case.id: pool.submit(run_case, case, assets, root / "cases") for case in chosen}
        return {name: future.result() for name, future in futures.items()}


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input_is_refused_cleanly(case: Case, outcomes: dict[str, Outcome]):
    outcome = outcomes[case.id]
    if outcome.error is not None:
        raise outcome.error
    result = outcome.result
    context = f"exit {result.code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "Traceback" not in result.output, context
    assert result.code == case.code, context
    for word in case.culprit:
        word = word.format(dir=outcome.folder)
        assert word in result.stderr, f"{word!r} not on stderr\n{context}"
    if case.max_lines is not None:
        assert len(result.stderr.splitlines()) <= case.max_lines, context
    if case.max_seconds is not None:
        assert result.seconds < case.max_seconds, context
    assert outcome.after == outcome.before, (
        f"the store changed: {describe_changes(outcome.before, outcome.after)}\n{context}")
    if "store-is-a-regular-file" in case.id:  # the file given as the store is one of the inputs checked
        assert outcome.inputs_before.get("not-a-folder", ("",))[0] == "file", outcome.inputs_before
    assert outcome.inputs_after == outcome.inputs_before, (
        f"the inputs changed: {describe_changes(outcome.inputs_before, outcome.inputs_after)}\n{context}")




# =============================================================================================
# The store itself read-only or damaged (outside the catalogue: these change the store first)
# =============================================================================================


def _clean(result: Result) -> str:
    assert "Traceback" not in result.output and "this is a bug" not in result.output, result.output
    return result.stderr


def test_a_read_only_store_says_so_for_rm_gc_and_sync_with_exit_11_and_still_predicts(tmp_path):
    from tests.support.cli import synced_demo
    from tests.support.readonly import read_only_view

    template = synced_demo(tmp_path / "writable")
    with read_only_view(template.store, tmp_path / "ro-store") as view:
        before = tree_digest(view)
        runner = Cli(tmp_path / "reader", store=view)
        for command in (["rm", DEMO], ["gc"], ["sync", DEMO, "--force"]):
            result = runner(*command)
            assert result.code == 11, result.output
            assert "read-only" in _clean(result) and str(view) in result.stderr, result.output
        result = runner("predict", DEMO, "--input", SAMPLE_CSV, "--pred-len", "2", "--seed", "1")
        assert result.code == 0, result.output
        result = runner("sync", DEMO)  # already stored: nothing to write, so no error
        assert result.code == 0 and "present" in result.stdout, result.output
        assert tree_digest(view) == before


def test_same_size_damage_in_the_store_reaches_predict_as_exit_6_with_the_repair_command(tmp_path):
    from tests.support.cli import synced_demo

    runner = synced_demo(tmp_path)
    [config] = [p for p in (runner.store / "objects").glob("local--kronos-demo--*/config.json")]
    text = config.read_text()
    config.write_text(text.replace("{", "[", 1))  # same size, no longer JSON
    result = runner("predict", DEMO, "--input", SAMPLE_CSV, "--pred-len", "2")
    assert result.code == 6, result.output
    assert "config.json" in _clean(result) and f"kronos-registry sync {DEMO} --force" in result.stderr
    assert runner("sync", DEMO, "--force").code == 0
    assert config.read_text() == text


def test_doctor_does_not_call_a_local_entry_stale_for_new_timestamps(tmp_path):
    import os

    runner = Cli(tmp_path)
    shutil.copytree(DEMO_MODEL_DIR, runner.cwd / "checkpoint")
    (runner.cwd / REGISTRY).write_text(_model_entry(""))
    assert runner("sync", "bad-model").code == 0
    for path in (runner.cwd / "checkpoint").iterdir():
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**12))
    result = runner("doctor", "--json")
    [health] = [e for e in json.loads(result.stdout)["entries"] if e["name"] == "bad-model"]
    assert health["check"] == "ok", health
