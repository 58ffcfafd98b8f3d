// The job page (#/jobs/ID): front scatter on two chosen metrics, HV / validations / τ per iteration,
// hover and selection of a candidate, downloads; polls while the job is queued or running.
"use strict";

const PLOTLY_SRC = "/dashboard/static/vendor/plotly-basic-4.1.1.min.js";
const POLL_MS = 2000;
let plotlyLoading = null;

function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  plotlyLoading ||= new Promise((resolve, reject) => {
    const script = hwnas.h("script", { src: PLOTLY_SRC });
    script.onload = () => (performance.mark("hwnas:plotly"), resolve(window.Plotly));
    script.onerror = () => reject(new Error(`could not load ${PLOTLY_SRC}`));
    document.head.append(script);
  });
  return plotlyLoading;
}

const metricOf = (text) => text.slice(0, text.lastIndexOf(":"));

hwnas.pages.job = async function (_params, jobId) {
  const { h } = hwnas;
  const state = { jobId, job: null, plot: null, x: null, y: null, cache: new Map(), selected: null };
  const [job, plot] = await Promise.all([
    hwnas.api(`/v1/jobs/${jobId}`),
    hwnas.api(`/v1/dashboard/jobs/${jobId}/plot`).then((p) => (performance.mark("hwnas:data"), p)),
    loadPlotly(),
  ]);
  Object.assign(state, { job, plot });
  const metrics = axisMetrics(plot);
  state.y = metrics[0];
  state.x = metrics[1] || metrics[0];
  const axis = (id, key) =>
    h(
      "select",
      { id, onchange: (e) => ((state[key] = e.target.value), drawFront(state)) },
      metrics.map((m) => h("option", { value: m, selected: m === state[key] }, m))
    );
  hwnas.render(
    h("h1", {}, `Job #${jobId} `, h("span", { id: "job-status" })),
    h("div", { id: "job-summary", class: "toolbar" }),
    h(
      "div",
      { class: "toolbar" },
      h("label", {}, "x ", axis("axis-x", "x")),
      h("label", {}, "y ", axis("axis-y", "y")),
      h("span", { id: "plot-summary", class: "muted" }),
      h("a", { class: "button", id: "download-front-json", href: `/v1/jobs/${jobId}/pareto`, download: `job-${jobId}-front.json` }, "Front JSON"),
      h("button", { id: "download-front-csv", onclick: () => downloadFrontCsv(state) }, "Front CSV"),
      h("a", { class: "button", id: "download-all-csv", href: `/v1/jobs/${jobId}/export?format=csv`, download: `job-${jobId}.csv` }, "All candidates CSV")
    ),
    h(
      "div",
      { class: "grid" },
      h("div", { class: "panel" }, h("div", { id: "front-chart" })),
      h(
        "div",
        {},
        h("div", { class: "panel", id: "hover-info" }, h("p", { class: "muted" }, "Hover a point to see it.")),
        h("div", { class: "panel", id: "selected" }, h("p", { class: "muted" }, "Click a point to select it."))
      )
    ),
    h(
      "div",
      { class: "charts" },
      ["hv-chart", "validations-chart", "tau-chart"].map((id) => h("div", { class: "panel" }, h("div", { id, class: "chart" })))
    )
  );
  drawAll(state);
  performance.mark("hwnas:drawn");
  wireEvents(state);
  // A failed poll (server restarting, network) is shown and retried; the page stays.
  const pollError = (error) => (document.getElementById("plot-summary").textContent = `update failed: ${error.message}`);
  if (hwnas.isActive(job.status)) hwnas.every(POLL_MS, () => poll(state).catch(pollError));
};

function axisMetrics(plot) {
  const names = plot.objectives.map(metricOf);
  const seen = new Set(names);
  const extra = [...Object.keys(plot.sample.values), ...plot.front.flatMap((p) => Object.keys(p.metrics))];
  for (const m of extra) if (!seen.has(m)) (seen.add(m), names.push(m));
  return names;
}

async function poll(state) {
  const job = await hwnas.api(`/v1/jobs/${state.jobId}`);
  const changed = job.validations_used !== state.job.validations_used || job.status !== state.job.status;
  state.job = job;
  if (changed) state.plot = await hwnas.api(`/v1/dashboard/jobs/${state.jobId}/plot`);
  drawAll(state);
  if (!hwnas.isActive(job.status)) hwnas.timers.forEach(clearInterval);
}

function drawAll(state) {
  const { job, plot } = state;
  document.getElementById("job-status").replaceChildren(hwnas.status(job.status));
  const summary = [
    hwnas.bar(job.progress),
    `${job.validations_used}/${job.budget} validations`,
    `objectives ${plot.objectives.join(", ")}`,
    plot.constraints.length ? `constraints ${plot.constraints.join(", ")}` : "no constraints",
    `created ${hwnas.time(job.created_at)}`,
    job.finished_at ? `finished ${hwnas.time(job.finished_at)}` : null,
    job.error ? hwnas.h("span", { class: "error" }, job.error) : null,
    hwnas.isActive(job.status) ? hwnas.h("button", { id: "cancel-job", onclick: () => cancel(state) }, "Cancel") : null,
  ];
  document.getElementById("job-summary").replaceChildren(...summary.filter(Boolean).map((s) => hwnas.h("span", {}, s)));
  const shown = plot.sample.ids.length;
  const label = plot.feasible ? "front" : "no feasible point yet; closest";
  document.getElementById("plot-summary").textContent =
    `${label} ${plot.front.length} · ${plot.total} validated` + (plot.sampled ? ` · ${shown} others sampled` : "");
  drawFront(state);
  performance.mark("hwnas:front");
  drawIterations(job.iterations);
}

async function cancel(state) {
  await hwnas.fetch(`/v1/jobs/${state.jobId}/cancel`, { method: "POST" });
  await poll(state);
}

function sampleValue(plot, metric, i) {
  const column = plot.sample.values[metric];
  return column ? column[i] : null;
}

function drawFront(state) {
  const { plot, x, y } = state;
  const feasible = [], infeasible = [];
  plot.sample.ids.forEach((id, i) => (plot.sample.feasible[i] ? feasible : infeasible).push(i));
  const cloud = (indices, name, marker) => ({
    type: "scatter", mode: "markers", name, marker,
    x: indices.map((i) => sampleValue(plot, x, i)),
    y: indices.map((i) => sampleValue(plot, y, i)),
    customdata: indices.map((i) => plot.sample.ids[i]),
    hovertemplate: "candidate %{customdata}<br>%{x}, %{y}<extra></extra>",
  });
  const front = [...plot.front].sort((a, b) => (a.metrics[x]?.value ?? 0) - (b.metrics[x]?.value ?? 0));
  const twoObjectives = plot.objectives.length === 2 && new Set(plot.objectives.map(metricOf)).has(x);
  const traces = [
    cloud(feasible, "validated", { color: "rgba(120,120,120,0.45)", size: 6 }),
    cloud(infeasible, "infeasible", { color: "rgba(120,120,120,0.6)", size: 7, symbol: "x" }),
    {
      type: "scatter", mode: twoObjectives && plot.feasible ? "lines+markers" : "markers",
      line: { shape: "hv", color: "#c2410c" },
      name: plot.feasible ? "Pareto front" : "closest (infeasible)",
      marker: { color: "#c2410c", size: 10, symbol: plot.feasible ? "circle" : "x" },
      x: front.map((p) => p.metrics[x]?.value), y: front.map((p) => p.metrics[y]?.value),
      customdata: front.map((p) => p.id),
      hovertemplate: "candidate %{customdata}<br>%{x}, %{y}<extra>front</extra>",
    },
  ];
  if (state.selected !== null) {
    const p = candidateValues(state, state.selected);
    if (p) traces.push({ type: "scatter", mode: "markers", name: "selected", x: [p[x]], y: [p[y]], customdata: [state.selected],
      marker: { size: 16, color: "rgba(0,0,0,0)", line: { color: "#111827", width: 2 } }, hoverinfo: "skip" });
  }
  const layout = {
    margin: { l: 60, r: 20, t: 20, b: 50 }, hovermode: "closest", uirevision: `${x}|${y}`,
    xaxis: { title: { text: x } }, yaxis: { title: { text: y } },
    legend: { orientation: "h", y: -0.18 }, shapes: constraintLines(plot.constraints, x, y),
  };
  const chart = document.getElementById("front-chart");
  chart.dataset.front = String(plot.front.length);
  chart.dataset.total = String(plot.total);
  Plotly.react(chart, traces, layout, { displaylogo: false, responsive: true });
}

function constraintLines(constraints, x, y) {
  const shapes = [];
  for (const text of constraints) {
    const match = text.match(/^\s*([^<>=\s]+)\s*(<=|>=)\s*(.+)$/);
    if (!match) continue;
    const [, metric, , value] = match;
    const line = { type: "line", line: { color: "#2563eb", dash: "dash", width: 1.5 } };
    if (metric === x) shapes.push({ ...line, xref: "x", yref: "paper", x0: +value, x1: +value, y0: 0, y1: 1 });
    if (metric === y) shapes.push({ ...line, xref: "paper", yref: "y", y0: +value, y1: +value, x0: 0, x1: 1 });
  }
  return shapes;
}

// Past MANY_ITERATIONS points the charts draw lines only: SVG markers and bars cost per point.
const MANY_ITERATIONS = 150;

function drawIterations(iterations) {
  const its = iterations.map((it) => it.iteration);
  const many = iterations.length > MANY_ITERATIONS;
  const mode = many ? "lines" : "lines+markers";
  const small = (title) => ({ margin: { l: 50, r: 10, t: 30, b: 35 }, title: { text: title, font: { size: 13 } }, xaxis: { title: { text: "iteration" } } });
  const config = { displaylogo: false, responsive: true };
  Plotly.react("hv-chart", [{ type: "scatter", mode, x: its, y: iterations.map((it) => it.hypervolume), name: "HV" }], small("hypervolume"), config);
  const per = iterations.map((it, i) => it.validations_used - (i ? iterations[i - 1].validations_used : 0));
  const perTrace = many ? { type: "scatter", mode: "lines", line: { shape: "hv" } } : { type: "bar" };
  Plotly.react("validations-chart", [{ ...perTrace, x: its, y: per, name: "validations" }], small("validations per iteration"), config);
  const metrics = [...new Set(iterations.flatMap((it) => Object.keys(it.predictor_scores)))];
  const tau = metrics.map((m) => ({
    type: "scatter", mode, name: m,
    x: iterations.filter((it) => it.predictor_scores[m]).map((it) => it.iteration),
    y: iterations.filter((it) => it.predictor_scores[m]).map((it) => it.predictor_scores[m].kendall_tau ?? null),
  }));
  const layout = small(metrics.length ? "predictor Kendall τ per fit" : "predictor τ (no fit yet)");
  Plotly.react("tau-chart", tau, { ...layout, showlegend: metrics.length > 1, legend: { orientation: "h" } }, config);
}

// Metric values of a candidate by id: from the front, or the sample's columns.
function candidateValues(state, id) {
  const front = state.plot.front.find((p) => p.id === id);
  if (front) return Object.fromEntries(Object.entries(front.metrics).map(([m, v]) => [m, v.value]));
  const i = state.plot.sample.ids.indexOf(id);
  if (i < 0) return null;
  return Object.fromEntries(Object.keys(state.plot.sample.values).map((m) => [m, sampleValue(state.plot, m, i)]));
}

async function candidate(state, id) {
  const inFront = state.plot.front.find((p) => p.id === id);
  if (inFront) return inFront;
  if (!state.cache.has(id)) state.cache.set(id, hwnas.api(`/v1/dashboard/jobs/${state.jobId}/candidates/${id}`));
  return state.cache.get(id);
}

function wireEvents(state) {
  const chart = document.getElementById("front-chart");
  let hovered = null;
  chart.on("plotly_hover", async (event) => {
    const id = event.points[0].customdata;
    hovered = id;
    const c = await candidate(state, id);
    if (hovered === id) document.getElementById("hover-info").replaceChildren(...candidateView(state, c, false));
  });
  chart.on("plotly_click", async (event) => {
    state.selected = event.points[0].customdata;
    const c = await candidate(state, state.selected);
    document.getElementById("selected").replaceChildren(...candidateView(state, c, true));
    drawFront(state);
  });
}

function candidateView(state, c, selected) {
  const { h } = hwnas;
  const source = (m) => (m.method === "lut" ? "LUT" : m.source) + (m.method && m.method !== "lut" ? ` (${m.method})` : "");
  const metrics = Object.entries(c.metrics).map(([name, m]) => [
    h("span", {}, name),
    h("span", {}, `${hwnas.num(m.value)} `, h("span", { class: `source ${m.method === "lut" ? "lut" : m.source}` }, source(m))),
  ]);
  const genes = Object.entries(c.config).map(([g, v]) => `${g} = ${v}`).join("\n");
  return [
    h("h2", {}, `${selected ? "Selected" : "Candidate"} ${c.id}`, h("span", { class: "muted" }, ` · iteration ${c.iteration} · ${c.origin}${c.pareto_role ? " · " + c.pareto_role : ""}`)),
    h("div", { class: "kv metrics" }, metrics),
    selected
      ? h("p", {}, h("a", { class: "button", id: "download-onnx", href: `/v1/jobs/${state.jobId}/candidates/${c.id}/model.onnx`, download: `candidate-${c.id}.onnx` }, "Download ONNX"))
      : null,
    h("h2", {}, selected ? "Genes" : "Config"),
    h("pre", { class: "genes" }, genes),
  ].filter(Boolean);
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadFrontCsv(state) {
  const points = state.plot.front;
  const metrics = [...new Set(points.flatMap((p) => Object.keys(p.metrics)))].sort();
  const header = ["candidate_id", "iteration", "origin", "pareto_role", "config_hash", ...metrics, ...metrics.map((m) => `${m}_source`), "config"];
  const rows = points.map((p) => [
    p.id, p.iteration, p.origin, p.pareto_role, p.config_hash,
    ...metrics.map((m) => p.metrics[m]?.value), ...metrics.map((m) => p.metrics[m]?.source),
    JSON.stringify(p.config),
  ]);
  const text = [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
  const link = hwnas.h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `job-${state.jobId}-front.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}
