// Draws the bench report's charts with uPlot (inlined before this script)
// from the data inlined as JSON: one spec per chart, drawn into the element
// with its id. Kinds:
//   bars       one bar per target (x_labels), a series each: a compared metric
//   dist       latency histograms on a log scale, one stepped line per series
//   lines      figures over the seconds of a run (or x_unit: kernels)
//   resources  the gateway's RSS (left axis) and goroutines and fds (right),
//              over the seconds of a run (or x_unit)
'use strict';

(() => {
  const charts = JSON.parse(document.getElementById('chart-data').textContent);
  const palette = ['#3a6fc4', '#d4731f', '#2f7d46', '#9b4ac4', '#c33', '#777'];
  const width = 420;
  const height = 200;
  const fmt = (v) => (v == null ? '—' : v >= 100 ? Math.round(v).toLocaleString() : +v.toPrecision(3));
  // Axis ticks: short, so that a large figure fits the axis.
  const tick = (v) => (v == null ? '' : v >= 1e6 ? `${+(v / 1e6).toPrecision(3)}M` : v >= 1e4 ? `${+(v / 1e3).toPrecision(3)}k` : +v.toPrecision(3));
  // The x axis of lines and resources: seconds, unless the chart says.
  const xAxis = (c) => ({ label: c.x_unit && c.x_unit !== 's' ? c.x_unit : undefined, values: (u, vals) => vals.map((v) => (c.x_unit && c.x_unit !== 's' ? tick(v) : `${v} s`)) });
  const xName = (c) => c.x_unit || 's';

  const kinds = {
    bars(c) {
      const n = c.x_labels.length;
      const bars = uPlot.paths.bars({ size: [0.7, 80], align: 0 });
      return {
        scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        axes: [
          { splits: () => c.x.slice(), values: (u, splits) => splits.map((i) => c.x_labels[i] ?? ''), grid: { show: false } },
          { size: 56, values: (u, vals) => vals.map(tick) },
        ],
        series: [{ label: 'target', value: (u, v) => (v == null ? '—' : c.x_labels[v]) }, ...c.series.map((s, i) => ({
          label: s.label, stroke: palette[i], fill: `${palette[i]}bb`, paths: bars, points: { show: false }, value: (u, v) => fmt(v),
        }))],
      };
    },
    dist(c) {
      const step = uPlot.paths.stepped({ align: 1 });
      return {
        scales: { x: { time: false, distr: 3 }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        // On a log scale uPlot leaves the ticks it will not label null.
        axes: [{ values: (u, vals) => vals.map((v) => (v == null ? '' : `${+v.toPrecision(2)} ms`)) }, { size: 56, values: (u, vals) => vals.map(tick) }],
        series: [{ label: 'ms', value: (u, v) => fmt(v) }, ...c.series.map((s, i) => ({
          label: s.label, stroke: palette[i], fill: c.series.length === 1 ? `${palette[i]}55` : undefined, width: 1.5, paths: step, points: { show: false },
        }))],
      };
    },
    lines(c) {
      return {
        scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [xAxis(c), { size: 56, label: c.y_unit, values: (u, vals) => vals.map(tick) }],
        series: [{ label: xName(c) }, ...c.series.map((s, i) => ({ label: s.label, stroke: palette[i], width: 1.5 }))],
      };
    },
    resources(c) {
      return {
        scales: { x: { time: false }, mib: { range: (u, min, max) => [0, max * 1.1 || 1] }, n: { range: (u, min, max) => [0, max * 1.1 || 1] } },
        axes: [
          xAxis(c),
          { scale: 'mib', size: 56, label: 'MiB', values: (u, vals) => vals.map(tick) },
          { scale: 'n', side: 1, size: 56, grid: { show: false }, values: (u, vals) => vals.map(tick) },
        ],
        series: [{ label: xName(c) }, ...c.series.map((s, i) => ({ label: s.label, scale: s.scale, stroke: palette[i], width: 1.5 }))],
      };
    },
  };

  for (const c of charts) {
    const box = document.getElementById(c.id);
    const opts = { width, height, cursor: { drag: { x: false, y: false } }, ...kinds[c.kind](c) };
    new uPlot(opts, [c.x, ...c.series.map((s) => s.values)], box);
    box.dataset.drawn = c.kind;
  }
})();
