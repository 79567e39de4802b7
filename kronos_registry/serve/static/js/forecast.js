// Running a forecast: POST the candles to v1/forecast as text/csv with the form's settings,
// then chart it, summarise it, and offer it as a CSV download.

import { Problem, quantileKeys, request } from "./api.js";
import { drawChart } from "./chart.js";
import { forecastCsv } from "./csv.js";
import { loadModels, selectedModel } from "./models.js";
import { el, narrowScreen, state } from "./page.js";

function forecastUrl() {
  const params = new URLSearchParams({ model: el.model.value, pred_len: el.predLen.value.trim(),
                                       samples: el.samples.value.trim() });
  if (el.seed.value.trim() !== "") params.set("seed", el.seed.value.trim());
  return "v1/forecast?" + params.toString();
}

export async function runForecast() {
  if (!state.csv) throw new Problem({ title: "No candles", detail: "Choose a CSV file or use the sample first." });
  if (!el.model.value) throw new Problem({ title: "No model", detail: "This registry lists no usable model." });
  state.status = "running";
  setBusy(true);
  const previousSummary = [...el.summary.childNodes];  // the last good forecast stays on show
  el.summary.replaceChildren(runningNote(selectedModel()));
  try {
    const body = await request(forecastUrl(), {
      method: "POST", headers: { "Content-Type": "text/csv" }, body: state.csv.text, token: el.token.value,
    });
    state.forecast = body;
    state.forecastRuns += 1;
    drawChart();
    showSummary(body);
    el.download.disabled = false;
    state.status = "done";
    // On a phone the chart sits below the form: bring it into view.
    if (narrowScreen()) el.results.scrollIntoView({ block: "start" });
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

export function downloadForecast() {
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
