// The chart: the history's candles, the forecast's candles and its quantile band of the close,
// drawn with the vendored lightweight-charts (a classic script before the page's modules, which
// sets window.LightweightCharts; see static/vendor/lightweight-charts/VENDORED.md).

import { quantileKeys } from "./api.js";
import { parseTime } from "./csv.js";
import { stamp } from "./format.js";
import { el, state } from "./page.js";

const LWC = window.LightweightCharts;
const COLORS = {
  up: "#26a69a", down: "#ef5350",
  forecastUp: "#1e6fd9", forecastDown: "#f08c00",
  median: "#7048e8", band: "rgba(112, 72, 232, 0.16)", bandEdge: "rgba(112, 72, 232, 0.55)",
  region: "rgba(30, 111, 217, 0.06)",
};

export function haveChartLibrary() {
  return Boolean(LWC);
}

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

// Redraws everything from the page's state: the loaded history and the last forecast.
export function drawChart() {
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
