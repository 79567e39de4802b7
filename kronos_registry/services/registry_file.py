"""The user's registry file as text: what `add` and `finetune` append, and how.

An entry is inserted as text, never by re-serialising the file: the user's comments,
order and formatting stay byte for byte; the entry goes at the end of its section (or the
file is created), with a comment saying where it came from. The file is replaced
atomically (:func:`write_text`), so a reader sees the old file or the new one, never a
mixture; `finetune` makes that replacement its commit point.

:func:`inspect_source` reads a checkpoint folder (config.json: its role, shape and parameter
count) and decides the keys its entry gets: tokenizer and context as given, else those of the
published model it has the shape of. No click, no torch at import.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path

from registry.errors import Problem, RegistryError, UnknownEntryError, VerificationError
from registry.spec import (
    ENTRY_NAME_RE,
    REGISTRY_FILE_NAME,
    HfSource,
    did_you_mean,
    parse_source,
    resolve_registry_path,
)

PROG = "kronos-registry"
DEFAULT_TOKENIZER = "kronos-tokenizer-base"
DEFAULT_CONTEXT = 512
# The keys that give a model its shape: a checkpoint with a published model's shape is
# (almost surely) a fine-tune of it, and takes its tokenizer and context.
SHAPE_KEYS = ("s1_bits", "s2_bits", "n_layers", "d_model", "n_heads", "ff_dim", "learn_te")
TOKENIZER_SHAPE_KEYS = ("d_in", "d_model", "n_heads", "ff_dim", "n_enc_layers", "n_dec_layers",
                        "s1_bits", "s2_bits", "group_size")


class RefusedError(RegistryError):
    """A request the user may repeat with --force once they mean it."""

    exit_code = 2


def check_new_name(spec, name: str, command: str = "add") -> None:
    """Refuse a name that is not a valid entry name, or that the registry already has."""
    if not ENTRY_NAME_RE.match(name):
        raise RefusedError(f"'{name}' is not a valid entry name", hint="start with a letter or digit and use "
                           "only letters, digits, '.', '_' and '-'")
    if name in spec.names():
        where = spec.get(name).origin
        raise RefusedError(f"an entry named '{name}' already exists ({where})",
                           hint=f"choose another name, or remove that entry from {where.path} first")


def registry_target(registry_file: str | os.PathLike | None, command: str = "add") -> Path:
    """The file to append to: --registry, $KRONOS_REGISTRY_FILE, else ./models.yaml (maybe new)."""
    from kronos_registry.services.registry import PACKAGED_REGISTRY

    chosen = resolve_registry_path(registry_file, os.environ)
    target = Path(chosen) if chosen is not None else Path.cwd() / REGISTRY_FILE_NAME
    target = target.absolute()
    if target.exists() and os.path.samefile(target, PACKAGED_REGISTRY):
        raise RefusedError(f"{target} is the packaged registry file, which an upgrade replaces",
                           hint=f"add to your own file: `{PROG} {command} ... --registry my-models.yaml` "
                                "(it overlays the packaged one), or run it in a folder without models.yaml")
    if target.exists() and not target.is_file():
        raise RefusedError(f"{target} is not a file", hint="pass --registry FILE naming a YAML file")
    return target


def inspect_source(source: str, target: Path, spec, tokenizer: str | None, context_length: int | None) -> dict:
    """What the checkpoint is, and the keys its entry gets; refuses what could never sync."""
    from kronos_registry.kronos.checks import count_parameters, detect_role, read_config, schema_problems

    text = source.strip()
    if text.startswith("hf://"):
        parsed = parse_source(text, base_dir=Path.cwd())
        config, role, params = None, "model", None
        written = str(parsed) if isinstance(parsed, HfSource) else text
        origin = written
    else:
        folder = Path(text).expanduser().absolute()
        if not folder.is_dir():
            raise RefusedError(f"{folder} is not a folder", hint="SOURCE is a checkpoint folder holding "
                               "config.json and model.safetensors, or hf://ORG/REPO@REVISION")
        config, problem = read_config(folder)
        role = detect_role(config) if problem is None else None
        if problem is not None or role is None:
            problem = problem or Problem("config.json fits neither a Kronos model nor a tokenizer",
                                         file="config.json", hint="save the checkpoint with save_pretrained()")
            raise VerificationError(f"{folder}", [problem])
        errors = [p for p in schema_problems(config, role, "") if p.is_error]
        if errors:
            raise VerificationError(f"{folder}", errors)
        params = count_parameters(role, config)
        written = source_text(folder, target)
        origin = str(folder)
    plan = {"role": role, "section": "models" if role == "model" else "tokenizers", "source": written,
            "origin": origin, "config": config, "params": params, "tokenizer": None, "context_length": None,
            "chosen": None}
    if role == "tokenizer":
        if tokenizer or context_length:
            raise RefusedError("SOURCE is a tokenizer: --tokenizer and --context-length apply to models",
                               hint="leave them out for a tokenizer checkpoint")
        return plan
    like = published_like(spec, config)
    if tokenizer is not None and tokenizer not in spec.tokenizers:
        guess = did_you_mean(tokenizer, list(spec.tokenizers))
        raise UnknownEntryError(tokenizer, [guess] if guess else [], registry_path=spec.path)
    plan["tokenizer"] = tokenizer or (like.tokenizer if like else DEFAULT_TOKENIZER)
    plan["context_length"] = context_length or (like.context_length if like else DEFAULT_CONTEXT)
    if like is not None and not (tokenizer and context_length):
        plan["chosen"] = f"the shape of {like.name}"
    elif not (tokenizer and context_length):
        plan["chosen"] = "defaults"
    return plan


def published_like(spec, config: dict | None):
    """The first available model of the registry whose pinned config has this shape."""
    if not config:
        return None
    for entry in spec.models.values():
        if entry.available and entry.config and all(entry.config.get(k) == config.get(k) for k in SHAPE_KEYS):
            return entry
    return None


def source_text(folder: Path, target: Path) -> str:
    """The folder as the entry names it: relative to the registry file when it lies below it."""
    base = Path(os.path.realpath(target.parent))
    real = Path(os.path.realpath(folder))
    if real.is_relative_to(base):
        return "./" + real.relative_to(base).as_posix() if real != base else "."
    return str(folder)


def entry_text(name: str, plan: dict, description: str | None, *, made_by: str | None = None,
               lineage: dict | None = None) -> list[str]:
    """The entry's lines (indented by two, then four), with a comment saying where it came from
    (``made_by``: the first comment line; default, `add`'s) and its ``lineage:`` block, if any."""
    day = datetime.date.today().isoformat()
    shape = ""
    config = plan["config"]
    if config:
        keys = ("d_model", "n_layers") if plan["role"] == "model" else ("d_model", "group_size")
        shape = " (" + ", ".join(f"{k}={config[k]}" for k in keys if k in config) + ")"
    counted = f", {plan['params']:,} parameters" if plan["params"] is not None else ""
    lines = [made_by or f"# added by `{PROG} add` on {day} from {plan['origin']}:",
             f"# a Kronos {plan['role']}{shape}{counted}"
             + (f"; tokenizer and context from {plan['chosen']}" if plan["chosen"] else "") + ".",
             f"{name}:"]
    body = [f"source: {json.dumps(plan['source'])}"]
    if description:
        body.append(f"description: {json.dumps(description)}")
    if plan["role"] == "model":
        body += [f"tokenizer: {plan['tokenizer']}", f"context_length: {plan['context_length']}"]
    if plan["params"] is not None:
        body.append(f"params: {plan['params']}")
    if config:
        body.append(f"config: {json.dumps(config)}")
    if lineage:
        body += ["lineage:"] + ["  " + row for row in lineage_yaml(lineage)]
    return lines + ["  " + line for line in body]


def lineage_yaml(lineage: dict) -> list[str]:
    """A lineage mapping as block YAML lines (keys in the record's order)."""
    import yaml

    return yaml.safe_dump(lineage, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=10_000).splitlines()


def insert_entry(original: bytes | None, section: str, lines: list[str], name: str) -> tuple[str, int]:
    """The file's text with the entry inserted at the end of ``section``; and the entry's line.

    Text in, text out: everything else in the file stays as it was.
    """
    import yaml

    if original is None:
        head = ["# Your Kronos registry: it overlays the packaged one (an entry of the same name",
                "# replaces it, a new name adds one). See `kronos-registry validate`.", "schema: 1", "",
                f"{section}:"]
        body = head + ["  " + line for line in lines]
        return "\n".join(body) + "\n", len(head) + 3
    text = original.decode("utf-8")
    newline = "\r\n" if "\r\n" in text else "\n"
    rows = text.splitlines()
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # the file parsed a moment ago: valid
    node = None
    if root is not None:
        node = next(((k, v) for k, v in root.value if k.value == section), None)
    if node is None:  # no such section yet: a new one at the end
        block = ([""] if rows and rows[-1].strip() else []) + [f"{section}:"] + ["  " + line for line in lines]
        return newline.join(rows + block) + newline, len(rows) + len(block) - len(lines) + 3
    key, value = node
    if isinstance(value, yaml.MappingNode) and value.flow_style:
        raise RefusedError(f"the `{section}:` section is written in flow style ({{...}}), which "
                           f"`add` cannot extend without rewriting it", hint=f"write `{section}:` with one "
                           "indented `NAME:` block per entry, then add again")
    if isinstance(value, yaml.MappingNode) and value.value:
        indent = value.value[0][0].start_mark.column
        last = value.value[-1][1].end_mark
        index = last.line + (1 if last.column > 0 else 0)
        index = min(index, len(rows))
        while index > key.start_mark.line + 1 and _blank_or_comment(rows[index - 1]):
            index -= 1
    else:  # `models:` with nothing under it (all commented out)
        indent = 2
        index = key.start_mark.line + 1
    block = [" " * indent + line for line in lines]
    rows[index:index] = block
    return newline.join(rows) + newline, index + 3


def _blank_or_comment(row: str) -> bool:
    stripped = row.strip()
    return not stripped or stripped.startswith("#")


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically (same folder, same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if mode is not None:
            os.chmod(temp, mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def restore(path: Path, original: bytes | None) -> None:
    if original is None:
        path.unlink(missing_ok=True)
    else:
        write_text(path, original.decode("utf-8"))


__all__ = ["RefusedError", "check_new_name", "entry_text", "insert_entry", "inspect_source", "lineage_yaml",
           "registry_target", "restore", "write_text"]
