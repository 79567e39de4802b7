// The error box: a problem's status, title, detail, field and hint, shown where the user looks.

import { el, narrowScreen, state } from "./page.js";

export function showError(problem) {
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
  if (narrowScreen()) el.error.scrollIntoView({ block: "start" });
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

export function clearError() {
  state.error = null;
  el.error.hidden = true;
  el.error.replaceChildren();
}
