/* bitsearch report explorer: an interactive view of the scored policies of one run
 * or of several runs (compare), built into <div id="explorer"></div> from the data embedded in
 * the page. Plain ES2017, no build step; needs Chart.js (chart.umd.min.js, vendored beside this
 * file), explorer-rows.js (a point's tooltip and pinned row) and explorer-view.js (the axes'
 * ranges and scales: fit, zoom, pan, log) loaded first. It makes no
 * network request of any kind, so report.html works from file://. The data is written by
 * src/report/explore.rs (its serde types are this schema).
 *
 * Data: <script type="application/json" id="bitsearch-data">, in this schema (numbers are raw
 * SI values: seconds, joules, bytes, accuracies as fractions in [0, 1]):
 *
 * { "title": "…", "kind": "run" | "compare",
 *   "runs": [ { "name": "mbrl-bitfusion", "model": "lenet5", "profile": "bitfusion", "agent": "mbrl",
 *       "layers": ["conv1","conv2","fc1","fc2","fc3"],
 *       "budget": {"latency_s": 1.2e-5 | null, "energy_j": null, "size_bytes": null},
 *       "uniform8": {"latency_s": …, "energy_j": …, "size_bytes": …},
 *       "prices": [ {"8/3": {"latency_s": …, "energy_j": …, "bound": "compute" | "memory",
 *                            "mode": "fusion 4x8"}, "2/6": …}, … one object per layer ] | null,
 *       "points": [ { "episode": 0, "policy": "8/3,7/2,4/8,2/6,8/7", "bits": [[8,3],[7,2],…],
 *           "accuracy": 0.969 | null, "robust_accuracy": 0.39 | null,
 *           "broken_by": {"eps": 0.1, "clean": 6, "fgsm": 30, "pgd": 12, "transfer": 0, "square": 2,
 *                         "held": 150} | null,
 *           "attacks": [{"source": "test split, …", "attack": "FGSM", "eps": 0.1, "accuracy": 0.5}, …] | null,
 *           "measured": [{"batch": 1, "measured_latency_s": 3.74e-5, "predicted_latency_s": 3.59e-5 | null,
 *                         "kernels": ["QLinearConv", "QLinearConv", "QGemm", "FusedGemm", "Gemm" | null],
 *                         "runtime": "onnxruntime 1.32.0", "cpu": "…", "threads": 2}, …] | null,
 *           "latency_s": 2.04e-6, "energy_j": 4.05e-6, "size_bytes": 21914, "reward": -0.79 | null,
 *           "feasible": true, "failed": false, "masking": "none" | "eps_rise+zero_grad" | null,
 *           "front": true, "reference": false } ] } ] }
 *
 * `failed` points have null accuracies; `masking` "none" means not flagged (null: not logged);
 * `front` is membership of pareto.csv (the search's four-objective front), while the line drawn
 * is the front of the feasible episodes on the two axes shown; `reference` marks the uniform and
 * FP32 reference policies (references.csv). `broken_by` is episodes.csv's column: of the
 * validation examples the search attacked, how many each stage (the clean pass, then each attack
 * that ran, in suite order) broke first at the radius of `robust_accuracy`; absent attacks did not
 * run; null for failed points and runs logged before the column. `attacks` are test-split
 * numbers of re-scored policies, `source` naming the file and suite. `measured` is measured.csv's
 * rows of the policy (`bitsearch measure`), one per batch size: its latency timed in a real
 * runtime, the run's profile's prediction at the batch size the profile prices (null at others),
 * and per layer, in `layers` order, the kernel it ran as (null where the file names none); null for
 * policies never measured and for references. `prices` holds, per layer,
 * the price of every "w/a" the run's points give that layer (written once per run: a point's
 * layers are looked up there, as its `layer_costs`); null when the run's profile could not be
 * shown to be the one the search priced with (the page says why, above the explorer). A point is identified by (run name, episode, reference): the reference policies
 * are numbered apart from the search's episodes, so the numbers may repeat.
 *
 * DOM contract for browser tests (ids, classes and data- attributes are stable):
 *   #x-axis, #y-axis          selects, option values accuracy, robust_accuracy, latency_s,
 *                             energy_j, size_bytes
 *   #filter-feasible, #filter-infeasible, #filter-failed, #filter-masking (masking-flagged
 *   points), #filter-unflagged (points not flagged)   checkboxes: a point shows when its boxes are
 *   #legend .legend-run[data-run]   toggles a run (aria-pressed)
 *   #tooltip                  the hover tooltip (HTML, so its text can be read)
 *   #pinned tr.pinned-row[data-run][data-episode][data-reference]   one pinned policy; its cells
 *     carry data-field (episode, policy, accuracy, robust_accuracy, latency_s, energy_j,
 *     size_bytes, status, masking) and data-value, the raw value as in the data ("null" when
 *     null); per layer a td.layer[data-layer=i] holding spans data-field = bits ("w/a"),
 *     layer_latency_s, layer_energy_j, bound, mode, kernel (the measured kernel: its name, or
 *     "K at batch B, …" when batch sizes differ); in the latency cell per measurement
 *     span.measured[data-field=measured][data-batch][data-value][data-predicted] (raw seconds,
 *     "null" without a prediction); in the robust accuracy cell
 *     span.broken-by[data-field=broken_by][data-value] (data-value: the episodes.csv cell's text,
 *     `eps=0.1;clean=6;fgsm=30;…;held=150`); per attack span.attack-line[data-source]
 *     [data-attack][data-eps] (under a span.attack-source per source)
 *   .unpin[data-run][data-episode][data-reference], #unpin-all   unpin controls
 *   #unplotted .pin-button[…]  pins a point that cannot be placed on the current axes
 *   #view-fit-searched, #view-fit-all   buttons: fit the searched policies (the default view;
 *                             also a double-click on the chart), or every plotted point
 *   #log-x, #log-y            checkboxes: a logarithmic x or y axis
 * Test hook, window.bitsearchExplorer:
 *   pointScreenPosition(run, episode, reference = false) -> {x, y}: the point's centre in client
 *     (viewport) coordinates, for real mouse events; null when it is not plotted now or lies
 *     outside the view (zoomed or fitted away: "Show all" brings every plotted point in)
 *   visibleCount() -> how many policy points are plotted now, over all runs (in view or not)
 *   inViewCount() -> how many of those lie inside the view
 *   view() -> {mode: 'searched' | 'all' | 'custom', x: {type, min, max}, y: {…}}: each axis's
 *     scale type ('linear' | 'logarithmic') and the range shown, in the data's raw units
 *   readyAt: performance.now() at the first painted frame (set once the explorer is usable)
 */
(function () {
  'use strict';

  const { AXES, unitOf, fmtField, el, idAttrs, tooltipPoint, pinnedRow } = window.bitsearchRows;
  const bitsearchView = window.bitsearchView;

  // Okabe–Ito, colour-blind safe; vermilion and black are kept for the masking and pin rings.
  const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#999933', '#882255', '#44AA99'];
  const MASK_RING = '#D55E00';
  const PIN_RING = '#000000';
  // How a point is drawn; Chart.js draws higher `order` first, so references end up on top.
  const SYMBOLS = [
    { shape: 'triangle', radius: 6, width: 1.2, filled: true, order: 1, test: (p) => p.reference && p.status === 'feasible' },
    { shape: 'triangle', radius: 6, width: 1.2, filled: false, order: 2, test: (p) => p.reference && p.status === 'infeasible' },
    { shape: 'circle', radius: 4, width: 1.2, filled: true, order: 3, test: (p) => p.status === 'feasible' },
    { shape: 'circle', radius: 4, width: 1.2, filled: false, order: 4, test: (p) => p.status === 'infeasible' },
    { shape: 'crossRot', radius: 5, width: 2, filled: false, order: 5, test: (p) => p.status === 'failed' },
  ];
  const TOOLTIP_MAX = 3; // points listed in one tooltip when several coincide
  const STACK_PX = 1.5; // points this much farther than the nearest still count as under the mouse
  const UNPLOTTED_MAX = 60; // pin buttons listed per run under the chart

  // ---------- data ----------

  const root = document.getElementById('explorer');
  const source = document.getElementById('bitsearch-data');
  if (!root || !source) return;
  const data = JSON.parse(source.textContent);
  const runs = data.runs || [];

  runs.forEach((run, ri) => {
    run.color = PALETTE[ri % PALETTE.length];
    for (const p of run.points) {
      p.run = run;
      p.layer_costs = run.prices ? p.bits.map((b, i) => run.prices[i][b[0] + '/' + b[1]]) : null;
      p.status = p.failed ? 'failed' : p.feasible ? 'feasible' : 'infeasible';
      p.flagged = Boolean(p.masking) && p.masking !== 'none';
      p.symbol = SYMBOLS.find((sym) => sym.test(p));
    }
  });

  // Axis units come from every point of every run, so filtering never rescales the ticks.
  const axisUnit = {};
  for (const f in AXES) {
    let max = 0;
    for (const run of runs) {
      for (const p of run.points) if (isFinite(p[f]) && p[f] !== null) max = Math.max(max, Math.abs(p[f]));
      const b = run.budget && run.budget[f];
      if (b !== null && b !== undefined) max = Math.max(max, Math.abs(b));
    }
    axisUnit[f] = unitOf(AXES[f].kind, max);
  }

  const state = {
    x: 'latency_s',
    y: 'accuracy',
    show: { feasible: true, infeasible: true, failed: true, masking: true, unflagged: true },
    hidden: new Set(), // run names toggled off in the legend
    pins: [], // pinned points, in pin order
  };

  const keyOf = (p) => p.run.name + '\u0000' + p.episode + '\u0000' + Boolean(p.reference);
  const isVisible = (p) => !state.hidden.has(p.run.name) && state.show[p.status] &&
    (p.flagged ? state.show.masking : state.show.unflagged);
  // a log axis cannot place zero (a robust accuracy of 0, say): such points are listed under it
  const usable = (p, axis) => typeof p[state[axis]] === 'number' && (!view.isLog(axis) || p[state[axis]] > 0);
  const placeable = (p) => usable(p, 'x') && usable(p, 'y');

  function findPoint(runName, episode, reference) {
    const run = runs.find((r) => r.name === runName);
    if (!run) return null;
    return run.points.find((p) => p.episode === Number(episode) && Boolean(p.reference) === Boolean(reference)) || null;
  }

  const pointOf = (elem) => findPoint(elem.dataset.run, elem.dataset.episode, elem.dataset.reference === 'true');

  // ---------- the page skeleton ----------

  const axisSelect = (id, value) => el('select', { id }, Object.keys(AXES).map((f) =>
    el('option', { value: f, text: AXES[f].label, selected: f === value ? '' : null })));
  const checkbox = (id, label, n) => el('label', { for: id }, [
    el('input', { type: 'checkbox', id, checked: '' }), ' ' + label + ' (' + n + ')']);
  const count = (pred) => runs.reduce((s, r) => s + r.points.filter(pred).length, 0);

  const xSel = axisSelect('x-axis', state.x);
  const ySel = axisSelect('y-axis', state.y);
  const countEl = el('span', { class: 'ex-count', id: 'visible-count' });
  const controls = el('div', { class: 'ex-controls' }, [
    el('label', { for: 'x-axis' }, ['x ', xSel]),
    el('label', { for: 'y-axis' }, ['y ', ySel]),
    el('fieldset', {}, [el('legend', { text: 'Show' }),
      checkbox('filter-feasible', 'feasible', count((p) => p.status === 'feasible')),
      checkbox('filter-infeasible', 'infeasible', count((p) => p.status === 'infeasible')),
      checkbox('filter-failed', 'failed', count((p) => p.status === 'failed'))]),
    el('fieldset', {}, [el('legend', { text: 'Masking' }),
      checkbox('filter-masking', 'flagged', count((p) => p.flagged)),
      checkbox('filter-unflagged', 'not flagged', count((p) => !p.flagged))]),
    countEl,
  ]);

  const canvas = el('canvas', { id: 'explorer-chart', role: 'img', 'aria-label': 'Scored policies' });
  const tooltip = el('div', { id: 'tooltip', role: 'status' });
  const chartBox = el('div', { class: 'ex-chart' }, [canvas, tooltip]);

  const legend = el('div', { id: 'legend' }, runs.map((run) => el('button', {
    type: 'button', class: 'legend-run', 'data-run': run.name, 'aria-pressed': 'true',
    title: 'Show or hide this run',
  }, [el('span', { class: 'swatch', style: 'background:' + run.color }), run.name])));
  legend.append(el('span', { class: 'ex-key' }, [
    el('span', { text: '\u25cf feasible' }), el('span', { text: '\u25cb infeasible' }),
    el('span', { text: '\u2715 failed' }), el('span', { text: '\u25b2 uniform or FP32 reference' }),
    el('span', { text: '\u25ef masking flagged', style: 'color:' + MASK_RING }),
    el('span', { text: '\u25c9 pinned' }), el('span', { text: '\u2014 front of the feasible episodes on these axes' }),
    el('span', { text: '\u2012\u2012 budget' })]));

  const unplotted = el('div', { id: 'unplotted' });
  const pinned = el('div', { id: 'pinned' });

  root.append(
    el('h2', { class: 'ex-title', text: data.title || 'bitsearch explorer' }),
    el('ul', { class: 'ex-runs' }, runs.map(runSummary)),
    controls, chartBox, legend, unplotted, pinned);

  function runSummary(run) {
    const parts = [run.name + ': ' + [[run.model, run.profile && 'on ' + run.profile].filter(Boolean).join(' '),
      run.agent && 'agent ' + run.agent].filter(Boolean).join(', ') +
      ', ' + run.points.filter((p) => !p.reference).length + ' episodes'];
    for (const f of ['latency_s', 'energy_j', 'size_bytes']) {
      const b = run.budget && run.budget[f];
      if (b === null || b === undefined) continue;
      const u8 = run.uniform8 && run.uniform8[f];
      parts.push('budget ' + AXES[f].label.toLowerCase() + ' \u2264 ' + fmtField(f, b) +
        (u8 ? ' (' + (100 * b / u8).toFixed(1) + '% of uniform 8-bit)' : ''));
    }
    return el('li', {}, [el('span', { class: 'run-dot', style: 'background:' + run.color }), parts.join('; ')]);
  }

  // ---------- the chart ----------

  // the budget lines, drawn by explorer-view.js's plugin; refresh() sets its `lines`
  const budgetPlugin = bitsearchView.budgetPlugin();

  // Points less than a pixel or so apart cannot be told apart on screen, so hovering or clicking
  // takes every point within STACK_PX of the nearest one (sorted by distance), not the nearest
  // alone: the tooltip lists the stack and a click pins all of it.
  Chart.Interaction.modes.bitsearchStack = (chart, e) => {
    const found = [];
    plotted.forEach((pts, datasetIndex) => {
      if (!pts) return;
      chart.getDatasetMeta(datasetIndex).data.forEach((element, index) => {
        if (!view.inArea(element.x, element.y)) return; // zoomed or fitted out of the view
        const d = Math.hypot(element.x - e.x, element.y - e.y);
        if (d <= element.options.radius + element.options.hitRadius) found.push({ element, datasetIndex, index, d });
      });
    });
    const min = Math.min.apply(null, found.map((f) => f.d));
    return found.filter((f) => f.d <= min + STACK_PX).sort((a, b) => a.d - b.d);
  };

  Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", sans-serif';
  const chart = new Chart(canvas, {
    type: 'scatter',
    data: { datasets: [] },
    plugins: [budgetPlugin],
    options: {
      animation: false, // 2,000 points must redraw at once on every filter/axis change
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      interaction: { mode: 'bitsearchStack' },
      plugins: { legend: { display: false }, tooltip: { enabled: false } },
      scales: {
        // explorer-view.js sets each axis's type and range (fitted with its own margin); ticks
        // stay at round values rather than at the range's ends
        x: { type: 'linear', title: { display: true }, ticks: { includeBounds: false }, afterBuildTicks: bitsearchView.tidyTicks },
        y: { type: 'linear', title: { display: true }, ticks: { includeBounds: false }, afterBuildTicks: bitsearchView.tidyTicks },
      },
      onHover: (e, active) => showTooltip(active.filter((a) => plotted[a.datasetIndex])),
      onClick: (e, active) => pinAll(pointsOf(active)),
    },
  });

  const view = bitsearchView.create(chart, chartBox, () => { hideTooltip(); countPlotted(); });
  controls.insertBefore(view.controls, countEl);

  // plotted[datasetIndex] is the array of points behind that dataset's elements (null for the
  // front lines and rings, which cannot be hovered); slots maps a point to [dataset, index].
  let plotted = [];
  let slots = new Map();

  function pointsOf(active) {
    return active.filter((a) => plotted[a.datasetIndex]).map((a) => plotted[a.datasetIndex][a.index]);
  }

  function ring(points, radius, color, width) {
    return {
      data: points.map(xy), pointStyle: 'circle', pointRadius: radius, pointHoverRadius: radius,
      pointHitRadius: 0, borderColor: color, borderWidth: width, pointHoverBorderWidth: width,
      backgroundColor: 'transparent', order: -1,
    };
  }

  function xy(p) {
    return { x: p[state.x] * axisUnit[state.x].f, y: p[state.y] * axisUnit[state.y].f };
  }

  // The front on the axes shown, as the static charts draw it: the feasible scored episodes
  // (references apart) that no other beats on both axes, a masking-flagged policy's robust
  // accuracy counted as 0 (as the search credits it). Sorted by x for the line.
  const credited = (p, f) => (f === 'robust_accuracy' && p.flagged ? 0 : p[f]);
  const creditedXy = (p) => ({ x: credited(p, state.x) * axisUnit[state.x].f, y: credited(p, state.y) * axisUnit[state.y].f });

  function front2d(run) {
    const sense = (f) => (AXES[f].better === 'higher' ? -1 : 1); // minimize sense * value
    const key = (p) => [sense(state.x) * credited(p, state.x), sense(state.y) * credited(p, state.y)];
    const pts = run.points.filter((p) => !p.reference && p.status === 'feasible' && placeable(p))
      .map((p) => ({ p, k: key(p) })).sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1]);
    const out = [];
    let best = Infinity;
    for (const { p, k } of pts) {
      if (k[1] < best) { out.push(p); best = k[1]; }
    }
    return out.sort((a, b) => credited(a, state.x) - credited(b, state.x));
  }

  function refresh() {
    const sets = [];
    const rings = { mask: [], pin: [] };
    const pinnedKeys = new Set(state.pins.map(keyOf));
    const lines = [];
    plotted = [];
    slots = new Map();
    for (const run of runs) {
      if (state.hidden.has(run.name)) continue;
      // One dataset per run and symbol: options are then scalars, which lets Chart.js share
      // them between elements instead of resolving 2,000 per-point option arrays per redraw.
      for (const sym of SYMBOLS) {
        const pts = run.points.filter((p) => p.symbol === sym && isVisible(p) && placeable(p));
        if (!pts.length) continue;
        pts.forEach((p, i) => {
          slots.set(p, [sets.length, i]);
          if (p.flagged) rings.mask.push(p);
          if (pinnedKeys.has(keyOf(p))) rings.pin.push(p);
        });
        sets.push({
          label: run.name, data: pts.map(xy), order: sym.order, pointStyle: sym.shape,
          pointRadius: sym.radius, pointHoverRadius: sym.radius + 2, pointHitRadius: 2,
          backgroundColor: sym.filled ? run.color : 'rgba(255,255,255,0.9)',
          borderColor: run.color, borderWidth: sym.width, pointHoverBorderWidth: sym.width,
        });
        plotted.push(pts);
      }
      // The front is a property of the run, so it is drawn whatever the filters hide.
      sets.push({
        label: run.name + ' front', data: front2d(run).map(creditedXy).filter(onScale), showLine: true, order: 9,
        pointRadius: 0, pointHoverRadius: 0, pointHitRadius: 0,
        borderColor: run.color, borderWidth: 1.5, backgroundColor: run.color,
      });
      plotted.push(null);
      for (const axis of ['x', 'y']) {
        const f = state[axis];
        const b = run.budget && run.budget[f];
        if (b === null || b === undefined) continue;
        const value = b * axisUnit[f].f;
        const same = lines.find((l) => l.axis === axis && l.value === value);
        if (same) same.runs.push(run.name); // one line for runs that share a budget
        else lines.push({ axis, value, color: run.color, runs: [run.name] });
      }
    }
    sets.push(ring(rings.mask, 7.5, MASK_RING, 1.5));
    sets.push(ring(rings.pin, 10, PIN_RING, 2));
    plotted.push(null, null);
    for (const l of lines) l.label = runs.length > 1 ? 'budget (' + l.runs.join(', ') + ')' : 'budget';
    budgetPlugin.lines = lines;

    for (const axis of ['x', 'y']) {
      const f = state[axis];
      chart.options.scales[axis].title.text = AXES[f].label + ' (' + axisUnit[f].u + ')' + (view.isLog(axis) ? ', log' : '');
    }
    // the view fits the search's points (or all of them), the budget lines always inside
    const all = [];
    const searched = [];
    for (const pts of plotted) {
      for (const p of pts || []) {
        all.push(xy(p));
        if (!p.reference) searched.push(xy(p));
      }
    }
    view.apply(searched, all, lines);
    chart.data.datasets = sets;
    chart.update('none');
    hideTooltip();
    countPlotted();
    renderUnplotted();
  }

  // A front vertex a log axis cannot place (a credited robust accuracy of 0) is left out.
  function onScale(v) {
    return (!view.isLog('x') || v.x > 0) && (!view.isLog('y') || v.y > 0);
  }

  function countPlotted() {
    const outside = visibleCount() - inViewCount();
    countEl.textContent = 'plotted: ' + visibleCount() + ' of ' + count(() => true) + ' policies' +
      (outside ? ' (' + outside + ' outside this view)' : '');
  }

  function inViewCount() {
    let n = 0;
    plotted.forEach((pts, i) => {
      if (pts) n += chart.getDatasetMeta(i).data.filter((e) => view.inArea(e.x, e.y)).length;
    });
    return n;
  }

  function visibleCount() {
    return plotted.reduce((s, pts) => s + (pts ? pts.length : 0), 0);
  }

  // ---------- tooltip ----------

  function showTooltip(active) {
    if (!active.length) return hideTooltip();
    const points = pointsOf(active);
    const anchor = active[0];
    tooltip.replaceChildren(...points.slice(0, TOOLTIP_MAX).map(tooltipPoint));
    if (points.length > TOOLTIP_MAX) {
      tooltip.append(el('div', { class: 'tt-more', text: '+' + (points.length - TOOLTIP_MAX) + ' more at this spot (click pins all)' }));
    }
    tooltip.style.display = 'block';
    // keep the box inside the chart: beside the point, on the side with more room
    const { x, y } = chart.getDatasetMeta(anchor.datasetIndex).data[anchor.index];
    const w = chartBox.clientWidth, h = chartBox.clientHeight;
    tooltip.style.left = (x < w / 2 ? x + 14 : x - 14 - tooltip.offsetWidth) + 'px';
    tooltip.style.top = Math.max(0, Math.min(h - tooltip.offsetHeight, y - tooltip.offsetHeight / 2)) + 'px';
  }

  function hideTooltip() {
    tooltip.style.display = 'none';
  }

  canvas.addEventListener('mouseleave', hideTooltip);

  // ---------- pinning ----------

  function pinAll(points) {
    if (!points.length) return;
    const have = new Set(state.pins.map(keyOf));
    const fresh = points.filter((p) => !have.has(keyOf(p)));
    state.pins.push(...fresh);
    renderPinned(points);
    if (fresh.length) refresh(); // only to draw the pin rings
  }

  function unpin(p) { // null: all
    state.pins = p ? state.pins.filter((q) => keyOf(q) !== keyOf(p)) : [];
    renderPinned([]);
    refresh();
  }

  // Pins are grouped by layer list: runs of one model share a table, so their layers line up.
  function renderPinned(flash) {
    const flashKeys = new Set(flash.map(keyOf));
    const groups = new Map();
    for (const p of state.pins) {
      const k = p.run.layers.join('\u0000');
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(p);
    }
    const head = [el('h3', { text: 'Pinned policies (' + state.pins.length + ')' })];
    if (state.pins.length) head.push(el('button', { type: 'button', id: 'unpin-all', class: 'unpin', text: 'Unpin all' }));
    else head.push(el('p', { class: 'ex-hint', text: 'Click a point to pin it here; several can be pinned side by side.' }));
    const tables = [];
    for (const pins of groups.values()) {
      const layers = pins[0].run.layers;
      const header = ['', 'run', 'episode', 'policy', 'accuracy', 'robust accuracy', 'latency', 'energy', 'size', 'status', 'masking']
        .map((t) => el('th', { text: t })).concat(layers.map((l) => el('th', { text: l + ' (w/a)' })));
      const rows = pins.map((p) => {
        const tr = pinnedRow(p);
        if (flashKeys.has(keyOf(p))) tr.classList.add('flash');
        return tr;
      });
      tables.push(el('div', { class: 'pinned-wrap' }, [el('table', { class: 'pinned-table' }, [
        el('thead', {}, [el('tr', {}, header)]), el('tbody', {}, rows)])]));
    }
    pinned.replaceChildren(...head, ...tables);
  }

  pinned.addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    if (b.id === 'unpin-all') return unpin(null);
    if (b.classList.contains('unpin')) unpin(pointOf(b));
  });

  // ---------- what the axes cannot place ----------

  function renderUnplotted() {
    const paras = [];
    for (const run of runs) {
      if (state.hidden.has(run.name)) continue;
      const missing = run.points.filter((p) => isVisible(p) && !placeable(p));
      if (!missing.length) continue;
      const failed = missing.filter((p) => p.failed).length;
      const lacks = ['x', 'y'].filter((axis) => missing.some((p) => !usable(p, axis)))
        .map((axis) => AXES[state[axis]].label.toLowerCase() + (view.isLog(axis) ? ' above 0 (log axis)' : '')).join(' or ');
      const text = (runs.length > 1 ? run.name + ': ' : '') + missing.length + ' visible polic' +
        (missing.length === 1 ? 'y has' : 'ies have') + ' no ' + lacks +
        (failed ? ' (' + failed + ' failed)' : '') + ', so cannot be placed on these axes; click to pin: ';
      const buttons = missing.slice(0, UNPLOTTED_MAX).map((p) => el('button', Object.assign({
        type: 'button', class: 'pin-button', text: (p.reference ? 'ref ' : 'ep ') + p.episode,
      }, idAttrs(p))));
      paras.push(el('p', {}, [text].concat(buttons,
        missing.length > UNPLOTTED_MAX ? [' +' + (missing.length - UNPLOTTED_MAX) + ' more'] : [])));
    }
    unplotted.replaceChildren(...paras);
  }

  unplotted.addEventListener('click', (e) => {
    const b = e.target.closest('.pin-button');
    if (b) pinAll([pointOf(b)]);
  });

  // ---------- controls ----------

  function onAxis(which, other) {
    return (e) => {
      const v = e.target.value;
      // choosing the other axis's field swaps the two, so x and y never plot the same thing
      if (v === state[other]) {
        state[other] = state[which];
        document.getElementById(other + '-axis').value = state[other];
      }
      state[which] = v;
      view.setMode(null);
      refresh();
    };
  }
  xSel.addEventListener('change', onAxis('x', 'y'));
  ySel.addEventListener('change', onAxis('y', 'x'));

  for (const k of Object.keys(state.show)) {
    document.getElementById('filter-' + k).addEventListener('change', (e) => {
      state.show[k] = e.target.checked;
      refresh();
    });
  }

  document.getElementById('view-fit-searched').addEventListener('click', () => { view.setMode('searched'); refresh(); });
  document.getElementById('view-fit-all').addEventListener('click', () => { view.setMode('all'); refresh(); });
  canvas.addEventListener('dblclick', () => { view.setMode('searched'); refresh(); });
  for (const axis of ['x', 'y']) {
    document.getElementById('log-' + axis).addEventListener('change', (e) => {
      view.setLog(axis, e.target.checked);
      refresh();
    });
  }

  legend.addEventListener('click', (e) => {
    const b = e.target.closest('.legend-run');
    if (!b) return;
    const name = b.dataset.run;
    if (state.hidden.has(name)) state.hidden.delete(name);
    else state.hidden.add(name);
    b.setAttribute('aria-pressed', String(!state.hidden.has(name)));
    refresh();
  });

  // ---------- start ----------

  const hook = {
    pointScreenPosition(run, episode, reference) {
      const p = findPoint(run, episode, reference);
      const slot = p && slots.get(p);
      if (!slot) return null;
      const elem = chart.getDatasetMeta(slot[0]).data[slot[1]];
      if (!view.inArea(elem.x, elem.y)) return null;
      const r = canvas.getBoundingClientRect();
      return { x: r.left + elem.x, y: r.top + elem.y };
    },
    visibleCount,
    inViewCount,
    view() {
      const axis = (a) => {
        const [min, max] = view.shown(a);
        const f = axisUnit[state[a]].f;
        return { type: chart.scales[a].type, min: min / f, max: max / f };
      };
      return { mode: view.mode(), x: axis('x'), y: axis('y') };
    },
    readyAt: null,
  };
  window.bitsearchExplorer = hook;

  renderPinned([]);
  refresh();
  requestAnimationFrame(() => { hook.readyAt = performance.now(); });
})();
