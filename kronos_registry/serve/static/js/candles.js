// The candles the forecast runs on: the packaged sample (GET sample.csv) or the user's file.
// Loading candles draws their history and clears the last forecast.

import { Problem } from "./api.js";
import { drawChart } from "./chart.js";
import { parseHistory } from "./csv.js";
import { clearError } from "./errors.js";
import { stamp } from "./format.js";
import { el, state } from "./page.js";

export function useCsv(name, text) {
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

export async function useSample() {
  const response = await fetch("sample.csv");
  if (!response.ok) throw new Problem({ status: response.status, title: "Sample unavailable",
                                       detail: "GET sample.csv answered " + response.status });
  useCsv("sample_candles.csv", await response.text());
}

export function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Problem({ title: "Cannot read the file", detail: file.name + ": "
                                                + (reader.error ? reader.error.message : "read failed") }));
    reader.readAsText(file);
  });
}
