"""The request and response bodies of the HTTP API, declared once (pydantic).

``ForecastRequest`` parses a JSON body and, without ``candles``, the query of a CSV body;
the candles themselves are checked by ``candles.candles_from_records`` /
``read_candles_text``, so a bad bar gets the same message as from the CLI. The response
models document what ``ForecastResult.to_json()`` and the other routes return (/docs).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from kronos_registry.candles.columns import COLUMNS, PRICE_COLUMNS
from kronos_registry.services.forecast import ForecastParams

# One candle: kept as the raw mapping so that the candles package (not pydantic) judges it, and
# documented with the columns it reads.
CANDLE_SCHEMA = {
    "type": "object",
    "description": "One bar. The time is 'timestamp' (or 'timestamps', 'date', 'datetime', 'time'): "
                   "ISO-8601 text or Unix epoch seconds/milliseconds. volume and amount are optional.",
    "properties": {
        "timestamp": {"anyOf": [{"type": "string"}, {"type": "number"}], "example": "2024-01-02T09:30:00"},
        **{column: {"type": "number"} for column in COLUMNS},
    },
    "required": list(PRICE_COLUMNS),
}
Candle = Annotated[dict[str, Any], WithJsonSchema(CANDLE_SCHEMA)]
Probability = Annotated[float, Field(gt=0, lt=1)]


class ForecastOptions(BaseModel):
    """Everything of a forecast request but its candles (a CSV body's query parameters)."""

    # A misspelt parameter ("pred_length") is an error naming it, never silently ignored.
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Registry entry of the model, e.g. kronos-small.", examples=["kronos-small"])
    pred_len: int = Field(ge=1, description="Bars to forecast (at most the server's --max-pred-len).")
    samples: int = Field(1, ge=1, description="Sampled paths, averaged; quantiles are returned when > 1.")
    seed: int | None = Field(None, ge=0, description="Same seed, same forecast; absent: a random one, returned.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling probability.")
    top_k: int = Field(0, ge=0, description="Keep only the K likeliest tokens (0: no limit).")
    lookback: int | None = Field(None, ge=1, description="Bars of history the model sees [default: what fits "
                                 "the context with the forecast].")
    quantiles: list[Probability] = Field([0.1, 0.5, 0.9], description="Quantiles over the sampled paths "
                                         "(when samples > 1).")
    future_timestamps: list[str | int | float] | None = Field(
        None, description="The forecast's timestamps (pred_len of them, after the last candle) [default: continue "
        "the candles' interval or daily session].")

    def params(self) -> ForecastParams:
        return ForecastParams(
            pred_len=self.pred_len, samples=self.samples, seed=self.seed, temperature=self.temperature,
            top_p=self.top_p, top_k=self.top_k, lookback=self.lookback, quantiles=tuple(self.quantiles),
            future_timestamps=tuple(self.future_timestamps) if self.future_timestamps is not None else None)


class ForecastRequest(ForecastOptions):
    """The JSON body of POST /v1/forecast."""

    candles: list[Candle] = Field(description="The history, oldest first.")


class Timing(BaseModel):
    queue_ms: float
    load_ms: float
    forecast_ms: float


class ForecastResponse(BaseModel):
    model: str
    artifact: str | None = Field(description="The stored artifact the model was loaded from.")
    timestamps: list[str] = Field(description="The forecast's timestamps, ISO-8601.")
    forecast: dict[str, list[float]] = Field(description="open, high, low, close, volume, amount: the mean path.")
    quantiles: dict[str, dict[str, list[float]]] | None = Field(
        None, description='Only when samples > 1: {"0.1": {"close": [...], ...}, ...}.')
    seed: int
    timing: Timing


class LoadedModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    artifact: str | None = None
    device: str
    bytes: int
    loaded_at: str
    last_used: str
    expires_at: str | None = Field(None, description="When keep-alive unloads it (null: never).")


class LoadedModels(BaseModel):
    models: list[LoadedModelInfo]


class Unloaded(BaseModel):
    name: str
    unloaded: bool = Field(description="false when it was not loaded.")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, loading or failed")
    preload: dict[str, str] = Field(description="Each --preload model: pending, loaded, or its error.")


class Problem(BaseModel):
    """application/problem+json (RFC 9457), with the field at fault and a hint."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    hint: str | None = None


FORECAST_FIELDS = tuple(ForecastRequest.model_fields)
