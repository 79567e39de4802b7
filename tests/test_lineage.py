"""The lineage record fine-tuning writes and evaluation reads (kronos_registry/services/lineage.py)."""

from __future__ import annotations

import hashlib

import pytest

from kronos_registry.services.lineage import (
    DataFingerprint,
    Lineage,
    LineageError,
    SeriesSpan,
    file_sha256,
    overlapping_spans,
    same_data,
)

SHA = "a" * 64


def lineage(**changes) -> Lineage:
    values = dict(
        base="kronos-small", base_artifact="hf--NeoQuasar--Kronos-small--901c26c1", tokenizer="kronos-tokenizer-base",
        tokenizer_trained=False,
        data=DataFingerprint(SHA, "daily.csv", rows=300, series=2, by="symbol", first="2020-01-01T00:00:00",
                             last="2020-12-31T00:00:00"),
        splits={"train": (SeriesSpan("AAA", 100, "2020-01-01T00:00:00", "2020-08-31T00:00:00"),),
                "validation": (SeriesSpan("AAA", 30, "2020-09-01T00:00:00", "2020-10-31T00:00:00"),),
                "test": (SeriesSpan("AAA", 20, "2020-11-01T00:00:00", "2020-12-31T00:00:00"),)},
        hyperparameters={"lr": 1e-5, "epochs": 3}, best_validation_loss=2.5,
        weights_sha256={"model": "b" * 64}, created="2026-12-07T02:00:00+00:00", tool_version="0.1.0")
    values.update(changes)
    return Lineage(**values)


def test_a_lineage_round_trips_through_its_mapping():
    record = lineage()
    assert Lineage.from_mapping(record.to_dict()) == record


def test_a_missing_or_malformed_field_is_named():
    data = lineage().to_dict()
    del data["weights_sha256"]
    with pytest.raises(LineageError, match=r"lineage\.weights_sha256: missing weights_sha256"):
        Lineage.from_mapping(data)
    data = lineage().to_dict()
    data["data"]["sha256"] = "not-a-hash"
    with pytest.raises(LineageError) as info:
        Lineage.from_mapping(data)
    assert info.value.field == "lineage.data.sha256"
    data = lineage().to_dict()
    data["splits"]["train"][0]["last"] = "yesterday"
    with pytest.raises(LineageError, match=r"splits\.train\[0\]\.last"):
        Lineage.from_mapping(data)


def test_overlap_is_the_same_series_with_a_shared_instant_ends_included():
    record = lineage()
    inside = SeriesSpan("AAA", 5, "2020-10-31T00:00:00", "2020-11-05T00:00:00")   # starts on the last validation bar
    test_tail = SeriesSpan("AAA", 5, "2020-11-01T00:00:00", "2020-11-05T00:00:00")
    other_series = SeriesSpan("BBB", 5, "2020-01-01T00:00:00", "2020-02-01T00:00:00")
    found = overlapping_spans(record, [inside, test_tail, other_series])
    assert [(o.key, o.evaluated) for o in found] == [("AAA", inside)]
    assert "trained on 2020-09-01T00:00:00 .. 2020-10-31T00:00:00" in found[0].describe()


def test_spans_with_an_offset_compare_in_utc():
    record = lineage()
    # 2020-10-30 23:00 UTC: inside validation, though its wall-clock time is past the last validation bar
    late = SeriesSpan("AAA", 1, "2020-10-31T01:00:00+02:00", "2020-10-31T01:00:00+02:00")
    assert len(overlapping_spans(record, [late])) == 1


def test_the_data_fingerprint_is_the_files_sha256(tmp_path):
    path = tmp_path / "candles.csv"
    path.write_bytes(b"timestamps,open\n2020-01-01,1\n")
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert same_data(lineage(), SHA) and not same_data(lineage(), "c" * 64)


def test_the_engine_carries_an_entrys_lineage_mapping_and_refuses_another_value(tmp_path):
    import yaml

    from registry.errors import RegistryFileError
    from registry.spec import parse_registry

    record = lineage()
    text = yaml.safe_dump({"schema": 1, "tokenizers": {"t": {"source": "./tok"}},
                           "models": {"m": {"source": "./mod", "tokenizer": "t", "context_length": 32,
                                            "lineage": record.to_dict()}}})
    path = tmp_path / "models.yaml"
    path.write_text(text)
    assert Lineage.from_mapping(parse_registry(path).get("m").lineage) == record
    path.write_text("schema: 1\ntokenizers:\n  t:\n    source: ./tok\nmodels:\n  m:\n    source: ./mod\n"
                    "    tokenizer: t\n    context_length: 32\n    lineage: 3\n")
    with pytest.raises(RegistryFileError) as info:
        parse_registry(path)
    assert "'models.m.lineage': must be a mapping" in str(info.value)
