"""The registry file: parsing, every mistake reported with file:line:column, overlay, resolution."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from registry.errors import RegistryFileError, UnknownEntryError
from registry.spec import (
    HfSource,
    LocalSource,
    ParamCount,
    load_registry,
    parse_registry,
    parse_source,
    resolve_registry_path,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGED = REPO_ROOT / "kronos_registry" / "models.yaml"

SHA = "ab" * 32
MARK = "#<"  # ends the line a malformed case expects its problem on
ENTRY_MARK = "#@"  # ends the line of entry `m`'s name: the expected line where no MARK is set

# A valid file to start from; each malformed case changes one thing in it.
VALID = """\
schema: 1
tokenizers:
  tok:
    source: hf://org/tok@main
models:
  m:
    source: hf://org/model@main
    tokenizer: tok
    context_length: 512
"""


def model_file(*entry_lines: str, top: str = "") -> str:
    """A file with tokenizer `tok` and model `m` whose keys are ``entry_lines``."""
    body = "".join(f"    {line}\n" for line in entry_lines)
    return f"schema: 1\n{top}tokenizers:\n  tok:\n    source: hf://org/tok@main\nmodels:\n  m: {ENTRY_MARK}\n{body}"


OK_KEYS = ("source: hf://org/model@main", "tokenizer: tok", "context_length: 512")


def with_keys(*extra: str) -> str:
    return model_file(*OK_KEYS, *extra)


# (id, file text, offending key as it appears in the message); the line is the one marked with MARK,
# else the one marked with ENTRY_MARK, else line 1.
MALFORMED = [
    ("empty-file", "", None),
    ("only-comments", "# nothing here\n", None),
    ("yaml-syntax", "schema: 1\nmodels:\n  m: [1, 2\n  n: 3 #<\n", None),
    ("top-level-list", "- schema: 1\n- models: {}\n", None),
    ("schema-missing", "models: {}\n", "schema"),
    ("schema-unsupported", "schema: 2\nmodels: {}\n", "schema"),
    ("schema-not-a-number", "schema: one\n", "schema"),
    ("unknown-top-level-key", VALID + "modles: {} #<\n", "modles"),
    ("duplicate-top-level-key", VALID + "schema: 1 #<\n", "schema"),
    ("section-is-a-list", "schema: 1\nmodels:\n  - m #<\n", "models"),
    ("entry-is-text", "schema: 1\nmodels:\n  m: hf://org/model #<\n", "models.m"),
    ("entry-name-invalid", "schema: 1\nmodels:\n  bad name!: {} #<\n", "models.bad name!"),
    ("entry-key-unknown", with_keys("flavour: vanilla #<"), "models.m.flavour"),
    ("entry-key-duplicate", with_keys("context_length: 1024 #<"), "models.m.context_length"),
    ("tokenizer-missing", model_file("source: hf://org/model@main", "context_length: 512"), "models.m.tokenizer"),
    ("source-missing", model_file("tokenizer: tok", "context_length: 512"), "models.m.source"),
    ("context-length-missing", model_file("source: hf://org/model@main", "tokenizer: tok"),
     "models.m.context_length"),
    ("context-length-quoted", model_file("source: hf://org/model@main", "tokenizer: tok",
                                         "context_length: '512' #<"), "models.m.context_length"),
    ("context-length-negative", model_file("source: hf://org/model@main", "tokenizer: tok",
                                           "context_length: -5 #<"), "models.m.context_length"),
    ("context-length-float", model_file("source: hf://org/model@main", "tokenizer: tok",
                                        "context_length: 512.5 #<"), "models.m.context_length"),
    ("params-word", with_keys("params: lots #<"), "models.m.params"),
    ("params-zero", with_keys("params: 0 #<"), "models.m.params"),
    ("params-unknown-suffix", with_keys("params: 24.7Q #<"), "models.m.params"),
    ("available-quoted", with_keys("available: 'no' #<"), "models.m.available"),
    ("unavailable-without-reason", with_keys("available: false #<"), "models.m.reason"),
    ("reason-is-a-list", with_keys("available: false", "reason: [a, b] #<"), "models.m.reason"),
    ("display-name-mapping", with_keys("display_name: {a: 1} #<"), "models.m.display_name"),
    ("config-is-a-list", with_keys("config: [1, 2] #<"), "models.m.config"),
    ("config-nested-value", with_keys("config:", "  d_model: {x: 1} #<"), "models.m.config.d_model"),
    ("config-duplicate-key", with_keys("config:", "  d_model: 1", "  d_model: 2 #<"), "models.m.config.d_model"),
    ("sha256-not-hex", with_keys("sha256:", "  model.safetensors: abc123 #<"), "models.m.sha256.model.safetensors"),
    ("sha256-pins-unfetched-file", with_keys("sha256:", f"  README.md: {SHA} #<"), "models.m.sha256.README.md"),
    ("files-not-a-list", with_keys("files: config.json #<"), "models.m.files"),
    ("files-with-slash", with_keys("files: [config.json, sub/model.safetensors] #<"), "models.m.files[1]"),
    ("files-dotdot", with_keys("files:", "  - config.json", "  - '..' #<"), "models.m.files[1]"),
    ("files-pickle-without-opt-in", with_keys("files: [config.json, pytorch_model.bin] #<"), "models.m.files"),
    ("allow-pickle-text", with_keys("allow_pickle: maybe #<"), "models.m.allow_pickle"),
    ("source-dataset-repo", model_file("source: hf://datasets/org/data@main #<", "tokenizer: tok",
                                       "context_length: 512"), "models.m.source"),
    ("source-without-repo-name", model_file("source: hf://justone #<", "tokenizer: tok",
                                            "context_length: 512"), "models.m.source"),
    ("source-file-in-repo", model_file("source: hf://org/model@main/config.json #<", "tokenizer: tok",
                                       "context_length: 512"), "models.m.source"),
    ("source-empty-revision", model_file("source: hf://org/model@ #<", "tokenizer: tok",
                                         "context_length: 512"), "models.m.source"),
    ("source-other-scheme", model_file("source: s3://bucket/model #<", "tokenizer: tok",
                                       "context_length: 512"), "models.m.source"),
    ("tokenizer-key-on-tokenizer", "schema: 1\ntokenizers:\n  tok:\n    source: ./t\n    context_length: 5 #<\n",
     "tokenizers.tok.context_length"),
    ("tokenizer-reference-dangling", with_keys().replace("tokenizer: tok", "tokenizer: nope #<"),
     "models.m.tokenizer"),
    ("tokenizer-reference-to-model", with_keys().replace("tokenizer: tok", "tokenizer: m #<"),
     "models.m.tokenizer"),
    ("endpoint-not-http", model_file(*OK_KEYS, top="endpoint: ftp://mirror.example #<\n"), "endpoint"),
    ("mirrors-not-a-list", model_file(*OK_KEYS, top="mirrors: https://a.example #<\n"), "mirrors"),
    ("mirrors-bad-item", model_file(*OK_KEYS, top="mirrors:\n  - https://a.example\n  - not a url #<\n"),
     "mirrors[1]"),
]


def expected_line(text: str) -> int:
    for mark in (MARK, ENTRY_MARK):
        marked = [number for number, line in enumerate(text.splitlines(), 1) if line.rstrip().endswith(mark)]
        if marked:
            return marked[0]
    return 1


def write(folder: Path, text: str, name: str = "models.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(path: Path, **kwargs) -> RegistryFileError:
    with pytest.raises(RegistryFileError) as caught:
        parse_registry(path, check_references=True, **kwargs)
    return caught.value


@pytest.mark.parametrize("text,key", [(t, k) for _, t, k in MALFORMED], ids=[i for i, _, _ in MALFORMED])
def test_malformed_file_names_file_line_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    error = problems_of(path)
    message = str(error)
    line = expected_line(text)
    assert error.path == str(path)
    assert f"{path}:{line}:" in message, message
    if key is not None:
        assert f"'{key}'" in message, message
        assert any(p.field == key and p.location.line == line for p in error.problems), message
    assert all(p.hint for p in error.problems), "every problem says how to fix it"


def test_enough_malformed_cases():
    assert len(MALFORMED) >= 20


def test_all_mistakes_are_reported_at_once(tmp_path):
    text = (
        "schema: 1\n"
        "tokenizers:\n"
        "  tok:\n"
        "    source: hf://org/tok@main\n"
        "models:\n"
        "  m:\n"
        "    source: hf://org/model@main\n"
        "    tokenizer: tok\n"
        "    context_length: many\n"   # line 9
        "    params: -3\n"             # line 10
        "    available: sometimes\n"   # line 11
    )
    error = problems_of(write(tmp_path, text))
    assert [(p.field, p.location.line) for p in error.problems] == [
        ("models.m.context_length", 9),
        ("models.m.params", 10),
        ("models.m.available", 11),
    ]
    assert "has 3 problems" in str(error)


def test_schema_error_says_which_schemas_are_supported(tmp_path):
    error = problems_of(write(tmp_path, "schema: 7\n"))
    assert "unsupported schema 7" in str(error)
    assert "reads schema 1" in str(error)


def test_yaml_syntax_error_reports_its_line_and_column(tmp_path):
    path = write(tmp_path, "schema: 1\nmodels:\n  m:\n    source: 'unclosed\n")
    error = problems_of(path)
    [problem] = error.problems
    assert problem.location.path == str(path)
    assert problem.location.line >= 4 and problem.location.column >= 1
    assert "invalid YAML" in problem.message


def test_misspelt_key_gets_did_you_mean_and_no_second_missing_key_report(tmp_path):
    text = model_file("source: hf://org/model@main", "tokenizer: tok", "contxt_length: 512 #<")
    error = problems_of(write(tmp_path, text))
    [problem] = error.problems
    assert problem.field == "models.m.contxt_length"
    assert "did you mean 'context_length'?" in str(error)


def test_misspelt_top_level_key_gets_did_you_mean(tmp_path):
    error = problems_of(write(tmp_path, VALID + "mirrrors: []\n"))
    assert "did you mean 'mirrors'?" in str(error)


def test_misspelt_tokenizer_reference_gets_did_you_mean(tmp_path):
    text = VALID.replace("tokenizer: tok", "tokenizer: kronos-tokenizer-bsae").replace(
        "  tok:", "  kronos-tokenizer-base:")
    error = problems_of(write(tmp_path, text))
    [problem] = error.problems
    assert problem.field == "models.m.tokenizer"
    assert problem.location.line == 8
    assert "no tokenizer named 'kronos-tokenizer-bsae'" in problem.message
    assert "did you mean 'kronos-tokenizer-base'?" in str(error)


def test_unknown_entry_lookup_suggests_the_close_name():
    spec = load_registry(default_path=PACKAGED, env={}, cwd=PACKAGED.parent)
    with pytest.raises(UnknownEntryError) as caught:
        spec.get("kronos-smal")
    assert "kronos-small" in caught.value.suggestions
    assert "did you mean 'kronos-small'" in str(caught.value)


def test_missing_explicit_file_is_an_error_not_a_silent_fallback(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RegistryFileError) as caught:
        load_registry(missing, default_path=PACKAGED, env={}, cwd=tmp_path)
    assert caught.value.path == str(missing)
    assert "does not exist" in str(caught.value)


# --- the packaged registry ------------------------------------------------------------------

@pytest.fixture(scope="module")
def packaged():
    return load_registry(default_path=PACKAGED, env={}, cwd=PACKAGED.parent)


def test_root_models_yaml_is_the_packaged_file():
    root = REPO_ROOT / "models.yaml"
    assert root.is_symlink()
    assert root.resolve() == PACKAGED.resolve()


def test_packaged_registry_names(packaged):
    assert packaged.schema == 1
    assert list(packaged.models) == ["kronos-mini", "kronos-small", "kronos-base", "kronos-large", "kronos-demo"]
    assert list(packaged.tokenizers) == ["kronos-tokenizer-base", "kronos-tokenizer-2k", "kronos-demo-tokenizer"]
    assert packaged.warnings == ()


def test_packaged_registry_pins_sources_and_pairings(packaged):
    expected = {
        "kronos-mini": ("NeoQuasar/Kronos-mini", "f4e68697d9d5aed55cef5c96aabc3376bcad9f81",
                        "kronos-tokenizer-2k", 2048, 4108032),
        "kronos-small": ("NeoQuasar/Kronos-small", "901c26c1332695a2a8f243eb2f37243a37bea320",
                         "kronos-tokenizer-base", 512, 24741376),
        "kronos-base": ("NeoQuasar/Kronos-base", "main", "kronos-tokenizer-base", 512, 102310592),
    }
    for name, (repo, revision, tokenizer, context, params) in expected.items():
        entry = packaged.get(name)
        assert entry.source == HfSource(repo, revision)
        assert (entry.tokenizer, entry.context_length) == (tokenizer, context)
        assert entry.params == ParamCount(params, str(params), True)
        assert entry.available
    assert packaged.get("kronos-small").source.is_pinned
    assert not packaged.get("kronos-base").source.is_pinned
    assert packaged.get("kronos-tokenizer-base").source == HfSource(
        "NeoQuasar/Kronos-Tokenizer-base", "0e0117387f39004a9016484a186a908917e22426")
    assert packaged.get("kronos-tokenizer-2k").source == HfSource(
        "NeoQuasar/Kronos-Tokenizer-2k", "26966d0035065a0cae0ebad7af8ece35bc1fb51c")


def test_packaged_large_is_unavailable_with_a_reason(packaged):
    large = packaged.get("kronos-large")
    assert not large.available and large.source is None
    assert large.reason and "released" in large.reason
    assert large.params.text == "499.2M" and not large.params.exact
    assert large.params.matches(499_218_432) and not large.params.matches(102_310_592)


def test_packaged_tokenizer_configs_differ_only_in_group_size(packaged):
    base = dict(packaged.get("kronos-tokenizer-base").config)
    two_k = dict(packaged.get("kronos-tokenizer-2k").config)
    assert base == {
        "d_in": 6, "d_model": 256, "n_heads": 4, "ff_dim": 512, "n_enc_layers": 4, "n_dec_layers": 4,
        "ffn_dropout_p": 0.0, "attn_dropout_p": 0.0, "resid_dropout_p": 0.0, "s1_bits": 10, "s2_bits": 10,
        "beta": 0.05, "gamma0": 1.0, "gamma": 1.1, "zeta": 0.05, "group_size": 4,
    }
    assert two_k == {**base, "group_size": 5}
    for name in ("kronos-tokenizer-base", "kronos-tokenizer-2k"):
        assert packaged.get(name).params.value == 3958042


def test_packaged_model_configs(packaged):
    keys = ["s1_bits", "s2_bits", "n_layers", "d_model", "n_heads", "ff_dim", "ffn_dropout_p",
            "attn_dropout_p", "resid_dropout_p", "token_dropout_p", "learn_te"]
    expected = {
        "kronos-mini": [10, 10, 4, 256, 4, 512, 0.2, 0.0, 0.2, 0.0, True],
        "kronos-small": [10, 10, 8, 512, 8, 1024, 0.25, 0.1, 0.25, 0.1, True],
        "kronos-base": [10, 10, 12, 832, 16, 2048, 0.2, 0.0, 0.2, 0.0, True],
    }
    for name, values in expected.items():
        config = packaged.get(name).config
        assert dict(config) == dict(zip(keys, values)), name
        assert type(config["learn_te"]) is bool and type(config["d_model"]) is int
    assert packaged.get("kronos-large").config is None


def test_packaged_entries_remember_where_their_values_are(packaged):
    small = packaged.get("kronos-small")
    where = small.location_of("config.d_model")
    lines = PACKAGED.read_text().splitlines()
    assert where.path == str(PACKAGED)
    assert lines[where.line - 1].strip() == "d_model: 512"
    assert lines[small.origin.line - 1].strip() == "kronos-small:"


def test_packaged_demo_ships_in_the_package_and_says_how_it_scored(packaged):
    demo = packaged.get("kronos-demo")
    assert "held-out evaluation" in demo.description.lower() and "naive" in demo.description.lower()
    for entry in (demo, packaged.tokenizer_of(demo)):
        assert isinstance(entry.source, LocalSource)
        assert entry.source.path.is_relative_to(PACKAGED.parent)
        assert (entry.source.path / "model.safetensors").is_file()


# --- overlay and resolution -----------------------------------------------------------------

USER_OVERLAY = """\
schema: 1
endpoint: https://mirror.example.com/
models:
  kronos-small:
    source: ./checkpoints/small
    tokenizer: kronos-tokenizer-base
    context_length: 512
  my-finetune:
    source: ./checkpoints/my-finetune/model
    tokenizer: kronos-tokenizer-2k
    context_length: 2048
"""


def test_user_file_replaces_one_entry_and_adds_another(tmp_path):
    user = write(tmp_path, USER_OVERLAY, name="mine.yaml")
    spec = load_registry(user, default_path=PACKAGED, env={}, cwd=tmp_path)
    assert spec.paths == (str(PACKAGED), str(user))
    assert spec.path == str(user)
    assert spec.get("kronos-small").source == LocalSource(tmp_path / "checkpoints" / "small")
    assert spec.get("kronos-small").config is None  # replaced whole, not merged
    assert spec.get("my-finetune").tokenizer == "kronos-tokenizer-2k"  # a packaged tokenizer
    assert list(spec.models) == ["kronos-mini", "kronos-small", "kronos-base", "kronos-large", "kronos-demo",
                                 "my-finetune"]
    assert spec.get("kronos-mini").source.repo_id == "NeoQuasar/Kronos-mini"
    assert set(spec.tokenizers) == {"kronos-tokenizer-base", "kronos-tokenizer-2k", "kronos-demo-tokenizer"}
    assert spec.endpoint == "https://mirror.example.com"


def test_overlay_reference_errors_name_the_user_file(tmp_path):
    user = write(tmp_path, USER_OVERLAY.replace("tokenizer: kronos-tokenizer-2k", "tokenizer: kronos-tokenizer-2"))
    with pytest.raises(RegistryFileError) as caught:
        load_registry(user, default_path=PACKAGED, env={}, cwd=tmp_path)
    assert caught.value.path == str(user)
    assert f"{user}:10:" in str(caught.value)
    assert "did you mean 'kronos-tokenizer-2k'?" in str(caught.value)


def test_overlay_near_miss_name_is_a_warning(tmp_path):
    user = write(tmp_path, USER_OVERLAY.replace("  kronos-small:", "  kronos-smal:"))
    spec = load_registry(user, default_path=PACKAGED, env={}, cwd=tmp_path)
    [warning] = spec.warnings
    assert warning.severity == "warning" and warning.field == "models.kronos-smal"
    assert "kronos-small" in str(warning)


def test_overlay_mirrors_of_the_user_file_win(tmp_path):
    default = write(tmp_path / "pkg", VALID + "mirrors: [https://a.example, https://b.example]\n")
    user = write(tmp_path / "user", "schema: 1\nmirrors: [https://c.example]\n")
    spec = load_registry(user, default_path=default, env={}, cwd=tmp_path)
    assert spec.mirrors == ("https://c.example",)
    untouched = load_registry(write(tmp_path / "u2", "schema: 1\n"), default_path=default, env={}, cwd=tmp_path)
    assert untouched.mirrors == ("https://a.example", "https://b.example")


def test_resolution_order(tmp_path, monkeypatch):
    explicit = write(tmp_path / "explicit", "schema: 1\n")
    from_env = write(tmp_path / "env", "schema: 1\n")
    cwd = tmp_path / "work"
    in_cwd = write(cwd, "schema: 1\n")
    env = {"KRONOS_REGISTRY_FILE": str(from_env)}
    assert resolve_registry_path(explicit, env, cwd) == explicit
    assert resolve_registry_path(None, env, cwd) == from_env
    assert resolve_registry_path(None, {}, cwd) == in_cwd
    assert resolve_registry_path(None, {}, tmp_path / "empty") is None
    assert resolve_registry_path(None, {"KRONOS_REGISTRY_FILE": ""}, tmp_path / "empty") is None
    assert resolve_registry_path("rel.yaml", {}, cwd) == cwd / "rel.yaml"
    # The defaults: the real environment and working directory.
    monkeypatch.setenv("KRONOS_REGISTRY_FILE", str(from_env))
    monkeypatch.chdir(cwd)
    assert resolve_registry_path(None) == from_env
    monkeypatch.delenv("KRONOS_REGISTRY_FILE")
    assert resolve_registry_path(None) == in_cwd


def test_load_registry_follows_the_resolution_order(tmp_path):
    def user_file(folder: str, name: str) -> Path:
        text = USER_OVERLAY.replace("my-finetune", name)
        return write(tmp_path / folder, text)

    explicit, from_env, in_cwd = user_file("a", "from-explicit"), user_file("b", "from-env"), user_file("c", "from-cwd")
    env = {"KRONOS_REGISTRY_FILE": str(from_env)}
    assert "from-explicit" in load_registry(explicit, default_path=PACKAGED, env=env, cwd=in_cwd.parent).models
    assert "from-env" in load_registry(None, default_path=PACKAGED, env=env, cwd=in_cwd.parent).models
    assert "from-cwd" in load_registry(None, default_path=PACKAGED, env={}, cwd=in_cwd.parent).models
    packaged_only = load_registry(None, default_path=PACKAGED, env={}, cwd=tmp_path)
    assert packaged_only.paths == (str(PACKAGED),)


def test_repo_root_symlink_is_not_overlaid_on_itself():
    spec = load_registry(None, default_path=PACKAGED, env={}, cwd=REPO_ROOT)
    assert spec.paths == (str(PACKAGED),)
    assert spec.warnings == ()


# --- sources and parameter counts -----------------------------------------------------------

def test_relative_local_source_resolves_against_the_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "conf"
    path = write(folder, VALID.replace("hf://org/model@main", "../checkpoints/ft"))
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    spec = parse_registry(path, check_references=True)
    assert spec.get("m").source == LocalSource(tmp_path / "project" / "checkpoints" / "ft")


def test_local_source_forms(tmp_path):
    assert parse_source("/abs/model", base_dir=tmp_path) == LocalSource(Path("/abs/model"))
    assert parse_source("~/ckpt", base_dir=tmp_path) == LocalSource(Path.home() / "ckpt")
    assert parse_source("model", base_dir=tmp_path) == LocalSource(tmp_path / "model")


def test_hf_source_revision_defaults_to_main(tmp_path):
    assert parse_source("hf://org/repo", base_dir=tmp_path) == HfSource("org/repo", "main")
    pinned = parse_source("hf://org/repo@" + "a" * 40, base_dir=tmp_path)
    assert pinned.is_pinned and str(pinned) == "hf://org/repo@" + "a" * 40


def test_params_forms(tmp_path):
    text = with_keys("params: 24.7M")
    assert parse_registry(write(tmp_path, text)).get("m").params == ParamCount(24_700_000, "24.7M", False)
    text = with_keys("params: 500K")
    assert parse_registry(write(tmp_path, text)).get("m").params.value == 500_000


def test_param_count_matches():
    rounded = ParamCount(24_700_000, "24.7M", False)
    assert rounded.matches(24_741_376)
    assert not rounded.matches(24_641_376)
    assert not rounded.matches(4_108_032)
    exact = ParamCount(24_741_376, "24741376", True)
    assert exact.matches(24_741_376)
    assert not exact.matches(24_741_377)


def test_optional_fields_parse(tmp_path):
    text = with_keys(
        "display_name: My model", "description: no", "available: true",
        "files: [config.json, model.safetensors, pytorch_model.bin]", "allow_pickle: true",
        f"sha256: {{model.safetensors: {SHA.upper()}}}", "config: {beta: 1e-5, name: x, missing: null}",
    )
    entry = parse_registry(write(tmp_path, text)).get("m")
    assert entry.display_name == "My model"
    assert entry.description == "no"  # text as written, not YAML 1.1's boolean
    assert entry.files == ("config.json", "model.safetensors", "pytorch_model.bin")
    assert entry.allow_pickle is True
    assert entry.sha256 == {"model.safetensors": SHA}
    assert entry.config == {"beta": 1e-5, "name": "x", "missing": None}


# --- architecture ---------------------------------------------------------------------------

def test_registry_engine_never_imports_kronos_registry():
    offenders = []
    for module in sorted((REPO_ROOT / "registry").rglob("*.py")):
        tree = ast.parse(module.read_text(), filename=str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            offenders += [f"{module.name}:{node.lineno} {n}" for n in names
                          if n == "kronos_registry" or n.startswith("kronos_registry.")]
    assert offenders == []


@pytest.mark.parametrize("nesting", [
    "[" * 5000 + "]" * 5000,                 # flow lists
    "{a: " * 5000 + "1" + "}" * 5000,        # flow mappings
])
def test_runaway_nesting_is_a_registry_file_error_with_its_position(tmp_path, nesting):
    path = write(tmp_path, f"schema: 1\nmodels:\n  m:\n    source: {nesting}\n")
    [problem] = problems_of(path).problems
    assert problem.location.path == str(path) and problem.location.line == 4
    assert problem.location.column > 10
    assert "nested more than" in problem.message


def test_relative_source_resolves_through_a_symlinked_registry_file(tmp_path):
    real = write(tmp_path / "real", VALID.replace("hf://org/model@main", "./ckpt"))
    link = tmp_path / "elsewhere" / "models.yaml"
    link.parent.mkdir()
    link.symlink_to(real)
    spec = parse_registry(link, check_references=True)
    assert spec.get("m").source == LocalSource(tmp_path / "real" / "ckpt")
    assert spec.get("m").origin.path == str(link)  # problems still name the file the user gave


def test_package_source_resolves_beside_the_packaged_file_from_a_copy(tmp_path):
    copy = tmp_path / "project" / "models.yaml"
    copy.parent.mkdir()
    copy.write_text(PACKAGED.read_text())
    spec = load_registry(copy, default_path=PACKAGED, env={})
    assert spec.paths == (str(PACKAGED), str(copy))
    demo = spec.get("kronos-demo")
    assert demo.origin.path == str(copy)
    assert demo.source == LocalSource(PACKAGED.parent / "data" / "demo" / "model")


@pytest.mark.parametrize("text", ["package://", "package://../../etc", "package://data/../../x"])
def test_package_source_stays_inside_the_package(tmp_path, text):
    [problem] = problems_of(write(tmp_path, VALID.replace("hf://org/model@main", text))).problems
    assert "inside the package" in problem.message
