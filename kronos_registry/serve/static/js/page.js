// The page's state and its elements, shared by every module of the page.
// `state` is everything the page knows; it is window.kronosPage, for tests and for curious
// users in the console.

export const state = {
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

// Modules run after the document is parsed, so every element is there.
export const el = {
  token: $("token"), tokenBox: $("token-box"), tokenForm: $("token-form"), model: $("model"),
  details: $("model-details"), refresh: $("refresh-models"), file: $("csv-file"), sample: $("use-sample"),
  dataStatus: $("data-status"), predLen: $("pred-len"), samples: $("samples"), seed: $("seed"),
  form: $("controls"), run: $("run"), error: $("error"), chart: $("chart"), legend: $("legend"),
  summary: $("summary"), download: $("download"), results: $("results"),
};

// The layout stacks the results under the form on a phone (style.css uses the same width).
export function narrowScreen() {
  return window.matchMedia("(max-width: 760px)").matches;
}
