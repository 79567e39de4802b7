"""One range per forecast parameter (services/limits.BOUNDS), honoured by every face's parser."""

from __future__ import annotations

import click
import pytest

from kronos_registry.cli.params import bounded
from kronos_registry.services.forecast import ForecastParams
from registry.errors import InputDataError

# (field, a value just outside its range, a value just inside, the click option's kind)
EDGES = [
    ("pred_len", 0, 1, int), ("samples", 0, 1, int), ("top_k", -1, 0, int), ("lookback", 0, 1, int),
    ("seed", -1, 0, int), ("temperature", 0.0009, 1e-3, float), ("top_p", 0.0, 1.0, float),
]


@pytest.mark.parametrize("field, outside, inside, kind", EDGES)
def test_forecast_params_check_the_bound(field, outside, inside, kind):
    ForecastParams(**{"pred_len": 1, field: inside}).check()
    with pytest.raises(InputDataError) as info:
        ForecastParams(**{"pred_len": 1, field: outside}).check()
    assert info.value.field == field


@pytest.mark.parametrize("field, outside, inside, kind", EDGES)
def test_the_cli_option_type_has_the_same_bound(field, outside, inside, kind):
    option = bounded(field, kind)
    assert option.convert(inside, None, None) == inside
    with pytest.raises(click.BadParameter):
        option.convert(outside, None, None)


@pytest.mark.parametrize("field, outside, inside, kind", EDGES)
def test_the_wire_schema_has_the_same_bound(field, outside, inside, kind):
    pydantic = pytest.importorskip("pydantic", reason="pydantic comes with the serve and mcp extras")
    from kronos_registry.services.wire import ForecastOptions

    ForecastOptions(**{"model": "m", "pred_len": 1, field: inside})
    with pytest.raises(pydantic.ValidationError):
        ForecastOptions(**{"model": "m", "pred_len": 1, field: outside})


def test_a_top_p_above_one_and_a_quantile_at_an_end_are_out():
    with pytest.raises(InputDataError):
        ForecastParams(pred_len=1, top_p=1.01).check()
    with pytest.raises(InputDataError):
        ForecastParams(pred_len=1, quantiles=(0.0, 0.5)).check()


def test_quantiles_are_at_most_99_and_distinct_for_every_face():
    from kronos_registry.services.many import parse_quantiles

    ForecastParams(pred_len=1, quantiles=tuple(i / 100 for i in range(1, 100))).check()  # every percentile
    for quantiles, words in [(tuple(i / 1000 for i in range(1, 101)), "over the limit of 99"),
                             ((0.5, 0.5), "distinct")]:
        with pytest.raises(InputDataError) as info:
            ForecastParams(pred_len=1, quantiles=quantiles).check()
        assert info.value.field == "quantiles" and words in info.value.message
    with pytest.raises(ValueError, match="over the limit of 99"):  # the CLI's --quantiles
        parse_quantiles(",".join(str(i / 1000) for i in range(1, 101)))
