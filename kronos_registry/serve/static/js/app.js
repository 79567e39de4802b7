// The page of `kronos-registry serve`: pick a model, load candles, forecast, chart, download.
// The entry module: it wires the controls to the other modules and starts the page.
// ES modules, no build step, nothing fetched from outside the server (offline-safe).
//
//   page.js     the page's state (window.kronosPage) and elements
//   api.js      fetch with the token, problem details, forecast responses
//   errors.js   the error box
//   models.js   the model picker (GET v1/models)
//   csv.js      the history from CSV text, the forecast as CSV
//   candles.js  the sample or the user's file
//   chart.js    the chart (vendored lightweight-charts)
//   forecast.js POST v1/forecast, the summary, the download
//   format.js   times, parameter counts and sizes as text

import { Problem } from "./api.js";
import { readFile, useCsv, useSample } from "./candles.js";
import { haveChartLibrary } from "./chart.js";
import { clearError, showError } from "./errors.js";
import { downloadForecast, runForecast } from "./forecast.js";
import { loadModels, showModelDetails } from "./models.js";
import { el, state } from "./page.js";

const TOKEN_KEY = "kronos-registry.token";

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
  el.tokenForm.addEventListener("submit", saveToken);
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
  if (!haveChartLibrary()) {
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
