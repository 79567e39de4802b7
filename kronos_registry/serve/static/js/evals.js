// The evaluation view of the page: the stored `kronos-registry eval` runs of the chosen model,
// from GET v1/models/NAME/evals (the same data `show NAME` and MCP's model_info carry).
// renderEvals(container, body) draws one response; attachEvals() follows the page's model
// picker. Text only (textContent), never HTML from data.

import { request } from "./api.js";
import { el } from "./page.js";

function cell(row, text, tag = "td") {
  const node = document.createElement(tag);
  node.textContent = text;
  row.appendChild(node);
  return node;
}

function number(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "-";
}

function signed(value) {
  return typeof value === "number" && Number.isFinite(value) ? (value >= 0 ? "+" : "") + value.toFixed(3) : "-";
}

function fileName(path) {
  return String(path || "data").split(/[\\/]/).pop();
}

// One line a person reads: does it beat the best baseline, and how sure is that.
export function verdictText(skill) {
  if (!skill) return "no baseline compared";
  const interval = "95% interval " + signed(skill.low) + " .. " + signed(skill.high);
  if (skill.verdict === "better") return "beats " + skill.against + " (" + interval + ")";
  if (skill.verdict === "worse") return "does not beat " + skill.against + ": worse (" + interval + ")";
  if (skill.verdict === "too few origins") return "too few origins to tell";
  return "does not beat " + skill.against + ": no detectable difference (" + interval + ")";
}

// Draw a GET v1/models/NAME/evals body into `container` (replacing what was there).
export function renderEvals(container, body) {
  const title = document.createElement("h2");
  title.id = "evals-title";
  title.textContent = "Evaluations of " + (body && body.name ? body.name : "this model");
  const latest = (body && body.latest) || [];
  if (!latest.length) {
    const empty = document.createElement("p");
    empty.className = "help";
    empty.textContent = "No stored evaluation. On the server's store, run: kronos-registry eval "
      + (body && body.name ? body.name : "NAME") + " -i candles.csv -n 24";
    container.replaceChildren(title, empty);
    return;
  }
  const table = document.createElement("table");
  table.className = "evals-table";
  const head = document.createElement("tr");
  for (const label of ["Data", "Windows", "Horizon", "MASE", "Best baseline", "Verdict", "Run"]) cell(head, label, "th");
  const thead = document.createElement("thead");
  thead.appendChild(head);
  const tbody = document.createElement("tbody");
  for (const run of latest) {
    const row = document.createElement("tr");
    const skill = (run.skill || []).find((s) => s.loss === "mase");
    const data = run.data || {};
    cell(row, fileName(data.path) + " (" + String(data.sha256 || "").slice(0, 12) + ", " + (data.series ?? "?")
      + " series)");
    cell(row, String(run.windows ?? "-"));
    cell(row, String(run.horizon ?? "-"));
    cell(row, number((run.metrics || {}).mase));
    cell(row, skill ? skill.against + " " + number(skill.baseline_loss) : "-");
    const verdict = cell(row, verdictText(skill));
    verdict.dataset.verdict = skill ? skill.verdict : "";
    const marks = [];
    if (!run.current) marks.push("an earlier artifact");
    if (run.overlapping_windows) marks.push("trained on " + run.overlapping_windows + " of its windows");
    if (!run.lineage_checked) marks.push("overlap with its training data not checked");
    cell(row, run.run_id + (marks.length ? " (" + marks.join("; ") + ")" : ""));
    tbody.appendChild(row);
  }
  table.append(thead, tbody);
  const note = document.createElement("p");
  note.className = "help";
  note.textContent = "MASE 1 is the in-sample error of \"the next bar equals this one\"; lower is better. "
    + (body.runs || []).length + " stored run(s) in all.";
  container.replaceChildren(title, table, note);
}

// Through the page's one request helper: the same token and the same problem handling.
function fetchEvals(name) {
  return request("v1/models/" + encodeURIComponent(name) + "/evals", { token: el.token.value });
}

// Follow the page's model picker (#model): on every change, and once it is first filled.
export function attachEvals(container = document.getElementById("evals"), picker = document.getElementById("model")) {
  if (!container || !picker) return;
  let shown = null;
  const show = async () => {
    const name = picker.value;
    if (!name || name === shown) return;
    shown = name;
    try {
      renderEvals(container, await fetchEvals(name));
    } catch (error) {
      shown = null;   // try again on the next change (the token may be given later)
      const failed = document.createElement("p");
      failed.className = "help";
      failed.textContent = "Evaluations could not be read: " + error.message;
      container.replaceChildren(failed);
    }
  };
  picker.addEventListener("change", show);
  new MutationObserver(show).observe(picker, { childList: true });
  show();
}

attachEvals();
