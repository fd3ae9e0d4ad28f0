/* bitsearch report explorer, part two of three: the chart's view. Which range each axis shows
 * and on which scale: by default the range fits the searched policies (the uniform and FP32
 * references, often far to the right on latency, would squeeze every searched point into one
 * column); "Show all" fits every plotted point; the wheel zooms about the mouse, a drag pans, a
 * double-click fits the searched policies again; "log x"/"log y" switch an axis to a logarithmic
 * scale. Plain ES2017 on Chart.js's scale options (min, max, type), no plugin; exported as
 * window.bitsearchView and used by explorer.js, which loads after it. The DOM contract (ids) is
 * in explorer.js's header.
 */
(function () {
  'use strict';

  const { el } = window.bitsearchRows;

  const PAD = 0.05; // each side of a fitted range, as a fraction of its width (in log10 on a log axis)
  const WHEEL_RATE = 0.0015; // range factor per wheel pixel: exp(deltaY * rate)
  const DRAG_PX = 4; // a press that moves less than this is a click (pins), not a pan

  // A range's two ends in the space where zoom and pan are linear: log10 on a log axis.
  const toSpace = (v, log) => (log ? Math.log10(v) : v);
  const fromSpace = (v, log) => (log ? Math.pow(10, v) : v);

  // [lo, hi] of the values a log axis can place (positive ones) or of all finite ones; null if none.
  function extent(values, log) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (!isFinite(v) || (log && v <= 0)) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return lo <= hi ? [lo, hi] : null;
  }

  // The range shown for an extent: PAD of its width on each side, never below zero on a linear
  // axis (every quantity plotted is non-negative); a single value gets a small range around it.
  function padRange(ext, log) {
    const [lo, hi] = ext.map((v) => toSpace(v, log));
    const w = hi - lo;
    const pad = w > 0 ? PAD * w : log ? 0.05 : Math.abs(hi) * 0.05 || 1;
    const out = [fromSpace(lo - pad, log), fromSpace(hi + pad, log)];
    if (!log && ext[0] >= 0) out[0] = Math.max(0, out[0]);
    return out;
  }

  // The range scaled by k about `anchor` (k < 1 zooms in).
  function zoomRange(range, anchor, k, log) {
    const [lo, hi] = range.map((v) => toSpace(v, log));
    const a = toSpace(anchor, log);
    return [fromSpace(a + (lo - a) * k, log), fromSpace(a + (hi - a) * k, log)];
  }

  // The range moved by `fraction` of its width.
  function panRange(range, fraction, log) {
    const [lo, hi] = range.map((v) => toSpace(v, log));
    const d = fraction * (hi - lo);
    return [fromSpace(lo + d, log), fromSpace(hi + d, log)];
  }

  // Every axis quantity is non-negative: a pan past zero shows no negative ticks. A log scale
  // always labels its range's ends (101.9 beside 100), dropped here when rounder ticks remain, and
  // crowds its ticks at the low end of a short range: a tick closer than `gap` pixels to the last
  // one kept is dropped.
  function tidyTicks(scale) {
    if (scale.type === 'logarithmic') {
      const inner = scale.ticks.filter((t) => t.value !== scale.min && t.value !== scale.max);
      const ticks = inner.length >= 2 ? inner : scale.ticks;
      const horizontal = scale.isHorizontal();
      const px = (horizontal ? scale.width : scale.height) || 600;
      const gap = horizontal ? 48 : 22;
      const span = Math.log10(scale.max / scale.min);
      let last = -Infinity;
      scale.ticks = ticks.filter((t) => {
        const at = (px * Math.log10(t.value / scale.min)) / span;
        if (at - last < gap) return false;
        last = at;
        return true;
      });
      return;
    }
    if (scale.min >= 0) return;
    scale.min = 0;
    scale.ticks = scale.ticks.filter((t) => t.value >= 0);
  }

  // The budget lines, drawn by this small plugin rather than an annotation plugin: one dashed
  // line per visible run whose budget is on a selected axis, in the run's colour; `lines`
  // ({axis, value, color, label}) is set by explorer.js before each redraw. A line the view has
  // zoomed or panned away is not drawn.
  function budgetPlugin() {
    const plugin = {
      id: 'bitsearchBudget',
      lines: [],
      afterDatasetsDraw(chart) {
        const { ctx, chartArea: a, scales } = chart;
        const label = (text, x, y) => { // on a light box, as the line crosses the point cloud
          ctx.save();
          ctx.setLineDash([]);
          ctx.fillStyle = 'rgba(255,255,255,0.85)';
          ctx.fillRect(x - 2, y - 10, ctx.measureText(text).width + 4, 13);
          ctx.restore();
          ctx.fillText(text, x, y);
        };
        ctx.save();
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 1.5;
        ctx.font = '11px system-ui, sans-serif';
        plugin.lines.forEach((line, i) => {
          ctx.strokeStyle = ctx.fillStyle = line.color;
          ctx.beginPath();
          if (line.axis === 'x') {
            const px = scales.x.getPixelForValue(line.value);
            if (!(px >= a.left && px <= a.right)) return;
            ctx.moveTo(px, a.top); ctx.lineTo(px, a.bottom); ctx.stroke();
            // right of the line, or left of it where the chart ends; staggered: runs' budgets may be close
            const w = ctx.measureText(line.label).width;
            label(line.label, px + 3 + w > a.right ? px - 3 - w : px + 3, a.top + 12 + 13 * i);
          } else {
            const py = scales.y.getPixelForValue(line.value);
            if (!(py >= a.top && py <= a.bottom)) return;
            ctx.moveTo(a.left, py); ctx.lineTo(a.right, py); ctx.stroke();
            label(line.label, a.left + 4 + 160 * i, py - 4);
          }
        });
        ctx.restore();
      },
    };
    return plugin;
  }

  /* The view of one chart. `onChange` runs after the user zooms or pans (explorer.js hides the
   * tooltip and recounts what the view holds). */
  function create(chart, box, onChange) {
    const state = { mode: 'searched', log: { x: false, y: false }, range: { x: null, y: null } };

    const button = (id, text, title) => el('button', { type: 'button', id, class: 'view-button', title, text });
    const logBox = (axis) => el('label', { for: 'log-' + axis }, [el('input', { type: 'checkbox', id: 'log-' + axis }), ' log ' + axis]);
    const controls = el('fieldset', { class: 'ex-view' }, [el('legend', { text: 'View' }),
      button('view-fit-searched', 'Fit searched', 'Fit the searched policies (double-click the chart)'),
      button('view-fit-all', 'Show all', 'Fit every plotted point, the uniform and FP32 references included'),
      logBox('x'), logBox('y'),
      el('span', { class: 'ex-hint', text: 'wheel: zoom \u00b7 drag: pan' })]);

    // Sets the scales from the points explorer.js plots: `searched` and `all` are arrays of
    // {x, y} in axis units, `lines` the budget lines ({axis, value}), kept inside every fit.
    function apply(searched, all, lines) {
      for (const axis of ['x', 'y']) {
        const scale = chart.options.scales[axis];
        const log = state.log[axis];
        scale.type = log ? 'logarithmic' : 'linear';
        if (state.mode !== 'custom' || !state.range[axis]) {
          const pts = state.mode === 'searched' && searched.length ? searched : all;
          const values = pts.map((p) => p[axis]).concat(lines.filter((l) => l.axis === axis).map((l) => l.value));
          const ext = extent(values, log);
          state.range[axis] = ext ? padRange(ext, log) : null;
        }
        scale.min = state.range[axis] ? state.range[axis][0] : undefined;
        scale.max = state.range[axis] ? state.range[axis][1] : undefined;
      }
    }

    // Called before explorer.js redraws: `fit` is 'searched' or 'all', or null to keep the mode.
    function setMode(fit) {
      if (fit) state.mode = fit;
      else if (state.mode === 'custom') state.mode = 'searched'; // new axes: a zoom does not carry over
    }

    function show() {
      for (const axis of ['x', 'y']) {
        chart.options.scales[axis].min = state.range[axis][0];
        chart.options.scales[axis].max = state.range[axis][1];
      }
      chart.update('none');
      onChange();
    }

    // The data ranges actually shown (Chart.js may have widened an unset one).
    const shown = (axis) => [chart.scales[axis].min, chart.scales[axis].max];
    const inArea = (x, y) => {
      const a = chart.chartArea;
      return x >= a.left && x <= a.right && y >= a.top && y <= a.bottom;
    };

    // ---------- wheel zoom, drag pan, double-click fit ----------

    box.addEventListener('wheel', (e) => {
      const r = chart.canvas.getBoundingClientRect();
      const px = e.clientX - r.left;
      const py = e.clientY - r.top;
      if (!inArea(px, py) || e.deltaY === 0) return;
      e.preventDefault(); // zoom the chart, not scroll the page
      const k = Math.exp(Math.max(-200, Math.min(200, e.deltaY)) * WHEEL_RATE);
      const anchor = { x: chart.scales.x.getValueForPixel(px), y: chart.scales.y.getValueForPixel(py) };
      for (const axis of ['x', 'y']) state.range[axis] = zoomRange(shown(axis), anchor[axis], k, state.log[axis]);
      state.mode = 'custom';
      show();
    }, { passive: false });

    let drag = null; // {x, y, range, moved} while the button is down
    let swallowClick = false;
    box.addEventListener('mousedown', (e) => {
      const r = chart.canvas.getBoundingClientRect();
      if (e.button !== 0 || !inArea(e.clientX - r.left, e.clientY - r.top)) return;
      drag = { x: e.clientX, y: e.clientY, range: { x: shown('x'), y: shown('y') }, moved: false };
    });
    window.addEventListener('mousemove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < DRAG_PX) return;
      drag.moved = true;
      box.classList.add('panning');
      const a = chart.chartArea;
      state.range.x = panRange(drag.range.x, -dx / (a.right - a.left), state.log.x);
      state.range.y = panRange(drag.range.y, dy / (a.bottom - a.top), state.log.y);
      state.mode = 'custom';
      show();
    });
    window.addEventListener('mouseup', () => {
      if (drag && drag.moved) swallowClick = true; // the click that ends a pan pins nothing
      drag = null;
      box.classList.remove('panning');
    });
    // capture on the box runs before Chart.js's listener on the canvas, so the click stops here
    box.addEventListener('click', (e) => {
      if (!swallowClick) return;
      swallowClick = false;
      e.stopPropagation();
    }, true);
    box.addEventListener('mousedown', () => { swallowClick = false; }, true);

    return {
      controls,
      apply,
      setMode,
      isLog: (axis) => state.log[axis],
      setLog: (axis, on) => { // a fit of the new scale, in the mode shown (a zoom falls back to the searched fit)
        state.log[axis] = on;
        if (state.mode === 'custom') state.mode = 'searched';
      },
      mode: () => state.mode,
      inArea,
      shown,
    };
  }

  window.bitsearchView = { create, budgetPlugin, tidyTicks, extent, padRange, zoomRange, panRange };
})();
