"""Kronos checks run directly on checkpoint folders: each failure named with file, field, fix."""

from __future__ import annotations

import inspect
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from kronos_registry import checks as kc
from registry.checks import CheckContext, run_checks
from registry.errors import Location
from registry.spec import Entry, HfSource, LocalSource, ParamCount
from tests.support.kronos_checkpoints import (
    TINY_MODEL, TINY_TOKENIZER, model_checkpoint, param_count, tokenizer_checkpoint, write_checkpoint,
)


def entry(kind, folder, **fields):
    source = fields.pop("source", LocalSource(folder))
    return Entry(name=fields.pop("name", f"tiny-{kind}"), kind=kind, source=source,
                 origin=Location("models.yaml", 1, 1), **fields)


def report_for(kind, folder, deep=False, related=None, **fields):
    e = entry(kind, folder, **fields)
    ctx = CheckContext(entry=e, folder=folder, deep=deep, related=related or {})
    return run_checks(e.name, kc.kronos_checks(e), ctx)


def only_error(report):
    assert len(report.errors) == 1, [str(p) for p in report.problems]
    return report.errors[0]


def test_schema_tables_match_the_constructors():
    typed = kc.INT_KEYS | kc.PROBABILITY_KEYS | kc.FLOAT_KEYS | kc.BOOL_KEYS
    assert kc.config_keys("tokenizer") | kc.config_keys("model") == typed


def test_clean_checkpoints_pass(tmp_path):
    tok = tokenizer_checkpoint(tmp_path / "tok")
    mod = model_checkpoint(tmp_path / "model")
    assert report_for("tokenizer", tok, deep=True, config=TINY_TOKENIZER).ok
    report = report_for("model", mod, deep=True, related={"tokenizer": tok},
                        params=ParamCount(param_count("model", TINY_MODEL), "x", True))
    assert report.ok, [str(p) for p in report.problems]
    assert "kronos-pairing" in report.checks_run


def test_missing_config_json(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    (folder / "config.json").unlink()
    problems = [str(p) for p in report_for("model", folder).errors]
    assert any("config.json is missing" in p and "save_pretrained" in p for p in problems)


def test_config_not_an_object_or_not_json(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    (folder / "config.json").write_text("[1, 2]")
    assert "not a JSON object" in str(only_error(report_for("model", folder)))
    (folder / "config.json").write_text("{oops")
    assert "not valid JSON" in str(only_error(report_for("model", folder)))


def test_tokenizer_given_as_model_is_named(tmp_path):
    folder = tokenizer_checkpoint(tmp_path / "t")
    problem = only_error(report_for("model", folder))
    assert problem.field == "role"
    assert "tokenizer checkpoint" in problem.message and "declared as a model" in problem.message


def test_model_given_as_tokenizer_is_named(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    problem = only_error(report_for("tokenizer", folder))
    assert "model checkpoint" in problem.message and "declared as a tokenizer" in problem.message


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"n_layers": None}, "n_layers", "missing keys: n_layers"),
        ({"dropout": 0.1}, "dropout", "unknown keys: dropout"),
        ({"d_model": "32"}, "d_model", "must be a number"),
        ({"n_layers": 2.5}, "n_layers", "whole number"),
        ({"n_heads": 0}, "n_heads", "must be positive"),
        ({"ffn_dropout_p": 1.5}, "ffn_dropout_p", "probability"),
        ({"learn_te": 1}, "learn_te", "true or false"),
        ({"n_heads": 3}, "n_heads", "not divisible by n_heads"),
    ],
)
def test_config_schema_problems(tmp_path, change, field, words):
    folder = model_checkpoint(tmp_path / "m")
    config = {**TINY_MODEL, **change}
    config = {k: v for k, v in config.items() if v is not None}
    (folder / "config.json").write_text(json.dumps(config))
    problems = report_for("model", folder).errors
    assert any(p.field == field and words in p.message and p.hint for p in problems), [str(p) for p in problems]


def test_pinned_config_mismatch_catches_tokenizer_2k_for_base(tmp_path):
    folder = tokenizer_checkpoint(tmp_path / "t", group_size=5)
    problem = only_error(report_for("tokenizer", folder, config=TINY_TOKENIZER))
    assert problem.field == "group_size" and "registry pins 4" in problem.message


def test_dropout_mismatch_is_only_a_warning(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    report = report_for("model", folder, config={**TINY_MODEL, "ffn_dropout_p": 0.25})
    assert report.ok and len(report.warnings) == 1
    assert report.warnings[0].field == "ffn_dropout_p"


def test_weights_of_another_config_are_caught(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    bigger = {**TINY_MODEL, "d_model": 64, "n_layers": 3}
    write_checkpoint(tmp_path / "other", "model", bigger)
    (folder / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    problems = report_for("model", folder).errors
    assert any("tensors" in p.message and p.file == "model.safetensors" for p in problems)
    assert any("the config implies" in p.message for p in problems)


def test_truncated_safetensors_is_caught(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    problems = report_for("model", folder).errors
    assert any(p.file == "model.safetensors" and "truncated" in p.message for p in problems)


def test_nan_weights_only_in_deep_mode(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    name = sorted(state)[0]
    state[name][..., 0] = math.nan
    save_file(state, str(folder / "model.safetensors"))
    assert report_for("model", folder).ok
    problem = only_error(report_for("model", folder, deep=True))
    assert problem.field == name and "NaN" in problem.message


def test_pickle_weights_refused_unless_opted_in(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    files = ("config.json", "pytorch_model.bin")
    refused = only_error(report_for("model", folder, files=files))
    assert refused.field == "allow_pickle" and "allow_pickle: true" in refused.hint
    assert report_for("model", folder, files=files, allow_pickle=True).ok


def test_declared_params_must_match(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    actual = param_count("model", TINY_MODEL)
    assert report_for("model", folder, params=ParamCount(actual, str(actual), True)).ok
    problem = only_error(report_for("model", folder, params=ParamCount(24_741_376, "24.7M", False)))
    assert problem.field == "params" and f"{actual:,}" in problem.message


def test_pairing_bits_and_d_in(tmp_path):
    tok = write_checkpoint(tmp_path / "t", "tokenizer", {**TINY_TOKENIZER, "s1_bits": 8, "s2_bits": 8, "d_in": 5})
    mod = model_checkpoint(tmp_path / "m")
    problems = report_for("model", mod, related={"tokenizer": tok}, tokenizer="tiny-tokenizer").errors
    fields = {p.field for p in problems}
    assert {"s1_bits", "s2_bits", "d_in"} <= fields


# Which tokenizer each published model was trained with, written out here from the model cards
# (not read from the product's table, so a wrong row there cannot agree with itself):
# Tokenizer-2k has group_size 5, Tokenizer-base 4; they are otherwise identical in shape.
TRAINED_WITH = {
    "NeoQuasar/Kronos-mini": ("NeoQuasar/Kronos-Tokenizer-2k", 5),
    "NeoQuasar/Kronos-small": ("NeoQuasar/Kronos-Tokenizer-base", 4),
    "NeoQuasar/Kronos-base": ("NeoQuasar/Kronos-Tokenizer-base", 4),
    "NeoQuasar/Kronos-large": ("NeoQuasar/Kronos-Tokenizer-base", 4),
}


def test_the_pairing_table_has_a_row_for_every_published_model():
    assert set(kc.PUBLISHED_TOKENIZER_GROUP_SIZE) == set(TRAINED_WITH)


@pytest.mark.parametrize("repo", list(TRAINED_WITH))
def test_published_model_paired_with_its_own_tokenizer_passes_and_with_the_other_fails(tmp_path, repo):
    tokenizer_repo, group_size = TRAINED_WITH[repo]
    wrong_size = 4 if group_size == 5 else 5
    mod = model_checkpoint(tmp_path / "m")
    right = tokenizer_checkpoint(tmp_path / "right", group_size=group_size)
    report = report_for("model", mod, related={"tokenizer": right}, tokenizer="tok", source=HfSource(repo, "main"))
    assert report.ok and "kronos-pairing" in report.checks_run, [str(p) for p in report.problems]

    wrong = tokenizer_checkpoint(tmp_path / "wrong", group_size=wrong_size)
    problem = only_error(report_for("model", mod, related={"tokenizer": wrong}, tokenizer="tok",
                                    source=HfSource(repo, "main")))
    assert problem.field == "tokenizer" and "silently forecast worse" in problem.message
    assert f"group_size {group_size}" in problem.message and f"group_size {wrong_size}" in problem.message
    assert tokenizer_repo in problem.hint


def test_packaged_registry_pairs_every_published_model_with_its_tokenizer():
    from kronos_registry.api import PACKAGED_REGISTRY
    from registry.spec import parse_registry

    spec = parse_registry(PACKAGED_REGISTRY, check_references=True)
    paired = {}
    for model in spec.models.values():
        # kronos-large is not released (no source): its display name is its repo name
        repo = getattr(model.source, "repo_id", None) or f"NeoQuasar/{model.display_name}"
        if repo not in TRAINED_WITH:
            continue
        tokenizer = spec.tokenizers[model.tokenizer]
        paired[repo] = (tokenizer.source.repo_id, tokenizer.config["group_size"])
    assert paired == TRAINED_WITH


def test_signature_keys_are_those_of_the_official_classes():
    official = pytest.importorskip("model")
    for role, cls in (("tokenizer", official.KronosTokenizer), ("model", official.Kronos)):
        names = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert kc.config_keys(role) == names
