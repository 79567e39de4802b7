"""The verification framework: a check is a small object that yields problems.

The engine runs every check that applies to an artifact, gathers every problem into one
``Report`` and refuses to publish (or load) when any is an error. Model families plug in
their own checks (the Kronos family's: ``kronos_registry.kronos.checks``) by passing a
``CheckProvider`` to the loader; the engine itself only knows the generic ones defined here.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import attrs

from .errors import Problem, VerificationError
from .hashing import sha256_file

if TYPE_CHECKING:
    from .spec import Entry, RegistrySpec


@attrs.frozen
class CheckContext:
    """What a check may look at.

    ``folder`` holds the artifact's files (a staging folder during sync, the published object
    when verifying). ``related`` maps a role to the folder of an artifact this one is paired
    with (a model's ``"tokenizer"``), when that artifact is already verified. ``deep`` asks
    for the expensive checks (hash everything, scan tensors).
    """

    entry: "Entry"
    folder: Path
    spec: "RegistrySpec | None" = None
    deep: bool = False
    related: Mapping[str, Path] = attrs.field(factory=dict)
    related_entries: Mapping[str, "Entry"] = attrs.field(factory=dict)


class Check(Protocol):
    name: str

    def run(self, ctx: CheckContext) -> Iterable[Problem]: ...


CheckProvider = Callable[["Entry"], Sequence[Check]]


@attrs.frozen
class Report:
    artifact: str
    problems: tuple[Problem, ...] = ()
    checks_run: tuple[str, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise VerificationError(self.artifact, self.problems)


def run_checks(artifact: str, checks: Sequence[Check], ctx: CheckContext) -> Report:
    """Run every check and gather all problems; a check that crashes becomes a problem too."""
    problems: list[Problem] = []
    names: list[str] = []
    for check in checks:
        names.append(check.name)
        try:
            problems.extend(check.run(ctx))
        except Exception as exc:  # a broken file must never turn into a traceback
            detail = str(exc) if len(str(exc)) <= 200 else f"{str(exc)[:200]}..."
            problems.append(Problem(f"check '{check.name}' could not run: {type(exc).__name__}: {detail}",
                                    file=str(ctx.folder)))
    return Report(artifact=artifact, problems=tuple(problems), checks_run=tuple(names))


@attrs.frozen
class RequiredFiles:
    """Every file in ``names`` exists in the artifact folder and is a non-empty regular file.

    ``hints`` lets a model family say how to make a missing file (keyed by file name).
    """

    names: tuple[str, ...]
    hints: Mapping[str, str] = attrs.field(factory=dict)
    name: str = "required-files"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        for file_name in self.names:
            path = ctx.folder / file_name
            if not path.is_file():
                yield Problem(
                    f"required file {file_name} is missing from {ctx.entry.source}",
                    file=file_name,
                    hint=self.hints.get(file_name)
                    or f"make sure the source of '{ctx.entry.name}' contains {file_name}",
                )
            elif path.stat().st_size == 0:
                yield Problem(f"{file_name} is empty", file=file_name,
                              hint=f"replace the empty {file_name} in the source of '{ctx.entry.name}'")


@attrs.frozen
class Sha256Pins:
    """Files match the sha256 pinned in the registry entry (``sha256: {file: hex}``)."""

    name: str = "sha256-pins"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        for file_name, expected in sorted(ctx.entry.sha256.items()):
            path = ctx.folder / file_name
            if not path.is_file():
                yield Problem(f"{file_name} is pinned by sha256 but missing", file=file_name,
                              field="sha256", hint="remove the pin or fix the source")
                continue
            actual = sha256_file(path)
            if actual != expected.lower():
                yield Problem(
                    f"sha256 mismatch: expected {expected}, got {actual}",
                    file=file_name,
                    field=f"sha256.{file_name}",
                    hint="the file is corrupt or not the one pinned; sync again, or update the pin "
                    "if the new file is intended",
                )


SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024


def read_safetensors_header(path: Path) -> tuple[dict, list[str]]:
    """Parse a safetensors header without loading tensors.

    Returns ``(tensors, errors)``: ``tensors`` maps a name to its ``{"dtype", "shape",
    "data_offsets"}`` entry, ``errors`` lists what is wrong in plain words (empty when sane:
    the header parses, every dtype is known, offsets are contiguous, in bounds, and agree
    with shape and dtype, and the file is exactly as long as the header says).
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return {}, [f"file is {size} bytes, too short to hold a safetensors header"]
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            return {}, [f"header length {header_len} does not fit a file of {size} bytes (truncated or not safetensors)"]
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, [f"header is not valid JSON ({exc})"]
    if not isinstance(header, dict):
        return {}, ["header is not a JSON object"]
    header.pop("__metadata__", None)
    tensors: dict = {}
    spans = []
    data_size = size - 8 - header_len
    # Alike faults are gathered and named once, with a count and two examples: a truncated
    # file is one line, not one per tensor past the cut.
    malformed, unknown, wrong_span, past_end = [], [], [], []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            malformed.append(name)
            continue
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            unknown.append(f"'{name}' ({str(dtype)[:20]!r})")
            continue
        try:
            count = 1
            for dim in shape:
                count *= int(dim)
            start, end = int(offsets[0]), int(offsets[1])
        except (TypeError, ValueError, IndexError, KeyError):
            malformed.append(name)
            continue
        if end - start != count * SAFETENSORS_DTYPES[dtype]:
            wrong_span.append(f"'{name}' spans {end - start} bytes but shape {shape} of {dtype} needs "
                              f"{count * SAFETENSORS_DTYPES[dtype]}")
        if end > data_size:
            past_end.append((end, name))
        spans.append((start, end))
        tensors[name] = info
    errors: list[str] = []
    if past_end:
        names = [f"'{name}'" for _, name in sorted(past_end)[:2]]
        errors.append(f"file truncated: the header describes {max(end for end, _ in past_end):,} data bytes, "
                      f"the file holds {data_size:,}; {len(past_end)} of {len(header)} tensors lie past the end, "
                      f"e.g. {', '.join(names)}")
    for one, many, items in (("malformed header entry", "malformed header entries", [f"'{n}'" for n in malformed]),
                             ("tensor with an unknown dtype", "tensors with an unknown dtype", unknown),
                             ("byte span that does not fit shape and dtype",
                              "byte spans that do not fit shape and dtype", wrong_span)):
        if len(items) == 1:
            errors.append(f"{one}: {items[0]}")
        elif items:
            errors.append(f"{len(items)} {many}, e.g. {'; '.join(items[:2])}")
    if not errors:
        position = 0
        for start, end in sorted(spans):
            if start != position:
                errors.append("tensor data is not contiguous (holes or overlaps)")
                break
            position = end
        if position != data_size and not errors:
            errors.append(f"file holds {data_size} data bytes but the tensors use {position}")
    return tensors, errors


@attrs.frozen
class SafetensorsHeader:
    """Every ``*.safetensors`` file in the artifact has a sane header."""

    name: str = "safetensors-header"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        for path in sorted(ctx.folder.glob("*.safetensors")):
            _, errors = read_safetensors_header(path)
            for error in errors:
                yield Problem(error, file=path.name,
                              hint=f"the weights are damaged; sync '{ctx.entry.name}' again from a good source")


def generic_checks(entry: "Entry", file_hints: Mapping[str, str] | None = None) -> list[Check]:
    """Checks that hold for any model family."""
    return [RequiredFiles(tuple(entry.files), dict(file_hints or {})), Sha256Pins(), SafetensorsHeader()]
