// Candle CSV in the browser: read the history to draw it, and write a forecast to download.
// The history is parsed here only to draw it; the server gets the file as text/csv, so its
// validation and messages (the CLI's) are the ones the user sees.

import { quantileKeys } from "./api.js";

// The server's accepted timestamp column names and its columns (kronos_registry/candles/columns.py).
const TIMESTAMP_COLUMNS = ["timestamps", "timestamp", "date", "datetime", "time"];
const PRICE_COLUMNS = ["open", "high", "low", "close"];
const FORECAST_COLUMNS = ["open", "high", "low", "close", "volume", "amount"];

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
export function parseTime(text) {
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
export function parseHistory(text) {
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

// The forecast as CSV: the CLI's columns, then {col}_q{q} per quantile (as `predict --by` writes).
export function forecastCsv(body) {
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
