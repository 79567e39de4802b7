"""Kronos checks run directly on checkpoint folders: each failure named with file, field, fix."""

from __future__ import annotations

import inspect
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from kronos_registry.kronos import checks as kc
from registry.checks import CheckContext, run_checks
from registry.errors import Location
from registry.spec import Entry, HfSource, LocalSource, ParamCount
from tests.support.kronos_checkpoints import (
    TINY_MODEL,
    TINY_TOKENIZER,
    model_checkpoint,
    param_count,
    tokenizer_checkpoint,
    write_checkpoint,
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
        ({"n_layers": 2.0}, "n_layers", "must be an integer"),
        ({"d_model": 30}, "d_model", "not divisible by 4"),
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
    problem = only_error(report_for("model", folder))
    assert problem.file == "config.json" and problem.field == "d_model"
    assert "d_model=32, n_layers=2 does not fit the weights" in problem.message
    assert "looks like d_model=64, ff_dim=64, n_layers=3, s1_bits=10, s2_bits=10" in problem.message
    assert "`source:` at models.yaml:1:1" in problem.hint


def test_truncated_safetensors_is_caught(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    problems = report_for("model", folder).errors
    assert any(p.file == "model.safetensors" and "truncated" in p.message for p in problems)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("deep", [False, True])
def test_non_finite_weights_are_refused_by_every_run(tmp_path, bad, deep):
    # Sync runs the checks with deep=False: NaN weights must not get into the store.
    folder = model_checkpoint(tmp_path / "m")
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    name = "transformer.1.ffn.w2.weight"
    state[name][3, 5] = bad
    save_file(state, str(folder / "model.safetensors"))
    problem = only_error(report_for("model", folder, deep=deep))
    assert problem.field == name and "NaN or Inf" in problem.message and problem.kind


def test_non_finite_pickle_weights_are_refused(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    state["norm.weight"][0] = math.nan
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    report = report_for("model", folder, files=("config.json", "pytorch_model.bin"), allow_pickle=True)
    assert only_error(report).field == "norm.weight"


def _retyped(folder, dtype, names):
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    for name in names:
        state[name] = state[name].to(dtype)
    save_file(state, str(folder / "model.safetensors"))


@pytest.mark.parametrize("dtype, label", [(torch.uint8, "U8"), (torch.bool, "BOOL"), (torch.int32, "I32"),
                                          (torch.float64, "F64")])
@pytest.mark.parametrize("deep", [False, True])
def test_weights_of_a_dtype_the_model_does_not_compute_in_are_refused(tmp_path, dtype, label, deep):
    folder = model_checkpoint(tmp_path / "m")
    names = ["head.proj_s1.weight", "transformer.0.ffn.w1.weight", "norm.weight"]
    _retyped(folder, dtype, names)
    errors = report_for("model", folder, deep=deep).errors
    assert sorted(p.field for p in errors) == sorted(names), [str(p) for p in errors]
    assert all(p.kind == f"tensors of dtype {label}" and f"dtype {label}" in p.message for p in errors)
    assert "F32, F16, BF16" in errors[0].hint


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_pass(tmp_path, dtype):
    folder = model_checkpoint(tmp_path / "m")
    from safetensors.torch import load_file

    names = [n for n, t in load_file(str(folder / "model.safetensors")).items() if t.is_floating_point()]
    _retyped(folder, dtype, names)
    report = report_for("model", folder, deep=True)
    assert report.ok, [str(p) for p in report.problems]


def test_integer_buffers_of_the_tokenizer_keep_an_integer_dtype(tmp_path):
    folder = tokenizer_checkpoint(tmp_path / "t")
    assert report_for("tokenizer", folder).ok
    _retyped(folder, torch.float32, ["tokenizer.bsq.basis"])
    problem = only_error(report_for("tokenizer", folder))
    assert problem.field == "tokenizer.bsq.basis" and "dtype F32" in problem.message


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


# --- cheap checks first: a refused config builds nothing ---------------------------------------


@pytest.fixture
def builds(monkeypatch):
    """Every architecture built from a config by the checks (on the meta device or not)."""
    from kronos_registry.kronos import architecture

    real = architecture.model_classes
    built = []

    def spying():
        classes = real()
        return {role: _spy(cls, role, built) for role, cls in classes.items()}
    monkeypatch.setattr(architecture, "model_classes", spying)
    return built


def _spy(cls, role, built):
    def construct(**config):
        built.append((role, config))
        if max(config.get(k, 0) for k in ("n_layers", "n_enc_layers", "n_dec_layers")) > 64:
            raise AssertionError(f"built a {role} of {config} (minutes, gigabytes off the meta device)")
        return cls(**config)
    construct.__init__ = cls.__init__  # config_keys reads the constructor's signature
    return construct


@pytest.mark.parametrize("layers", [30000, 3000])
def test_huge_layer_count_behind_a_pin_is_refused_without_building(tmp_path, builds, layers):
    folder = model_checkpoint(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_layers": layers}))
    report = report_for("model", folder, deep=True, config=TINY_MODEL,
                        params=ParamCount(param_count("model", TINY_MODEL), "x", True))
    assert builds == []
    assert [p.field for p in report.errors] == ["n_layers"], [str(p) for p in report.problems]
    assert "beyond any Kronos" in report.errors[0].message and "registry pins" not in report.errors[0].message


def test_pinned_mismatch_is_refused_before_anything_is_built(tmp_path, builds):
    folder = model_checkpoint(tmp_path / "m", n_layers=3)
    report = report_for("model", folder, config=TINY_MODEL,
                        params=ParamCount(param_count("model", TINY_MODEL), "x", True))
    assert builds == []
    problem = only_error(report)
    assert problem.field == "n_layers" and "n_layers is 3 but the registry pins 2" in problem.message


def test_unpinned_config_the_weights_contradict_is_refused_without_building(tmp_path, builds):
    # No pin to compare with: the weights' own header says how many layers there are.
    folder = model_checkpoint(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_layers": 200}))
    report = report_for("model", folder, params=ParamCount(param_count("model", TINY_MODEL), "x", True))
    assert builds == []
    problem = only_error(report)
    assert problem.field == "n_layers" and "n_layers=200 does not fit the weights" in problem.message
    assert "n_layers=2" in problem.message


def test_a_good_checkpoint_is_built_once(tmp_path, builds):
    kc.architecture.cache_clear()
    folder = model_checkpoint(tmp_path / "m", seed=7, n_heads=4)
    report = report_for("model", folder, config={**TINY_MODEL, "n_heads": 4},
                        params=ParamCount(param_count("model", {**TINY_MODEL, "n_heads": 4}), "x", True))
    assert report.ok, [str(p) for p in report.problems]
    assert len(builds) == 1


def test_implied_config_agrees_with_the_architecture():
    from tests.support.kronos_checkpoints import build

    for role, config in [("model", TINY_MODEL), ("model", {**TINY_MODEL, "n_layers": 5, "s2_bits": 8}),
                         ("tokenizer", TINY_TOKENIZER),
                         ("tokenizer", {**TINY_TOKENIZER, "n_enc_layers": 3, "n_dec_layers": 4, "d_in": 7})]:
        shapes = {n: tuple(t.shape) for n, t in build(role, config).state_dict().items()}
        implied = kc.implied_config(role, shapes)
        assert implied == {k: config[k] for k in implied}, (role, implied)
        assert {"d_model", "s1_bits", "s2_bits"} <= implied.keys()


def test_oversized_config_json_is_not_read(tmp_path):
    # 2 million unknown keys once gave a 20 MB message; nothing past the cap is even parsed.
    folder = model_checkpoint(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    text = json.dumps({**config, **{f"key_{i}": 0 for i in range(200_000)}})
    assert len(text) > kc.MAX_CONFIG_BYTES
    (folder / "config.json").write_text(text)
    problem = only_error(report_for("model", folder))
    assert problem.file == "config.json" and f"{len(text):,} bytes" in problem.message
    assert len(str(problem)) < 300


def test_many_unknown_keys_are_counted_not_listed(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **{f"key_{i:05}": 0 for i in range(30_000)}}))
    problem = only_error(report_for("model", folder))
    assert problem.message == "unknown keys: key_00000, key_00001, key_00002, key_00003, key_00004 and 29,995 more"


def test_huge_values_are_shown_short(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "d_model": "x" * 500_000, "n_layers": 10 ** 400}))
    report = report_for("model", folder)
    assert sorted(p.field for p in report.errors) == ["d_model", "n_layers"], [str(p) for p in report.problems]
    assert all(len(str(p)) < 300 for p in report.problems)


def test_deeply_nested_config_json_is_a_problem_not_a_crash(tmp_path):
    folder = model_checkpoint(tmp_path / "m")
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    problem = only_error(report_for("model", folder))
    assert "nests too deeply" in problem.message


# --- reports a person reads: one line per kind, a count, two examples, fix on its own line ----


def test_shape_problems_of_one_kind_are_one_line(tmp_path):
    from registry.errors import VerificationError

    # The header agrees on every size it shows, so the architecture is built and compared:
    # n_heads 4 instead of 2 changes only the rotary tables of the self-attention blocks.
    folder = model_checkpoint(tmp_path / "m", n_layers=4)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_heads": 4}))
    report = report_for("model", folder)
    assert len(report.errors) == 4 and {p.kind for p in report.errors} == {"tensors of a shape the config does not imply"}
    text = str(VerificationError("tiny-model", report.problems))
    lines = text.splitlines()
    assert lines[0] == "tiny-model failed verification (4 problems):"
    assert lines[1] == ("  - model.safetensors: 4 tensors of a shape the config does not imply "
                        "(shape [8], the config implies [4]), e.g. "
                        "'transformer.0.self_attn.rotary.inv_freq', 'transformer.1.self_attn.rotary.inv_freq'")
    assert lines[2].startswith("    fix: the weights do not belong to this config")
    assert "the weights look like d_model=32, ff_dim=64, n_layers=4, s1_bits=10, s2_bits=10" in lines[2]
    assert lines[3].startswith("hint: ") and len(lines) == 4


def test_truncated_safetensors_is_one_line(tmp_path):
    from registry.errors import VerificationError

    folder = model_checkpoint(tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    report = report_for("model", folder)
    problem = only_error(report)
    assert problem.message.startswith("file truncated: the header describes ")
    assert "tensors lie past the end, e.g. '" in problem.message
    assert len(str(VerificationError("tiny-model", report.problems)).splitlines()) == 4


def test_a_report_lists_a_bounded_number_of_kinds():
    from registry.errors import MAX_LISTED_KINDS, Problem, VerificationError

    problems = [Problem(f"problem number {i}", file="config.json", field=f"k{i}", hint="h") for i in range(5000)]
    problems.append(Problem("x" * 1_000_000, file="config.json"))
    text = str(VerificationError("a", problems))
    assert len(text) < 5000 and "(5,001 problems)" in text
    assert text.count("\n  - ") == MAX_LISTED_KINDS + 1
    assert f"and {5001 - MAX_LISTED_KINDS:,} more problems of {5001 - MAX_LISTED_KINDS:,} other kinds, not listed" in text


def test_fix_names_the_registry_file_and_line_in_use(tmp_path):
    folder = tokenizer_checkpoint(tmp_path / "t", group_size=5)
    e = Entry(name="tok", kind="tokenizer", source=LocalSource(folder), origin=Location("/p/team.yaml", 3, 3),
              config=TINY_TOKENIZER, locations={"config.group_size": Location("/p/team.yaml", 9, 19)})
    report = run_checks("tok", kc.kronos_checks(e), CheckContext(entry=e, folder=folder))
    problem = only_error(report)
    assert "at /p/team.yaml:9:19" in problem.hint and "models.yaml" not in problem.hint


def test_building_the_architecture_for_the_checks_never_imports_dynamo():
    """Sync, verify and import build each architecture with its weights on the meta device;
    arithmetic on meta tensors would import torch._dynamo and sympy (1-5 s per command)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from kronos_registry.kronos.checks import expected_tensors, count_parameters\n"
            "from kronos_registry.kronos.config import PUBLISHED_CONFIGS\n"
            "counts = {n: count_parameters('tokenizer' if 'tokenizer' in n else 'model', c)\n"
            "          for n, c in PUBLISHED_CONFIGS.items()}\n"
            "assert counts['kronos-small'] == 24741376 and counts['kronos-base'] == 102310592, counts\n"
            "shapes = expected_tensors('model', tuple(sorted(PUBLISHED_CONFIGS['kronos-small'].items())))\n"
            "assert shapes['embedding.emb_s1.weight'] == (1024, 512), shapes['embedding.emb_s1.weight']\n"
            "assert 'torch._dynamo' not in sys.modules and 'sympy' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
