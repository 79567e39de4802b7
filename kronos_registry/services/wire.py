"""The wire: request and response shapes shared by the machine faces (HTTP and MCP), declared once.

Each forecast parameter is declared here once, with its type and description
(:data:`PredLen`, :data:`Samples`, ...), its bounds taken from ``services.limits.BOUNDS``.
The HTTP face builds its request model from them
(:class:`ForecastOptions`, :class:`ForecastRequest`); the MCP face annotates its tool's
arguments with the same types, so both document and bound a parameter the same way, and both
turn what they parsed into the one :class:`~kronos_registry.services.forecast.ForecastParams`.
The candles themselves stay raw mappings here: ``candles`` (not pydantic) judges them, so a
bad bar gets the same message from every face.

Responses: :class:`ForecastResponse` documents ``ForecastResult.to_json()``, the body both
faces return; the rest are the HTTP routes' bodies and the MCP listing.

Needs pydantic, which both optional extras (serve, mcp) bring: only those faces import this.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.fields import FieldInfo

from kronos_registry.candles.columns import PRICE_COLUMNS
from kronos_registry.services.forecast import DEFAULT_QUANTILES, ForecastParams
from kronos_registry.services.limits import BOUNDS

# --------------------------------------------------------------------------- candles

CANDLE_SCHEMA = {
    "type": "object",
    "description": "One bar, oldest first in the list.",
    "properties": {
        "timestamp": {"type": ["string", "number"], "example": "2024-01-02T09:30:00",
                      "description": "ISO-8601 date/time (e.g. '2024-05-02 09:35:00'), or Unix "
                                     "seconds/milliseconds. Also accepted as 'timestamps', 'date', "
                                     "'datetime' or 'time'."},
        **{column: {"type": "number"} for column in PRICE_COLUMNS},
        "volume": {"type": "number", "description": "Optional (0 when absent)."},
        "amount": {"type": "number", "description": "Optional traded value (volume * mean price when absent)."},
    },
    "required": ["timestamp", *PRICE_COLUMNS],
}
# One candle: kept as the raw mapping so that the candles package (not pydantic) judges it.
Candle = Annotated[dict[str, Any], WithJsonSchema(CANDLE_SCHEMA)]
Candles = Annotated[list[Candle], WithJsonSchema({"type": "array", "minItems": 2, "items": CANDLE_SCHEMA})]
CANDLES_DESCRIPTION = ("The history, oldest first: objects with timestamp, open, high, low, close "
                       "and optionally volume and amount.")
CSV_DESCRIPTION = ("The history as CSV text: a header row with a timestamp column "
                   "(timestamps/timestamp/date/datetime/time), open, high, low, close, optionally "
                   "volume and amount; one bar per row, oldest first.")

# --------------------------------------------------------------------------- forecast parameters


def _bounded(name: str, description: str) -> FieldInfo:
    """A pydantic Field with parameter ``name``'s range (``services.limits.BOUNDS``)."""
    return Field(**BOUNDS[name].pydantic(), description=description)


ModelName = Annotated[str, Field(description="A model name of the registry (list_models, GET /v1/models), "
                                             "e.g. 'kronos-small'.", examples=["kronos-small"])]
PredLen = Annotated[int, _bounded("pred_len", "Number of future bars to forecast (at most a server's "
                                              "--max-pred-len).")]
Samples = Annotated[int, _bounded("samples", "Sampled paths: the forecast is their mean; above 1, "
                                             "quantiles are returned too.")]
Seed = Annotated[int | None, _bounded("seed", "Random seed: the same seed gives the same forecast "
                                              "[default: a random one, returned].")]
Temperature = Annotated[float, _bounded("temperature", "Sampling temperature: lower is more conservative.")]
TopP = Annotated[float, _bounded("top_p", "Nucleus sampling: keep the smallest set of tokens with this "
                                          "much probability.")]
TopK = Annotated[int, _bounded("top_k", "Keep only the K likeliest tokens (0: no limit).")]
Lookback = Annotated[int | None, _bounded("lookback", "Bars of history the model sees [default: what fits "
                                                      "its context with the forecast].")]
Probability = Annotated[float, Field(**BOUNDS["quantile"].pydantic())]
Quantiles = Annotated[list[Probability], Field(description="With samples > 1: quantiles of the sampled paths "
                                                           "to return, each strictly between 0 and 1.")]
FutureTimestamps = Annotated[list[str | int | float] | None, Field(
    description="The forecast bars' timestamps, pred_len of them, after the last bar [default: continue the "
                "history's interval or trading session].")]

DEFAULTS = ForecastParams(pred_len=1)


def forecast_params(*, pred_len: int, samples: int = DEFAULTS.samples, seed: int | None = None,
                    temperature: float = DEFAULTS.temperature, top_p: float = DEFAULTS.top_p,
                    top_k: int = DEFAULTS.top_k, lookback: int | None = None,
                    quantiles: list[float] | None = None, future_timestamps: list | None = None) -> ForecastParams:
    """What a face parsed -> the one parameter type (``None`` quantiles: the default ones)."""
    return ForecastParams(
        pred_len=pred_len, samples=samples, seed=seed, temperature=temperature, top_p=top_p, top_k=top_k,
        lookback=lookback, quantiles=tuple(DEFAULT_QUANTILES if quantiles is None else quantiles),
        future_timestamps=tuple(future_timestamps) if future_timestamps is not None else None)


class ForecastOptions(BaseModel):
    """Everything of a forecast request but its candles (a CSV body's query parameters)."""

    # A misspelt parameter ("pred_length") is an error naming it, never silently ignored.
    model_config = ConfigDict(extra="forbid")

    model: ModelName
    pred_len: PredLen
    samples: Samples = DEFAULTS.samples
    seed: Seed = None
    temperature: Temperature = DEFAULTS.temperature
    top_p: TopP = DEFAULTS.top_p
    top_k: TopK = DEFAULTS.top_k
    lookback: Lookback = None
    quantiles: Quantiles = list(DEFAULT_QUANTILES)
    future_timestamps: FutureTimestamps = None

    def params(self) -> ForecastParams:
        return forecast_params(**self.model_dump(exclude={"model"}))


class ForecastRequest(ForecastOptions):
    """The JSON body of POST /v1/forecast."""

    candles: Candles = Field(description=CANDLES_DESCRIPTION)


FORECAST_FIELDS = tuple(ForecastRequest.model_fields)

# --------------------------------------------------------------------------- responses


class Timing(BaseModel):
    queue_ms: float = Field(description="Time waiting for the model's batch.")
    load_ms: float = Field(description="Time loading the model (0 when it was already loaded).")
    forecast_ms: float = Field(description="Time generating the forecast.")


class ForecastResponse(BaseModel):
    """The forecast (``ForecastResult.to_json()``): the HTTP response body and MCP's structured result."""

    model: str = Field(description="The model that forecast.")
    artifact: str | None = Field(description="The stored checkpoint it ran (artifact id).")
    timestamps: list[str] = Field(description="The forecast bars' timestamps, ISO-8601.")
    forecast: dict[str, list[float]] = Field(
        description="One list per column (open, high, low, close, volume, amount), aligned with timestamps; "
                    "the mean over the sampled paths when samples > 1.")
    quantiles: dict[str, dict[str, list[float]]] | None = Field(
        default=None, description="Only when samples > 1: for each quantile ('0.1', '0.5', ...), one list per "
                                  "column across the sampled paths.")
    seed: int = Field(description="The random seed used: pass it again to get the same forecast.")
    timing: Timing


class ModelSummary(BaseModel):
    """One model of the registry, as an agent chooses among them."""

    name: str = Field(description="The name to pass as `model`.")
    description: str | None
    params: int | None = Field(description="Parameter count (declared).")
    context_length: int | None = Field(description="Longest history plus forecast the model sees at once, in bars.")
    tokenizer: str | None
    available: bool = Field(description="False for a published-but-unreleased model (see reason).")
    reason: str | None = Field(description="Why it is unavailable.")
    synced: bool = Field(description="Stored locally: forecasts work offline.")
    loaded: bool = Field(description="In memory now: the next forecast starts at once.")
    bundle: str | None = Field(None, description="The bundle file it was imported from (null: defined in a registry file).")
    replaces: str | None = Field(
        None, description="Set when this name now means another checkpoint than the registry file named here "
                          "defines (an `import --replace` or the user's models.yaml): check before trusting it.")
    fine_tuned_from: str | None = Field(None, description="The base model it was fine-tuned from (its lineage).")
    unverified: list[str] = Field(
        default_factory=list, description="Stored files checked against no trusted record (no sha256 pin, no hash "
                                          "recorded by the hub): the name may not hold the published weights.")

    @classmethod
    def from_info(cls, info: dict) -> ModelSummary:
        """From a catalog entry info (``entry_info`` plus ``loaded``)."""
        flags = ("available", "synced", "loaded")
        given = {name: info.get(name) for name in cls.model_fields if name not in flags}
        given["unverified"] = list(info.get("unverified") or ())
        return cls(**given, **{name: bool(info.get(name)) for name in flags})


class ModelList(BaseModel):
    models: list[ModelSummary]


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


# --------------------------------------------------------------------------- stored evaluations


class EvalSkill(BaseModel):
    """A model against the best baseline on one loss (``services/evaluation/skill.py``)."""

    model: str
    loss: str = Field(description="mase, or crps (CRPS over the naive scale).")
    against: str = Field(description="The best baseline on these windows.")
    model_loss: float | None
    baseline_loss: float | None
    difference: float | None = Field(description="model - baseline, mean over origins; negative: the model is better.")
    low: float | None = Field(description="95% block-bootstrap interval of the difference, lower end.")
    high: float | None
    origins: int
    block: int
    verdict: str = Field(description="better, worse, no detectable difference, or too few origins.")


class EvalDataInfo(BaseModel):
    path: str | None
    sha256: str | None = Field(description="sha256 of the data file's bytes.")
    rows: int | None
    series: int | None
    by: str | None
    first: str | None
    last: str | None


class EvalSummary(BaseModel):
    """One stored `kronos-registry eval` run of a model, compactly."""

    run_id: str
    created: str | None
    artifact: str | None = Field(description="The stored checkpoint it scored.")
    current: bool = Field(description="It scored the artifact stored now (not an earlier one).")
    data: EvalDataInfo
    horizon: int | None
    windows: int | None
    origins: int | None
    seed: int | None
    samples: int | None
    metrics: dict[str, float | None] = Field(description="The model's overall close metrics (mae, mase, ...).")
    baselines: dict[str, dict[str, float | None]] = Field(description="Each baseline's, on the same windows.")
    skill: list[EvalSkill]
    overlapping_windows: int = Field(description="Windows inside its training span (scored with --allow-overlap).")
    lineage_checked: bool = Field(description="False: the entry records no lineage, overlap was not checked.")


class EvalRuns(BaseModel):
    """GET /v1/models/{name}/evals: the latest run per data set, and every run, oldest first."""

    name: str
    artifact: str | None
    latest: list[EvalSummary]
    runs: list[EvalSummary]
