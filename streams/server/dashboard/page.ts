/** The dashboard's page and stylesheet; the charts are drawn by app.ts in the browser. */

const panel = (id: string, title: string, subtitle: string, body = '<div class="chart"></div>'): string =>
  `<section class="panel" id="${id}">
      <header><h2>${title}</h2><p class="sub">${subtitle}</p></header>
      ${body}
    </section>`

const tile = (id: string, label: string): string =>
  `<div class="tile"><span class="label">${label}</span><span class="value" id="${id}">–</span></div>`

/** The page; `auth` says whether the server wants a token (the page then asks for it). */
export function dashboardHtml({ auth }: { auth: boolean }): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>rxrnn · live dashboard</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="dashboard/uPlot.min.css">
  <link rel="stylesheet" href="dashboard/style.css">
  <script src="dashboard/uPlot.iife.min.js"></script>
  <script type="module" src="dashboard/app.js"></script>
</head>
<body data-auth="${auth ? 'token' : 'none'}">
  <header class="top">
    <div class="brand"><span class="logo">rxrnn</span><span class="tagline">online learning, live</span></div>
    <div class="model" id="model">waiting for the server…</div>
    <div class="pickers">
      <label>key <select id="key" disabled><option>none yet</option></select></label>
      <label id="output-picker" hidden>output <select id="output"></select></label>
    </div>
    <div class="status" id="status" data-state="connecting"><span class="dot"></span><span id="status-text">connecting…</span></div>
  </header>
  <section class="tiles">
    ${tile('t-rate', 'ticks / s')}
    ${tile('t-events', 'ticks')}
    ${tile('t-keys', 'keys')}
    ${tile('t-updates', 'updates')}
    ${tile('t-cliprate', 'clip rate')}
    ${tile('t-producers', 'producers')}
    ${tile('t-subscribers', 'subscribers')}
    ${tile('t-dropped', 'dropped frames')}
    ${tile('t-rejected', 'rejected frames')}
    ${tile('t-skipped', 'skipped updates')}
    ${tile('t-coverage', 'interval coverage')}
    ${tile('t-anomalies', 'anomalies')}
    ${tile('t-drifts', 'drifts')}
  </section>
  <main class="grid">
    ${panel('p-prediction', 'Prediction vs actual', '<span data-key>key</span> · what the model predicted for each tick, against the target that arrived with it (target units); the calibrated interval, anomalies (red) and drift alarms (yellow) when the server has them')}
    ${panel('p-horizon', 'Horizon fan', '<span data-key>key</span> · the latest forecast of the next ticks (<code>ahead</code>) and its intervals, one point per tick on')}
    ${panel('p-loss', 'Training loss', 'loss of each update for <span data-key>key</span>, and its running mean over every key (log scale)')}
    ${panel('p-error', 'Prequential error vs persistence', 'test-then-train error over every key, against predicting the previous target (target units)')}
    ${panel('p-grad', 'Gradient norm and clipping', '<span data-key>key</span> · global ‖g‖ before and after clipping (log scale), clipped updates marked; clip rate of the last 100 updates')}
    ${panel('p-flow', 'Gradient flow through the TBPTT window', '‖∂L/∂h<sub>t−k</sub>‖ k steps back, latest updates of <span data-key>key</span> (log scale) <span class="badge" id="gain-badge">gain –</span>')}
    ${panel('p-gain', 'Per-step gain and spectral radius', 'fitted ln-gain per step back (below 0: vanishing, above 0: exploding) and ρ(W<sub>hh</sub>) per layer')}
    ${panel(
      'p-hidden',
      'Hidden state h<sub>t</sub>',
      '<span data-key>key</span> · top layer, one row per unit, one column per sampled step (newest right)',
      `<div class="heatmap"><canvas id="heatmap"></canvas></div>
      <div class="colorbar"><span id="hm-min">−1</span><span class="bar"></span><span id="hm-max">+1</span><span class="hm-note" id="hm-note"></span></div>`,
    )}
    ${panel('p-throughput', 'Throughput', 'ticks and updates per second, all keys')}
    ${panel('p-connections', 'Connections and lost frames', 'producers and subscribers connected; frames dropped (slow readers) and rejected (invalid), totals')}
  </main>
  <dialog id="token-dialog">
    <form id="token-form">
      <h2>This server wants a token</h2>
      <p class="sub">Enter the token it was started with; the page logs in once and keeps a session cookie (the token never goes into a URL).</p>
      <input id="token-input" type="password" autocomplete="current-password" placeholder="token" required>
      <p class="error" id="token-error"></p>
      <button type="submit">Connect</button>
    </form>
  </dialog>
</body>
</html>
`
}

export const dashboardCss = `:root {
  --bg: #0d1117;
  --panel: #151b23;
  --border: #262d38;
  --text: #e6edf3;
  --muted: #8b949e;
  --accent: #4e9bff;
  --good: #3fb950;
  --warn: #d29922;
  --bad: #f85149;
  color-scheme: dark;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 13px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
}
.top {
  display: flex;
  align-items: center;
  gap: 20px;
  padding: 12px 20px;
  border-bottom: 1px solid var(--border);
  background: #10151c;
}
.brand { display: flex; align-items: baseline; gap: 10px; }
.logo { font-weight: 700; font-size: 18px; letter-spacing: 0.02em; color: var(--accent); }
.tagline { color: var(--muted); }
.model { flex: 1; color: var(--muted); font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.pickers { display: flex; gap: 12px; }
.pickers label { color: var(--muted); display: flex; align-items: center; gap: 6px; }
select {
  background: var(--panel);
  color: var(--text);
  border: 1px solid var(--border);
  border-radius: 6px;
  padding: 4px 8px;
  font: inherit;
  min-width: 90px;
}
.status { display: flex; align-items: center; gap: 8px; color: var(--muted); min-width: 150px; }
.status .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--warn); }
.status[data-state='live'] .dot { background: var(--good); box-shadow: 0 0 6px var(--good); }
.status[data-state='reconnecting'] .dot, .status[data-state='token'] .dot { background: var(--bad); }
.tiles {
  display: grid;
  grid-template-columns: repeat(10, minmax(0, 1fr));
  gap: 10px;
  padding: 14px 20px 0;
}
.tile {
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 8px;
  padding: 8px 12px;
  display: flex;
  flex-direction: column;
}
.tile .label { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; }
.tile .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .value.alert { color: var(--bad); }
.grid {
  display: grid;
  grid-template-columns: repeat(2, minmax(0, 1fr));
  gap: 14px;
  padding: 14px 20px 20px;
}
.panel {
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 10px;
  padding: 12px 14px 8px;
  min-width: 0;
}
#p-prediction { grid-column: 1 / -1; }
.panel h2 { margin: 0; font-size: 14px; font-weight: 600; }
.sub { margin: 2px 0 6px; color: var(--muted); font-size: 12px; }
.badge {
  display: inline-block;
  margin-left: 6px;
  padding: 1px 8px;
  border-radius: 10px;
  border: 1px solid var(--border);
  color: var(--text);
  font-variant-numeric: tabular-nums;
}
.badge[data-kind='vanishing'] { border-color: #2f6feb; background: rgba(47, 111, 235, 0.18); }
.badge[data-kind='exploding'] { border-color: var(--bad); background: rgba(248, 81, 73, 0.18); }
.chart { width: 100%; min-height: 260px; }
#p-prediction .chart { min-height: 280px; }
.heatmap { position: relative; width: 100%; height: 262px; }
.heatmap canvas { width: 100%; height: 100%; display: block; border-radius: 4px; }
.colorbar { display: flex; align-items: center; gap: 8px; color: var(--muted); font-size: 11px; margin: 6px 0 4px; }
.colorbar .bar {
  width: 180px;
  height: 10px;
  border-radius: 3px;
  background: linear-gradient(90deg, #2f81f7, #1f3a5f 35%, #0d1117 50%, #6b2f1a 65%, #ff8a3d);
}
.hm-note { margin-left: auto; }
.uplot { font-family: inherit; }
.u-legend { color: var(--text); font-size: 12px; }
.u-legend .u-marker { border-radius: 2px; }
.u-legend tr.u-off > * { opacity: 0.35; }
dialog {
  background: var(--panel);
  color: var(--text);
  border: 1px solid var(--border);
  border-radius: 10px;
  padding: 20px 24px;
  width: 360px;
}
dialog::backdrop { background: rgba(0, 0, 0, 0.6); }
dialog h2 { margin: 0 0 4px; font-size: 16px; }
dialog input {
  width: 100%;
  margin: 10px 0 4px;
  padding: 8px 10px;
  background: var(--bg);
  color: var(--text);
  border: 1px solid var(--border);
  border-radius: 6px;
  font: inherit;
}
dialog button {
  margin-top: 8px;
  padding: 7px 16px;
  background: var(--accent);
  color: #fff;
  border: 0;
  border-radius: 6px;
  font: inherit;
  font-weight: 600;
  cursor: pointer;
}
.error { color: var(--bad); min-height: 1.2em; margin: 4px 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
@media (max-width: 1100px) {
  .grid { grid-template-columns: 1fr; }
  .tiles { grid-template-columns: repeat(5, minmax(0, 1fr)); }
}
`
