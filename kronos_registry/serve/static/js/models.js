// The model picker: the registry's models from GET /v1/models, and the chosen one's details.

import { request } from "./api.js";
import { formatBytes, formatParams } from "./format.js";
import { el, state } from "./page.js";

export async function loadModels() {
  const entries = await request("v1/models", { token: el.token.value });
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

export function selectedModel() {
  return state.models.find((entry) => entry.name === el.model.value) || null;
}

export function showModelDetails() {
  const entry = selectedModel();
  el.details.replaceChildren();
  if (!entry) {
    addDetail("Models", "none available in this registry");
    return;
  }
  if (entry.unverified && entry.unverified.length)
    addDetail("Unverified", entry.unverified.join(", ") + " (checked against no trusted record)");
  if (entry.replaces) addDetail("Replaces", "the entry of the same name in " + entry.replaces);
  if (entry.bundle) addDetail("Imported from", entry.bundle);
  if (entry.fine_tuned_from) addDetail("Fine-tune of", entry.fine_tuned_from);
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
