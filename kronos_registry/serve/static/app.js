// The page of `kronos-registry serve`: pick a model, load candles, forecast, chart, download.
// Plain JavaScript, no build step, nothing fetched from outside the server (offline-safe).
// Every URL is relative to the page's <base>, which the server sets to its --root-path.
// The CSV is parsed here only to draw the history; the server gets the file as text/csv, so
// its validation and messages (the CLI's) are the ones the user sees.
"use strict";

(function () {
  const LWC = window.LightweightCharts;
  const TOKEN_KEY = "kronos-registry.token";
  const TIMESTAMP_COLUMNS = ["timestamps", "timestamp", "date", "datetime", "time"];
  const PRICE_COLUMNS = ["open", "high", "low", "close"];
  const FORECAST_COLUMNS = ["open", "high", "low", "close", "volume", "amount"];
  const COLORS = {
    up: "#26a69a", down: "#ef5350",
    forecastUp: "#1e6fd9", forecastDown: "#f08c00",
    median: "#7048e8", band: "rgba(112, 72, 232, 0.16)", bandEdge: "rgba(112, 72, 232, 0.55)",
    region: "rgba(30, 111, 217, 0.06)",
  };

  // Everything the page knows, exposed for tests and for curious users in the console.
  const state = {
    status: "starting",     // starting | ready | running | done | error
    models: [],
    csv: null,              // {name, text, history: [{time, open, high, low, close}], note}
    forecast: null,         // the last /v1/forecast response body
    error: null,            // the last problem shown: {status, title, detail, hint, field}
    seriesCount: 0,         // series currently on the chart
    forecastRuns: 0,
  };
  window.kronosPage = state;

  const $ = (id) => document.getElementById(id);
  const el = {
    token: $("token"), tokenBox: $("token-box"), model: $("model"), details: $("model-details"),
    refresh: $("refresh-models"), file: $("csv-file"), sample: $("use-sample"), dataStatus: $("data-status"),
    predLen: $("pred-len"), samples: $("samples"), seed: $("seed"), form: $("controls"), run: $("run"),
    error: $("error"), chart: $("chart"), legend: $("legend"), summary: $("summary"), download: $("download"),
    results: $("results"),
  };

  // ---------------------------------------------------------------- HTTP

  class Problem extends Error {
    constructor(body) {
      super(body.detail || body.title || "request failed");
      Object.assign(this, body);
    }
  }

  function authHeaders() {
    const token = el.token.value.trim();
    return token ? { Authorization: "Bearer " + token } : {};
  }

  // fetch that turns every failure into a Problem (RFC 9457 shape) the page can show.
  async function request(url, options = {}) {
    let response;
    try {
      response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
    } catch (error) {
      throw new Problem({ title: "Server unreachable", detail: String(error.message || error),
                          hint: "Is `kronos-registry serve` still running at " + location.host + "?" });
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (!response.ok) {
      const problem = body && typeof body === "object" && !Array.isArray(body) ? body : {};
      throw new Problem({
        status: problem.status || response.status,
        title: problem.title || response.statusText || "Request failed",
        detail: problem.detail || (body ? "" : text.slice(0, 300)),
        hint: pageHint(response.status) || problem.hint,
        field: problem.field, type: problem.type,
      });
    }
    return body;
  }

  // What to do in this page, where the server's hint speaks of HTTP headers.
  function pageHint(status) {
    if (status === 401) return "Enter the server's token under \"Access token\" at the top of the page.";
    return undefined;
  }

  // ---------------------------------------------------------------- errors

  function showError(problem) {
    state.error = { status: problem.status, title: problem.title, detail: problem.detail,
                    hint: problem.hint, field: problem.field };
    el.error.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = (problem.status ? problem.status + " " : "") + (problem.title || "Error");
    el.error.append(title);
    addLine(el.error, "", problem.detail || problem.message);
    if (problem.field) addLine(el.error, "Field: ", problem.field);
    if (problem.hint) addLine(el.error, "Hint: ", problem.hint);
    el.error.hidden = false;
    if (problem.status === 401) el.tokenBox.open = true;
    if (window.matchMedia("(max-width: 760px)").matches) el.error.scrollIntoView({ block: "start" });
  }

  function addLine(parent, label, text) {
    if (!text) return;
    const p = document.createElement("p");
    if (label) {
      const b = document.createElement("span");
      b.className = "label";
      b.textContent = label;
      p.append(b);
    }
    p.append(document.createTextNode(text));
    parent.append(p);
  }

  function clearError() {
    state.error = null;
    el.error.hidden = true;
    el.error.replaceChildren();
  }

  // ---------------------------------------------------------------- models

  async function loadModels() {
    const entries = await request("v1/models");
    state.models = (entries || []).filter((entry) => (entry.kind || "model") === "model");
    const previous = el.model.value;
    el.model.replaceChildren(...state.models.map(modelOption));
    el.model.value = preferredModel(previous);
    showModelDetails();
  }

  function modelOption(entry) {
    const option = document.createElement("option");
    option.value = entry.name;
    const marks = [entry.loaded ? "loaded" : entry.synced ? "synced" : null,
                   entry.available === false ? "unavailable" : null].filter(Boolean);
    option.textContent = (entry.display_name || entry.name) + (marks.length ? " (" + marks.join(", ") + ")" : "");
    option.disabled = entry.available === false;
    return option;
  }

  // Keep the user's choice; else a model that answers without a download: loaded, then synced.
  function preferredModel(previous) {
    const usable = state.models.filter((entry) => entry.available !== false);
    const pick = usable.find((entry) => entry.name === previous)
      || usable.find((entry) => entry.loaded)
      || usable.find((entry) => entry.synced)
      || usable[0];
    return pick ? pick.name : "";
  }

  function selectedModel() {
    return state.models.find((entry) => entry.name === el.model.value) || null;
  }

  function showModelDetails() {
    const entry = selectedModel();
    el.details.replaceChildren();
    if (!entry) {
      addDetail("Models", "none available in this registry");
      return;
    }
    if (entry.description) addDetail("About", entry.description);
    addDetail("Params", formatParams(entry.params, entry.params_text));
    addDetail("Context", entry.context_length ? entry.context_length + " bars" : "unknown");
    if (entry.tokenizer) addDetail("Tokenizer", entry.tokenizer);
    addDetail("Synced", entry.synced ? "yes" + (entry.size ? " (" + formatBytes(entry.size) + ")" : "")
                                     : "no (the server syncs it on first use when online)");
    addDetail("Loaded", entry.loaded ? "yes" : "no");
    if (entry.available === false) addDetail("Unavailable", entry.reason || "marked unavailable");
  }

  function addDetail(term, value) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    el.details.append(dt, dd);
  }

  function formatParams(params, text) {
    if (typeof params !== "number") return text || "unknown";
    if (params >= 1e9) return (params / 1e9).toFixed(1) + "B";
    if (params >= 1e6) return (params / 1e6).toFixed(1) + "M";
    if (params >= 1e3) return (params / 1e3).toFixed(1) + "k";
    return String(params);
  }

  function formatBytes(bytes) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return value.toFixed(unit ? 1 : 0) + " " + units[unit];
  }

  // ---------------------------------------------------------------- CSV (history only)

  // A small CSV reader: enough to draw the history. Quoted fields may hold commas.
  function splitCsvLine(line) {
    const cells = [];
    let cell = "", quoted = false;
    for (let i = 0; i < line.length; i += 1) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { cell += '"'; i += 1; }
        else if (ch === '"') quoted = false;
        else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { cells.push(cell.trim()); cell = ""; }
      else cell += ch;
    }
    cells.push(cell.trim());
    return cells;
  }

  // Seconds since the epoch (UTC) for a timestamp cell; naive times are drawn as UTC.
  function parseTime(text) {
    const value = String(text).trim();
    if (/^-?\d+(\.\d+)?$/.test(value)) {
      const number = Number(value);  // Unix epoch: guess the unit from its size, as the server does
      const abs = Math.abs(number);
      return abs >= 1e17 ? number / 1e9 : abs >= 1e14 ? number / 1e6 : abs >= 1e11 ? number / 1e3 : number;
    }
    let iso = value.replace(" ", "T");
    if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) iso += "T00:00:00";
    if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(iso)) iso += "Z";
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? null : ms / 1000;
  }

  // Returns {history, note}: the bars to draw, or why none can be drawn (the server will say more).
  function parseHistory(text) {
    const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
    if (lines.length < 2) return { history: [], note: "no data rows" };
    const header = splitCsvLine(lines[0]).map((name) => name.toLowerCase());
    const timeIndex = header.findIndex((name) => TIMESTAMP_COLUMNS.includes(name));
    const priceIndex = PRICE_COLUMNS.map((name) => header.indexOf(name));
    if (timeIndex < 0 || priceIndex.some((index) => index < 0)) {
      return { history: [], note: "missing a timestamp or price column" };
    }
    const history = [];
    for (let row = 1; row < lines.length; row += 1) {
      const cells = splitCsvLine(lines[row]);
      const time = parseTime(cells[timeIndex]);
      const prices = priceIndex.map((index) => Number(cells[index]));
      if (time === null || prices.some((price) => !Number.isFinite(price)) || cells[priceIndex[0]] === "") {
        return { history: [], note: "row " + (row + 1) + " is not a candle" };
      }
      history.push({ time, open: prices[0], high: prices[1], low: prices[2], close: prices[3] });
    }
    for (let i = 1; i < history.length; i += 1) {
      if (history[i].time <= history[i - 1].time) return { history: [], note: "timestamps are not increasing" };
    }
    return { history, note: null };
  }

  function useCsv(name, text) {
    const { history, note } = parseHistory(text);
    state.csv = { name, text, history, note };
    state.forecast = null;
    el.download.disabled = true;
    el.summary.replaceChildren();
    clearError();
    if (history.length) {
      el.dataStatus.textContent = name + ": " + history.length + " candles, " + stamp(history[0].time)
        + " to " + stamp(history[history.length - 1].time) + " (UTC).";
    } else {
      el.dataStatus.textContent = name + ": cannot draw it (" + note + "); the server checks it when you run.";
    }
    drawChart();
  }

  async function useSample() {
    const response = await fetch("sample.csv");
    if (!response.ok) throw new Problem({ status: response.status, title: "Sample unavailable",
                                         detail: "GET sample.csv answered " + response.status });
    useCsv("sample_candles.csv", await response.text());
  }

  function readFile(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(new Problem({ title: "Cannot read the file", detail: file.name + ": "
                                                  + (reader.error ? reader.error.message : "read failed") }));
      reader.readAsText(file);
    });
  }

  function stamp(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ");
  }

  // ---------------------------------------------------------------- forecast

  function forecastUrl() {
    const params = new URLSearchParams({ model: el.model.value, pred_len: el.predLen.value.trim(),
                                         samples: el.samples.value.trim() });
    if (el.seed.value.trim() !== "") params.set("seed", el.seed.value.trim());
    return "v1/forecast?" + params.toString();
  }

  async function runForecast() {
    if (!state.csv) throw new Problem({ title: "No candles", detail: "Choose a CSV file or use the sample first." });
    if (!el.model.value) throw new Problem({ title: "No model", detail: "This registry lists no usable model." });
    state.status = "running";
    setBusy(true);
    const previousSummary = [...el.summary.childNodes];  // the last good forecast stays on show
    el.summary.replaceChildren(runningNote(selectedModel()));
    try {
      const body = await request(forecastUrl(), {
        method: "POST", headers: { "Content-Type": "text/csv" }, body: state.csv.text,
      });
      state.forecast = body;
      state.forecastRuns += 1;
      drawChart();
      showSummary(body);
      el.download.disabled = false;
      state.status = "done";
      // On a phone the chart sits below the form: bring it into view.
      if (window.matchMedia("(max-width: 760px)").matches) el.results.scrollIntoView({ block: "start" });
    } catch (error) {
      el.summary.replaceChildren(...previousSummary);
      throw error;
    } finally {
      setBusy(false);
    }
    loadModels().catch(() => {});  // "loaded" changed; a failure here must not hide the forecast
  }

  // A first forecast may load the model, or download it when not synced: say so while waiting.
  function runningNote(entry) {
    const note = document.createElement("p");
    note.className = "help";
    const name = entry ? entry.name : el.model.value;
    let first = "";
    if (entry && !entry.loaded) first = entry.synced ? " (loading the model first)" : " (syncing and loading it first)";
    note.textContent = "Forecasting " + el.predLen.value + " bars with " + name + first + "\u2026";
    return note;
  }

  function setBusy(busy) {
    el.run.disabled = busy;
    el.run.textContent = busy ? "Running\u2026" : "Run forecast";
    el.results.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function quantileKeys(body) {
    return Object.keys(body.quantiles || {}).sort((a, b) => Number(a) - Number(b));
  }

  function showSummary(body) {
    const closes = body.forecast.close;
    const history = state.csv && state.csv.history;
    const lastClose = history && history.length ? history[history.length - 1].close : null;
    const endClose = closes[closes.length - 1];
    const parts = [["Model", body.model]];
    if (body.artifact) parts.push(["Artifact", String(body.artifact)]);
    parts.push(["Bars", String(closes.length) + " from " + body.timestamps[0]]);
    if (lastClose !== null) {
      const change = ((endClose - lastClose) / lastClose) * 100;
      parts.push(["Close", lastClose.toFixed(4) + " \u2192 " + endClose.toFixed(4)
                          + " (" + (change >= 0 ? "+" : "") + change.toFixed(2) + "%)"]);
    } else {
      parts.push(["Final close", endClose.toFixed(4)]);
    }
    const keys = quantileKeys(body);
    if (keys.length >= 2) {
      const low = body.quantiles[keys[0]].close, high = body.quantiles[keys[keys.length - 1]].close;
      parts.push(["Band at the end", "q" + keys[0] + " " + low[low.length - 1].toFixed(4) + " .. q"
                  + keys[keys.length - 1] + " " + high[high.length - 1].toFixed(4)]);
    }
    parts.push(["Seed", String(body.seed)]);
    if (body.timing) {
      parts.push(["Time", ["queue_ms", "load_ms", "forecast_ms"]
        .map((key) => key.replace("_ms", "") + " " + Math.round(body.timing[key] || 0) + " ms").join(", ")]);
    }
    const list = document.createElement("dl");
    for (const [term, value] of parts) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    el.summary.replaceChildren(list);
  }

  // The forecast as CSV: the CLI's columns, then {col}_q{q} per quantile (as `predict --by` writes).
  function forecastCsv(body) {
    const keys = quantileKeys(body);
    const header = ["timestamps", ...FORECAST_COLUMNS];
    for (const key of keys) {
      for (const col of FORECAST_COLUMNS) if (body.quantiles[key][col]) header.push(col + "_q" + key);
    }
    const rows = body.timestamps.map((timestamp, i) => {
      const row = [timestamp, ...FORECAST_COLUMNS.map((col) => body.forecast[col][i])];
      for (const key of keys) {
        for (const col of FORECAST_COLUMNS) if (body.quantiles[key][col]) row.push(body.quantiles[key][col][i]);
      }
      return row.join(",");
    });
    return [header.join(","), ...rows].join("\n") + "\n";
  }

  function downloadForecast() {
    const body = state.forecast;
    if (!body) return;
    const blob = new Blob([forecastCsv(body)], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "forecast-" + body.model + "-" + body.timestamps.length + ".csv";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // ---------------------------------------------------------------- chart

  // Fills the area between two quantile lines: lightweight-charts has no band series, so this is a
  // series primitive drawing one polygon under the series (coordinates come from the chart).
  class QuantileBand {
    constructor(points, color) {
      this.points = points;   // [{time, low, high}]
      this.color = color;
      this.view = new QuantileBandView(this);
      this.views = [this.view];
    }
    attached({ chart, series }) { this.chart = chart; this.series = series; }
    detached() { this.chart = null; this.series = null; }
    updateAllViews() { this.view.update(); }
    paneViews() { return this.views; }
  }

  class QuantileBandView {
    constructor(band) { this.band = band; this.coords = []; }
    update() {
      const { chart, series, points } = this.band;
      if (!chart || !series) { this.coords = []; return; }
      const timeScale = chart.timeScale();
      this.coords = points.map((p) => ({ x: timeScale.timeToCoordinate(p.time), low: series.priceToCoordinate(p.low),
                                         high: series.priceToCoordinate(p.high) }))
        .filter((c) => c.x !== null && c.low !== null && c.high !== null);
    }
    zOrder() { return "bottom"; }
    renderer() {
      const coords = this.coords, color = this.band.color;
      return {
        draw(target) {
          if (coords.length < 2) return;
          target.useMediaCoordinateSpace(({ context }) => {
            context.beginPath();
            coords.forEach((c, i) => (i ? context.lineTo(c.x, c.high) : context.moveTo(c.x, c.high)));
            for (let i = coords.length - 1; i >= 0; i -= 1) context.lineTo(coords[i].x, coords[i].low);
            context.closePath();
            context.fillStyle = color;
            context.fill();
          });
        },
      };
    }
  }

  // Shades the forecast's side of the chart so the eye finds where history ends.
  class ForecastRegion {
    constructor(startTime, color) {
      this.startTime = startTime;
      this.color = color;
      this.x = null;
      const region = this;
      this.views = [{
        zOrder: () => "bottom",
        renderer: () => ({
          draw(target) {
            if (region.x === null) return;
            target.useMediaCoordinateSpace(({ context, mediaSize }) => {
              context.fillStyle = region.color;
              context.fillRect(region.x, 0, mediaSize.width - region.x, mediaSize.height);
            });
          },
        }),
      }];
    }
    attached({ chart }) { this.chart = chart; }
    detached() { this.chart = null; }
    updateAllViews() {
      const timeScale = this.chart ? this.chart.timeScale() : null;
      const x = timeScale ? timeScale.timeToCoordinate(this.startTime) : null;
      this.x = x === null ? null : Math.max(0, x - timeScale.options().barSpacing / 2);
    }
    paneViews() { return this.views; }
  }

  let chart = null;
  let series = [];

  function ensureChart() {
    if (chart) return chart;
    chart = LWC.createChart(el.chart, {
      autoSize: true,
      layout: { background: { type: "solid", color: "#ffffff" }, textColor: "#1f2933",
                fontFamily: "system-ui, sans-serif" },
      grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#cfd6dd" },
      rightPriceScale: { borderColor: "#cfd6dd" },
      localization: { timeFormatter: (time) => stamp(time) },
    });
    return chart;
  }

  function addSeries(type, options, data) {
    const item = ensureChart().addSeries(type, { priceLineVisible: false, lastValueVisible: false, ...options });
    item.setData(data);
    series.push(item);
    return item;
  }

  function drawChart() {
    const chartApi = ensureChart();
    for (const item of series) chartApi.removeSeries(item);
    series = [];
    const legend = [];
    const history = state.csv ? state.csv.history : [];
    if (history.length) {
      addSeries(LWC.CandlestickSeries, { upColor: COLORS.up, downColor: COLORS.down, borderVisible: false,
                                         wickUpColor: COLORS.up, wickDownColor: COLORS.down, title: "" }, history);
      legend.push(["History", COLORS.up]);
    }
    const body = state.forecast;
    if (body) legend.push(...drawForecast(body));
    state.seriesCount = series.length;
    showRecentBars(history.length, body ? body.timestamps.length : 0);
    showLegend(legend);
    el.chart.setAttribute("aria-label", chartDescription(history.length, body));
  }

  // Returns legend rows for what it drew.
  function drawForecast(body) {
    const times = body.timestamps.map(parseTime);
    const f = body.forecast;
    const bars = times.map((time, i) => ({ time, open: f.open[i], high: f.high[i], low: f.low[i], close: f.close[i] }));
    addSeries(LWC.CandlestickSeries, { upColor: COLORS.forecastUp, downColor: COLORS.forecastDown,
                                       borderVisible: false, wickUpColor: COLORS.forecastUp,
                                       wickDownColor: COLORS.forecastDown, lastValueVisible: true }, bars);
    series[series.length - 1].attachPrimitive(new ForecastRegion(times[0], COLORS.region));
    const rows = [[body.quantiles ? "Forecast (mean of samples)" : "Forecast", COLORS.forecastUp]];
    const keys = quantileKeys(body);
    if (keys.length >= 2) {
      const q = body.quantiles;
      const lowKey = keys[0], highKey = keys[keys.length - 1];
      const line = (values) => times.map((time, i) => ({ time, value: values[i] }));
      const edge = { color: COLORS.bandEdge, lineWidth: 1, lineStyle: LWC.LineStyle.Dashed,
                     crosshairMarkerVisible: false };
      addSeries(LWC.LineSeries, edge, line(q[lowKey].close));
      addSeries(LWC.LineSeries, edge, line(q[highKey].close));
      const midKey = keys.includes("0.5") ? "0.5" : null;
      const mid = addSeries(LWC.LineSeries, { color: COLORS.median, lineWidth: 2 },
                            line(midKey ? q[midKey].close : f.close));
      mid.attachPrimitive(new QuantileBand(times.map((time, i) => ({ time, low: q[lowKey].close[i],
                                                                     high: q[highKey].close[i] })), COLORS.band));
      rows.push([(midKey ? "Median" : "Mean") + " close", COLORS.median],
                ["Close band q" + lowKey + " .. q" + highKey, COLORS.bandEdge]);
    }
    return rows;
  }

  // With a forecast, zoom to its neighbourhood (a few times its length of history); the rest of
  // the history stays a scroll or a pinch away. Without one, show everything.
  function showRecentBars(historyBars, forecastBars) {
    const timeScale = ensureChart().timeScale();
    if (!forecastBars) {
      timeScale.fitContent();
      return;
    }
    const total = historyBars + forecastBars;
    const shown = Math.min(historyBars, Math.max(4 * forecastBars, 96));
    timeScale.setVisibleLogicalRange({ from: total - forecastBars - shown - 0.5, to: total + 1.5 });
  }

  function showLegend(rows) {
    el.legend.replaceChildren(...rows.map(([text, color]) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, document.createTextNode(text));
      return item;
    }));
  }

  function chartDescription(historyBars, body) {
    if (!historyBars && !body) return "Chart: no candles loaded yet";
    let text = "Candlestick chart: " + historyBars + " history bars";
    if (body) {
      text += ", " + body.timestamps.length + " forecast bars from " + body.model;
      if (quantileKeys(body).length >= 2) text += " with a quantile band of the close";
    }
    return text;
  }

  // ---------------------------------------------------------------- wiring

  // Runs an action from a control; any Problem lands in the error box, never in the console only.
  function guarded(action) {
    return async (event) => {
      if (event) event.preventDefault();
      try {
        clearError();
        await action(event);
      } catch (error) {
        state.status = "error";
        showError(error instanceof Problem ? error : new Problem({ title: "Page error", detail: String(error) }));
      }
    };
  }

  function restoreToken() {
    try {
      el.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (_) { /* storage disabled: the field still works for this page view */ }
    const saveToken = (event) => {
      if (event) event.preventDefault();  // Enter in the field submits its form: no page reload
      try { sessionStorage.setItem(TOKEN_KEY, el.token.value.trim()); } catch (_) { /* see above */ }
      guarded(loadModels)();
    };
    el.token.addEventListener("change", saveToken);
    document.getElementById("token-form").addEventListener("submit", saveToken);
  }

  function wire() {
    restoreToken();
    el.model.addEventListener("change", showModelDetails);
    el.refresh.addEventListener("click", guarded(loadModels));
    el.sample.addEventListener("click", guarded(useSample));
    el.file.addEventListener("change", guarded(async () => {
      const file = el.file.files && el.file.files[0];
      if (file) useCsv(file.name, await readFile(file));
    }));
    el.form.addEventListener("submit", guarded(runForecast));
    el.download.addEventListener("click", downloadForecast);
  }

  async function start() {
    wire();
    if (!LWC) {
      showError(new Problem({ title: "Chart library missing",
                              detail: "static/vendor/lightweight-charts did not load; the package is incomplete.",
                              hint: "Reinstall kronos-registry." }));
      return;
    }
    // The sample first: it is public, so the page has candles even when the models need a token.
    await guarded(useSample)();
    await guarded(loadModels)();
    if (!state.error) state.status = "ready";
  }

  start();
})();
