// hwnas dashboard: hash routes (#/jobs, #/jobs/ID, #/supernets, #/devices) over the HTTP API.
"use strict";

const hwnas = (window.hwnas = { pages: {}, timers: [] });

// The API token (docs/security.md): kept in localStorage, sent as a bearer token on every /v1
// call; `/?token=…` stores one and takes it out of the address bar (and so out of the history).
const TOKEN_KEY = "hwnas.token";
hwnas.token = () => localStorage.getItem(TOKEN_KEY) || "";
hwnas.setToken = function (token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
};
(function takeTokenFromUrl() {
  const url = new URL(location.href);
  if (!url.searchParams.has("token")) return;
  hwnas.setToken(url.searchParams.get("token"));
  url.searchParams.delete("token");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
})();

hwnas.fetch = function (path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (hwnas.token()) headers.authorization = `Bearer ${hwnas.token()}`;
  return fetch(path, { ...options, headers });
};

hwnas.api = async function (path) {
  const response = await hwnas.fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const hint = response.status === 401 || response.status === 403 ? " (enter an API token above)" : "";
    throw new Error(`${body.error || response.status}: ${body.detail || response.statusText}${hint}`);
  }
  return body;
};

// Links to /v1 files (`<a download href=…>`) are fetched with the token and saved from a blob:
// a plain link cannot send the Authorization header.
document.addEventListener("click", async (event) => {
  const link = event.target.closest && event.target.closest("a[download]");
  if (!link || !link.getAttribute("href").startsWith("/v1/")) return;
  event.preventDefault();
  const response = await hwnas.fetch(link.getAttribute("href"));
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    return hwnas.fail(new Error(`${body.error || response.status}: ${body.detail || response.statusText}`));
  }
  const saver = hwnas.h("a", { href: URL.createObjectURL(await response.blob()), download: link.download });
  document.body.append(saver);
  saver.click();
  saver.remove();
  setTimeout(() => URL.revokeObjectURL(saver.href), 60000);
});

function tokenField() {
  const input = hwnas.h("input", {
    id: "token",
    type: "password",
    placeholder: "API token",
    autocomplete: "off",
    value: hwnas.token(),
  });
  const save = () => (hwnas.setToken(input.value.trim()), route());
  input.addEventListener("keydown", (e) => e.key === "Enter" && save());
  return hwnas.h("span", { class: "token" }, input, hwnas.h("button", { id: "token-save", onclick: save }, "Use token"));
}

// h("td", {class: "num"}, "text", childNode): a DOM element; null/false children are skipped.
hwnas.h = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
};

hwnas.num = function (value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e5) return value.toLocaleString("en", { maximumFractionDigits: 0 });
  if (abs >= 100) return value.toFixed(1);
  return Number(value.toPrecision(4)).toString();
};

hwnas.time = (text) => (text ? new Date(text).toLocaleString() : "–");
hwnas.status = (status) => hwnas.h("span", { class: `status ${status}` }, status);
hwnas.bar = (fraction) =>
  hwnas.h("span", { class: "bar" }, hwnas.h("span", { style: `width:${Math.round(fraction * 100)}%` }));
hwnas.isActive = (status) => status === "queued" || status === "running";

hwnas.table = function (columns, rows, onClick) {
  const { h } = hwnas;
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)));
  const body = rows.map((row) =>
    h(
      "tr",
      { class: onClick ? "clickable" : null, onclick: onClick ? () => onClick(row) : null },
      columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(row)))
    )
  );
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
};

hwnas.every = function (ms, fn) {
  hwnas.timers.push(setInterval(fn, ms));
};

hwnas.render = function (...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
  return main;
};

hwnas.fail = function (error) {
  hwnas.render(hwnas.h("p", { class: "error" }, String(error.message || error)));
};

// Best value of each objective over the job's front ("metric:max" → the max of metric).
hwnas.bestValues = function (objectives, points) {
  return objectives.map((text) => {
    const [metric, direction] = [text.slice(0, text.lastIndexOf(":")), text.split(":").pop()];
    const values = points.map((p) => p.metrics[metric]?.value).filter((v) => v !== undefined);
    if (!values.length) return `${metric} –`;
    const best = direction === "max" ? Math.max(...values) : Math.min(...values);
    return `${metric} ${hwnas.num(best)}`;
  });
};

hwnas.pages.jobs = async function (params) {
  const { h } = hwnas;
  const filter = h(
    "select",
    { id: "status-filter", onchange: (e) => (location.hash = `#/jobs?status=${e.target.value}`) },
    ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) =>
      h("option", { value: s, selected: s === (params.get("status") || "") }, s || "all statuses")
    )
  );
  const holder = h("div", { id: "jobs-table" }, h("p", { class: "muted" }, "Loading…"));
  hwnas.render(h("h1", {}, "Jobs"), h("div", { class: "toolbar" }, h("label", {}, "Status ", filter)), holder);
  const best = {};
  async function refresh() {
    const wanted = params.get("status");
    const jobs = (await hwnas.api("/v1/jobs?limit=200")).filter((j) => !wanted || j.status === wanted);
    await Promise.all(
      jobs.slice(0, 50).map(async (job) => {
        if (best[job.id] && best[job.id].validations === job.validations_used) return;
        const pareto = await hwnas.api(`/v1/jobs/${job.id}/pareto`).catch(() => null);
        const points = pareto ? (pareto.feasible ? pareto.points : pareto.closest) : [];
        best[job.id] = { validations: job.validations_used, text: hwnas.bestValues(job.spec.objectives || [], points) };
      })
    );
    holder.replaceChildren(jobs.length ? jobsTable(jobs, best) : h("p", { class: "muted" }, "No jobs."));
  }
  await refresh();
  hwnas.every(3000, () => refresh().catch(hwnas.fail));
};

function jobsTable(jobs, best) {
  const { h } = hwnas;
  return hwnas.table(
    [
      { title: "job", value: (j) => h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`) },
      { title: "status", value: (j) => hwnas.status(j.status) },
      { title: "progress", value: (j) => [hwnas.bar(j.progress), ` ${Math.round(j.progress * 100)}%`] },
      { title: "budget used", num: true, value: (j) => `${j.validations_used}/${j.budget}` },
      { title: "objectives", value: (j) => (j.spec.objectives || []).join(", ") },
      { title: "best values", value: (j) => (best[j.id] ? best[j.id].text.join("; ") : "–") },
      { title: "created", value: (j) => hwnas.time(j.created_at) },
      { title: "finished", value: (j) => hwnas.time(j.finished_at) },
    ],
    jobs,
    (j) => (location.hash = `#/jobs/${j.id}`)
  );
}

hwnas.pages.supernets = async function () {
  const { h } = hwnas;
  const rows = await hwnas.api("/v1/supernets");
  const detail = h("div", { id: "supernet-detail" });
  const show = async (row) => detail.replaceChildren(supernetDetail(await hwnas.api(`/v1/supernets/${row.id}`)));
  hwnas.render(
    h("h1", {}, "Supernets"),
    rows.length
      ? hwnas.table(
          [
            { title: "id", value: (s) => s.id },
            { title: "name", value: (s) => s.name },
            { title: "family", value: (s) => s.family },
            { title: "dataset", value: (s) => s.dataset },
            { title: "checkpoint sha256", value: (s) => (s.checkpoint_sha256 || "").slice(0, 12) },
            { title: "registered", value: (s) => hwnas.time(s.created_at) },
          ],
          rows,
          show
        )
      : h("p", { class: "muted" }, "No supernets; register one with POST /v1/supernets."),
    detail
  );
  if (rows.length) await show(rows[0]);
};

function supernetDetail(s) {
  const { h } = hwnas;
  const ranges = Object.entries(s.exact_ranges).map(([metric, [low, high]]) => [
    h("span", {}, metric),
    h("span", {}, `${hwnas.num(low)} … ${hwnas.num(high)}`),
  ]);
  return h(
    "div",
    { class: "panel" },
    h("h2", {}, `${s.name}: ${s.n_genes} genes, 10^${s.log10_size.toFixed(1)} networks`),
    h("div", { class: "kv" }, ranges),
    h("h2", {}, "Search space"),
    hwnas.table(
      [
        { title: "gene", value: (g) => g.name },
        { title: "choices", value: (g) => g.choices.join(", ") },
      ],
      s.search_space
    )
  );
}

hwnas.pages.devices = async function () {
  const { h } = hwnas;
  const devices = await hwnas.api("/v1/devices");
  const tables = await Promise.all(
    devices.map((d) => hwnas.api(`/v1/devices/${d.id}/latency-tables`).catch(() => []))
  );
  hwnas.render(
    h("h1", {}, "Devices"),
    devices.length
      ? hwnas.table(
          [
            { title: "id", value: (d) => d.id },
            { title: "name", value: (d) => d.name },
            { title: "kind", value: (d) => d.kind },
            { title: "can measure latency", value: (d) => (d.can_measure_latency ? "yes" : "no") },
            { title: "descriptor", value: (d) => h("code", {}, JSON.stringify(d.descriptor)) },
            { title: "latency tables", value: (d) => latencyTables(tables[devices.indexOf(d)]) },
          ],
          devices
        )
      : h("p", { class: "muted" }, "No devices; register one with POST /v1/devices.")
  );
};

function latencyTables(tables) {
  const { h } = hwnas;
  if (!tables.length) return h("span", { class: "muted" }, "none");
  return tables.map((t) =>
    h(
      "div",
      {},
      `#${t.id} ${t.family} (${t.format}): ${t.entries_count} entries`,
      t.coverage === null
        ? ""
        : `, covers ${(100 * t.coverage).toFixed(1)} % of the family's ${t.family_ops} ops`,
      t.unmapped_keys.length ? `, ${t.unmapped_keys.length} unmapped keys` : "",
      t.calibrated ? `, calibrated (${t.calibration_model})` : ", not calibrated"
    )
  );
}

async function route() {
  hwnas.timers.forEach(clearInterval);
  hwnas.timers = [];
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  const page = parts[0] === "jobs" && parts[1] ? "job" : parts[0] || "jobs";
  document.querySelectorAll("nav a[data-page]").forEach((a) => {
    a.classList.toggle("active", a.dataset.page === (page === "job" ? "jobs" : page));
  });
  const handler = hwnas.pages[page];
  if (!handler) return hwnas.fail(new Error(`no page ${path}`));
  try {
    await handler(params, Number(parts[1]));
  } catch (error) {
    hwnas.fail(error);
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  document.querySelector("header").append(tokenField());
  route();
});
