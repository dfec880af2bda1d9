// Balans charts: interactive time series drawn with uPlot (cloud/static/vendor/, pinned in package-lock.json),
// Kyiv time on every axis, no outside network, no inline script (the CSP allows none).
//
// Use: an element with class "chart" and data-chart="<URL of the JSON>", or data-chart="#id" naming a
// <script type="application/json" id="id"> block holding the same JSON (data only: the CSP never runs it).
// The pages load uPlot.iife.min.js, uPlot.min.css and this file with `defer`.
//
// The JSON (cloud/dashboards/series.py `chart()` makes it):
//   {
//     "x":      [1759266000, …],             // bucket starts, Unix seconds (UTC); drawn in Europe/Kyiv
//     "step":   900,                         // seconds per bucket: 900 (15 min), 86400 (day), ~2592000 (month)
//     "kind":   "line" | "bars",             // how every series is drawn
//     "series": [{"label": "Вхід ТП", "unit": "kWh"}, …],   // one per y array; label already translated
//     "y":      [[12.5, null, …], …],        // one array per series, as long as x; null = no data (a gap,
//                                            // never drawn as zero)
//     "flags":  [{"from": 1759266000, "to": 1759266900, "status": "suspected_theft" | "elevated"}, …]
//   }                                        // flags: shaded regions [from, to) behind the series
// Series whose unit differs from the first one's are drawn against a second axis on the right.
// The chart takes its container's width and follows it (a phone turned, a window resized).
(function () {
  "use strict";
  const COLOURS = ["#1f6feb", "#2da44e", "#cf222e", "#8250df", "#bf8700", "#0a7ea4", "#e16f24", "#6e7781"];
  const FLAG_FILL = { suspected_theft: "rgba(207, 34, 46, 0.16)", elevated: "rgba(191, 135, 0, 0.16)" };
  const KYIV = "Europe/Kyiv";

  function flagsPlugin(flags) {
    return {
      hooks: {
        drawClear: [(u) => {
          const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
          ctx.save();
          for (const f of flags) {
            const x0 = u.valToPos(f.from, "x", true), x1 = u.valToPos(f.to, "x", true);
            ctx.fillStyle = FLAG_FILL[f.status] || FLAG_FILL.elevated;
            ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
          }
          ctx.restore();
        }],
      },
    };
  }

  function options(data, width) {
    const units = [];
    for (const s of data.series) if (!units.includes(s.unit)) units.push(s.unit);
    const bars = data.kind === "bars" && uPlot.paths && uPlot.paths.bars;
    const series = [{}].concat(data.series.map((s, i) => ({
      label: s.label,
      scale: s.unit || "y",
      stroke: COLOURS[i % COLOURS.length],
      fill: bars ? COLOURS[i % COLOURS.length] + "99" : undefined,
      width: bars ? 0 : 1.5,
      spanGaps: false, // a null is a gap in the line
      points: { show: data.x.length < 80 },
      paths: bars ? uPlot.paths.bars({ size: [0.8 / Math.max(data.series.length, 1), 60], align: 0 }) : undefined,
      value: (u, v) => (v == null ? "—" : v.toLocaleString(document.documentElement.lang || "uk",
        { maximumFractionDigits: 2 })),
    })));
    const axes = [{}].concat(units.slice(0, 2).map((unit, i) => ({
      scale: unit || "y",
      side: i === 0 ? 3 : 1,
      label: unit,
      grid: { show: i === 0 },
      size: 56,
    })));
    const scales = { x: { time: true } };
    for (const unit of units) scales[unit || "y"] = { auto: true };
    return {
      width: width,
      height: Math.max(200, Math.min(320, Math.round(width * 0.5))),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), KYIV),
      series: series,
      axes: axes,
      scales: scales,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      plugins: [flagsPlugin(data.flags || [])],
    };
  }

  function draw(el, data) {
    el.textContent = "";
    if (!data.x.length) {
      el.classList.add("chart-empty");
      return;
    }
    const width = () => Math.max(240, el.clientWidth || el.parentElement.clientWidth || 320);
    const plot = new uPlot(options(data, width()), [data.x].concat(data.y), el);
    el.classList.add("chart-drawn");
    let pending = null;
    const follow = () => {
      if (pending) cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => {
        const w = width();
        plot.setSize({ width: w, height: Math.max(200, Math.min(320, Math.round(w * 0.5))) });
      });
    };
    if (window.ResizeObserver) new ResizeObserver(follow).observe(el);
    else window.addEventListener("resize", follow);
  }

  function load(el) {
    const source = el.dataset.chart;
    if (source.startsWith("#")) {
      const block = document.getElementById(source.slice(1));
      if (block) draw(el, JSON.parse(block.textContent));
      return;
    }
    fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))))
      .then((data) => draw(el, data))
      .catch(() => el.classList.add("chart-failed"));
  }

  function start() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach(load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
