/* bitsearch report explorer, part one of three: how one point reads as text, in the tooltip and as
 * a row of the pinned table (its latency measured in a real runtime and each layer's kernel
 * among it, where measured.csv has them), and the units and DOM helper both use. Pure functions
 * of a point (as explorer.js prepares it: `run`, `status` and `flagged` set), exported as window.bitsearchRows;
 * explorer-view.js (the axes' view) and explorer.js (the chart, the controls and the page) load
 * after it. The data schema and the DOM contract are in explorer.js's header. Plain ES2017, no network request of any kind.
 */
(function () {
  'use strict';

  const AXES = {
    accuracy: { label: 'Accuracy', kind: 'fraction', better: 'higher' },
    robust_accuracy: { label: 'Robust accuracy', kind: 'fraction', better: 'higher' },
    latency_s: { label: 'Latency', kind: 'seconds', better: 'lower' },
    energy_j: { label: 'Energy', kind: 'joules', better: 'lower' },
    size_bytes: { label: 'Size', kind: 'bytes', better: 'lower' },
  };

  // ---------- units: one unit per axis, as src/report/units.rs does for the static report ----------

  function unitOf(kind, max) {
    const m = Math.abs(max);
    if (kind === 'fraction') return { f: 100, u: '%' };
    if (kind === 'bytes') return { f: 1 / 1024, u: 'KiB' };
    const base = kind === 'seconds' ? 's' : 'J';
    if (m >= 1) return { f: 1, u: base };
    if (m >= 1e-3) return { f: 1e3, u: 'm' + base };
    return { f: 1e6, u: '\u00b5' + base }; // below a micro-unit still reads in µ (0.1203 µs)
  }

  function sig(x) {
    return Math.abs(x) >= 1000 ? String(Math.round(x)) : String(Number(x.toPrecision(4)));
  }

  function fmt(kind, v) {
    if (v === null || v === undefined || !isFinite(v)) return '\u2014';
    if (kind === 'fraction') return (v * 100).toFixed(2) + '%';
    const u = unitOf(kind, v);
    return sig(v * u.f) + ' ' + u.u;
  }

  const fmtField = (field, v) => fmt(AXES[field].kind, v);
  const raw = (v) => (v === null || v === undefined ? 'null' : String(v));

  // ---------- DOM helper: everything from the data goes through textContent, never innerHTML ----------

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (const c of children || []) if (c) e.append(c);
    return e;
  }

  const idAttrs = (p) => ({ 'data-run': p.run.name, 'data-episode': p.episode, 'data-reference': String(Boolean(p.reference)) });

  // ---------- the tooltip of a point ----------

  // A point's re-scored attacks grouped by where they come from (a file, a split, a suite),
  // in the data's order.
  function bySource(p) {
    const groups = new Map();
    for (const a of p.attacks || []) {
      if (!groups.has(a.source)) groups.set(a.source, []);
      groups.get(a.source).push(a);
    }
    return groups;
  }

  const attackText = (a) => a.attack + ' \u03b5=' + a.eps + ': ' + fmtField('accuracy', a.accuracy);

  // ---------- which attack broke the policy (episodes.csv's broken_by) ----------

  const STAGES = [['fgsm', 'FGSM'], ['pgd', 'PGD'], ['transfer', 'transfer'], ['square', 'Square']];
  const ran = (b) => STAGES.filter(([k]) => typeof b[k] === 'number');
  const attacked = (b) => ran(b).reduce((s, [k]) => s + b[k], b.clean + b.held);

  // The column's own text (eps=…;clean=…;…;held=…), so a test can compare it with the CSV cell.
  const brokenText = (b) => ['eps=' + b.eps, 'clean=' + b.clean]
    .concat(ran(b).map(([k]) => k + '=' + b[k]), ['held=' + b.held]).join(';');

  // "of 200 validation examples at ε=0.1, first broken by: clean 6 · FGSM 30 · PGD 12 ·
  // Square 2; 150 held": the search's worst case, each example counted at the first stage
  // (in suite order) that misclassified it.
  function brokenLines(b) {
    const n = attacked(b);
    const pct = (k) => (n ? ' (' + (100 * k / n).toFixed(1) + '%)' : '');
    return [
      'of ' + n + ' validation examples at \u03b5=' + b.eps + ', first broken by:',
      ['clean ' + b.clean + pct(b.clean)].concat(ran(b).map(([k, name]) => name + ' ' + b[k] + pct(b[k]))).join(' \u00b7 ') +
        '; ' + b.held + ' held',
    ];
  }

  // ---------- timed in a real runtime (measured.csv) ----------

  const signedPercent = (e) => (e >= 0 ? '+' : '') + (100 * e).toFixed(1) + '%';

  // "measured in onnxruntime 1.32.0 at batch 1: 37.42 µs (predicted 35.9 µs, +4.2%)"; the
  // prediction is the run's profile's, so only a profile of this CPU makes it comparable.
  function measuredText(m) {
    const predicted = typeof m.predicted_latency_s === 'number'
      ? ' (predicted ' + fmtField('latency_s', m.predicted_latency_s) + ', ' +
        signedPercent(m.measured_latency_s / m.predicted_latency_s - 1) + ')'
      : '';
    return 'measured in ' + m.runtime + ' at batch ' + m.batch + ': ' + fmtField('latency_s', m.measured_latency_s) + predicted;
  }

  // where the measurements ran: each CPU and thread count once
  const hostText = (m) => 'on ' + m.cpu + ', ' + m.threads + (m.threads === 1 ? ' thread' : ' threads');
  const hostsOf = (p) => Array.from(new Set((p.measured || []).map(hostText)));

  // The kernel layer i ran as: its name, or per batch size when the batches ran different ones.
  function kernelText(p, i) {
    const ms = (p.measured || []).filter((m) => m.kernels[i]);
    const names = Array.from(new Set(ms.map((m) => m.kernels[i])));
    if (names.length <= 1) return names[0] || null;
    return ms.map((m) => m.kernels[i] + ' at batch ' + m.batch).join(', ');
  }

  // references.csv holds the uniform policies and FP32 (every layer at 32 bits)
  const referenceName = (p) => (p.bits.every((b) => b[0] === 32 && b[1] === 32) ? 'FP32 reference' : 'uniform reference');

  function tooltipPoint(p) {
    const lines = [
      el('div', { class: 'tt-head', text: p.run.name + ' \u00b7 episode ' + p.episode + (p.reference ? ' \u00b7 ' + referenceName(p) : '') }),
      el('div', { text: 'policy ' + p.policy }),
      el('div', { text: 'accuracy ' + fmtField('accuracy', p.accuracy) }),
      el('div', { text: 'robust accuracy ' + fmtField('robust_accuracy', p.robust_accuracy) }),
    ];
    if (p.broken_by) for (const t of brokenLines(p.broken_by)) lines.push(el('div', { class: 'tt-broken', text: t }));
    for (const [source, attacks] of bySource(p)) {
      lines.push(el('div', { class: 'tt-source', text: source + ':' }));
      for (const a of attacks) lines.push(el('div', { class: 'tt-attack', text: attackText(a) }));
    }
    lines.push(el('div', { text: 'latency ' + fmtField('latency_s', p.latency_s) }));
    for (const m of p.measured || []) lines.push(el('div', { class: 'tt-measured', text: measuredText(m) }));
    lines.push(
      el('div', { text: 'energy ' + fmtField('energy_j', p.energy_j) }),
      el('div', { text: 'size ' + fmtField('size_bytes', p.size_bytes) }));
    if (typeof p.reward === 'number') lines.push(el('div', { text: 'reward ' + sig(p.reward) }));
    lines.push(el('div', { text: p.status + (p.flagged ? ' \u00b7 masking flagged: ' + p.masking : '') +
      (p.front ? ' \u00b7 on the search\'s front (pareto.csv)' : '') }));
    return el('div', Object.assign({ class: 'tt-point' }, idAttrs(p)), lines);
  }

  // ---------- a row of the pinned table ----------

  function numCell(field, v) {
    return el('td', { class: 'n', 'data-field': field, 'data-value': raw(v), text: fmtField(field, v) });
  }

  function layerCell(p, i) {
    const bits = (p.bits || [])[i] || [null, null];
    const cost = (p.layer_costs || [])[i];
    const kids = [el('span', { 'data-field': 'bits', 'data-value': bits.join('/'), text: bits.join('/') })];
    if (cost) {
      // each layer's share of the policy's total, the largest marked, says which layer makes it
      // slow or costly
      const share = (f) => ' \u00b7 ' + Math.round(100 * cost[f] / p.layer_costs.reduce((s, c) => s + c[f], 0)) + '%';
      const top = (f) => (p.layer_costs.every((c) => c[f] <= cost[f]) ? 'top-cost' : null);
      kids.push(
        el('span', { 'data-field': 'layer_latency_s', 'data-value': raw(cost.latency_s), class: top('latency_s'), text: fmtField('latency_s', cost.latency_s) + share('latency_s') }),
        el('span', { 'data-field': 'layer_energy_j', 'data-value': raw(cost.energy_j), class: top('energy_j'), text: fmtField('energy_j', cost.energy_j) + share('energy_j') }),
        el('span', { 'data-field': 'bound', 'data-value': cost.bound, class: 'bound-' + cost.bound, text: cost.bound + ' bound' }),
        el('span', { 'data-field': 'mode', 'data-value': cost.mode, class: 'mode', text: cost.mode }));
    }
    const kernel = kernelText(p, i);
    if (kernel) kids.push(el('span', { 'data-field': 'kernel', 'data-value': kernel, class: 'kernel', text: 'ran as ' + kernel }));
    return el('td', { class: 'layer', 'data-layer': i }, kids);
  }

  function pinnedRow(p) {
    const robust = numCell('robust_accuracy', p.robust_accuracy);
    if (p.broken_by) {
      robust.append(el('span', { class: 'broken-by', 'data-field': 'broken_by', 'data-value': brokenText(p.broken_by), text: brokenLines(p.broken_by).join(' ') }));
    }
    for (const [source, attacks] of bySource(p)) {
      robust.append(el('span', { class: 'attack-source', text: source }));
      for (const a of attacks) {
        robust.append(el('span', {
          class: 'attack-line', 'data-field': 'attack', 'data-source': source, 'data-attack': a.attack,
          'data-eps': raw(a.eps), 'data-value': raw(a.accuracy), text: attackText(a),
        }));
      }
    }
    const latency = numCell('latency_s', p.latency_s);
    for (const m of p.measured || []) {
      latency.append(el('span', {
        class: 'measured', 'data-field': 'measured', 'data-batch': m.batch, 'data-value': raw(m.measured_latency_s),
        'data-predicted': raw(m.predicted_latency_s), text: measuredText(m),
      }));
    }
    for (const h of hostsOf(p)) latency.append(el('span', { class: 'measured-host', text: h }));
    return el('tr', Object.assign({ class: 'pinned-row' }, idAttrs(p)), [
      el('td', {}, [el('button', Object.assign({ type: 'button', class: 'unpin', title: 'Unpin', 'aria-label': 'Unpin episode ' + p.episode, text: '\u00d7' }, idAttrs(p)))]),
      el('td', { class: 'run', 'data-field': 'run', 'data-value': p.run.name }, [el('span', { class: 'run-dot', style: 'background:' + p.run.color }), p.run.name]),
      el('td', { class: 'n', 'data-field': 'episode', 'data-value': raw(p.episode), text: p.episode + (p.reference ? ' (ref)' : '') }),
      el('td', { class: 'policy', 'data-field': 'policy', 'data-value': p.policy, text: p.policy }),
      numCell('accuracy', p.accuracy), robust,
      latency, numCell('energy_j', p.energy_j), numCell('size_bytes', p.size_bytes),
      el('td', { 'data-field': 'status', 'data-value': p.status, text: p.status }),
      el('td', { 'data-field': 'masking', 'data-value': raw(p.masking), text: p.masking || '\u2014' }),
    ].concat(p.run.layers.map((_, i) => layerCell(p, i))));
  }

  window.bitsearchRows = { AXES, unitOf, sig, fmtField, raw, el, idAttrs, tooltipPoint, pinnedRow };
})();
