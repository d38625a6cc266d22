// mecd dashboard: lists MECs from every region through the local proxy
// (/api/... is the API, signed by mecctl), creates, deletes and downloads
// kubeconfigs. Plain JavaScript, no build step, no dependencies.
"use strict";

const HEADER = { "X-Mecd-Dashboard": "1" };
// The progress bar follows the API's m.progress: the provisioning plan's
// steps in order, how many succeeded and which runs (internal/mec's plan;
// the page keeps no step list of its own).
const MAX_ITEMS = 1000; // pages read per refresh stop here
const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(500, Number(params.get("refresh")) || 3000);

const $ = (sel, root = document) => root.querySelector(sel);
const state = {
  mecs: new Map(),      // id -> record last rendered
  statuses: new Map(),  // id -> status last seen (for announcements)
  regions: new Set(),
  timer: null,
  loading: false,
  first: true,
};

// --- API through the proxy --------------------------------------------------

async function api(method, path, { body, headers } = {}) {
  const init = { method, headers: { ...HEADER, ...(headers || {}) } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch("/api" + path, init);
  } catch (e) {
    throw Object.assign(new Error("The dashboard server does not answer (is mecctl dashboard still running?)"), { status: 0 });
  }
  const type = resp.headers.get("Content-Type") || "";
  if (!resp.ok) {
    let err = { code: "HTTP" + resp.status, message: resp.statusText };
    if (type.includes("json")) {
      const j = await resp.json().catch(() => null);
      if (j && j.error) err = j.error;
      else if (j && j.message) err.message = j.message;
    }
    throw Object.assign(new Error(err.message), { status: resp.status, code: err.code, fields: err.fields || {} });
  }
  if (type.includes("json")) return resp.json();
  return resp.text();
}

async function listAll(status, region) {
  const items = [];
  let token = "";
  do {
    const q = new URLSearchParams({ limit: "100" });
    if (status) q.set("status", status);
    if (region) q.set("region", region);
    if (token) q.set("nextToken", token);
    const page = await api("GET", "/mecs?" + q);
    items.push(...page.items);
    token = page.nextToken || "";
  } while (token && items.length < MAX_ITEMS);
  return { items, truncated: Boolean(token) };
}

// --- time -------------------------------------------------------------------

function span(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h " + (m % 60) + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}
const age = (m) => span(Date.now() - Date.parse(m.createdAt));
function expiry(m) {
  if (m.status === "DELETED") return "-";
  if (!m.expiresAt) return "never";
  const left = Date.parse(m.expiresAt) - Date.now();
  return left > 0 ? "in " + span(left) : "expired";
}

// --- rendering ----------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") n.className = v;
    else if (k === "text") n.textContent = v;
    else if (k in n && typeof v !== "string") n[k] = v;
    else n.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) n.append(c);
  return n;
}

function fact(label, value, cls) {
  const dd = el("dd", {}, value);
  return el("div", { class: cls }, el("dt", { text: label }), dd);
}

function roles(m) {
  let cp = 0, w = 0;
  if (m.nodes && m.nodes.length) {
    for (const n of m.nodes) if (n.state !== "terminated") n.role === "worker" ? w++ : cp++;
  } else {
    const count = m.spec.nodeCount || 0;
    cp = count >= 3 && m.spec.haControlPlane !== false ? 3 : Math.min(count, 1);
    w = count - cp;
  }
  return `${cp + w} (${cp} control-plane${w ? `, ${w} worker${w > 1 ? "s" : ""}` : ""})`;
}

function running(m) {
  return (m.progress && m.progress.running) || "";
}

function stepsList(m) {
  const ol = el("ol");
  for (const s of m.steps || []) {
    const secs = s.endedAt ? ` ${(s.seconds || 0).toFixed(1)}s` : "";
    const attempt = s.attempt > 1 ? ` (attempt ${s.attempt})` : "";
    ol.append(el("li", { class: "outcome-" + s.outcome },
      el("strong", { text: s.name + attempt }), ` ${s.outcome}${secs}`, s.detail ? ` — ${s.detail}` : ""));
  }
  return ol;
}

// nodeNote is a node's history in a word: leaving or gone and why, or the
// operation that added it.
function nodeNote(m, n) {
  if (n.state) return `${n.state}${n.reason ? ": " + n.reason : ""}`;
  const parts = [];
  if (n.index === (m.endpointNode || 0)) parts.push("endpoint");
  if (n.operation) parts.push(`added by operation ${n.operation}`);
  return parts.join(", ");
}

function nodesTable(m, nodes, caption) {
  const t = el("table", { class: "nodes" });
  t.append(el("caption", { class: caption ? "" : "sr-only", text: caption || `Nodes of ${m.name}` }));
  t.append(el("thead", {}, el("tr", {}, ...["#", "Instance", "Role", "IP", "Notes"].map((h) => el("th", { scope: "col", text: h })))));
  const tb = el("tbody");
  for (const n of nodes) {
    const ip = el("td", { text: n.privateIp || "" });
    if (n.publicIp) ip.append(el("br"), el("span", { class: "muted", text: `public ${n.publicIp}` }));
    tb.append(el("tr", {}, el("td", { text: String(n.index) }), el("td", {}, el("code", { text: n.instanceId })),
      el("td", { text: n.role }), ip, el("td", { class: "muted", text: nodeNote(m, n) })));
  }
  t.append(tb);
  return t;
}

// body renders the part of a card that changes with the record; the
// header's actions stay, so focus on them survives a refresh.
function cardBody(m, openSteps) {
  const b = el("div", { class: "body" });
  b.append(el("dl", { class: "facts" },
    fact("Region", m.region),
    fact("Nodes", roles(m)),
    fact("Age", el("span", { class: "age", text: age(m) })),
    fact("Expires", el("span", { class: "expiry", text: expiry(m) })),
    m.endpoint ? fact("Endpoint", m.endpoint, "wide") : null,
    // Who created it through the API (an IAM user or role session ARN);
    // MECs started from the console have none.
    fact("Owner", m.owner ? el("code", { text: m.owner }) : el("span", { class: "muted", text: "none recorded" }), "wide"),
    fact("ID", el("code", { text: m.id }), "wide"),
  ));
  if (m.status === "CREATING") {
    const p = m.progress || { steps: [], done: 0 };
    const n = p.done;
    const total = p.steps.length;
    const cur = running(m);
    const label = cur === "rollback" ? "a step failed: rolling back"
      : `step ${Math.min(n + 1, total)} of ${total}${cur ? ": " + cur : ""}`;
    b.append(el("div", { class: "progress" },
      el("progress", { max: total, value: n, "aria-label": `Provisioning progress of ${m.name}` }),
      el("span", { text: label })));
  } else if (m.status === "DELETING") {
    b.append(el("div", { class: "progress" },
      el("progress", { "aria-label": `Teardown of ${m.name}` }), el("span", { text: "tearing down" + (running(m) ? ": " + running(m) : "") })));
  }
  const op = (m.operations || []).at(-1);
  if ((m.status === "SCALING" || m.status === "REPAIRING") && op) {
    const what = op.kind === "repair" ? `replacing lost nodes (operation ${op.number})` : `scaling from ${op.from} to ${op.to} nodes (operation ${op.number})`;
    b.append(el("div", { class: "progress" },
      el("progress", { "aria-label": `${op.kind === "repair" ? "Repair" : "Scale"} of ${m.name}` }), el("span", { text: what + (running(m) ? ": " + running(m) : "") })));
  }
  if (m.status === "FAILED") {
    b.append(el("p", { class: "failure", text: `Failed at ${m.failedStep || "?"}: ${m.failureCause || "no cause recorded"}` }));
  }
  if (m.status === "DEGRADED" || m.status === "REPAIRING") {
    b.append(el("p", { class: "failure", text: `${m.status === "DEGRADED" ? "Degraded" : "Lost"}: ${m.degradedCause || "no cause recorded"}` }));
  }
  if (m.addonStates && m.addonStates.length) {
    // How far each addon got: enabled (MicroK8s'), ready (mecd's).
    b.append(el("p", { class: "addons", text: "Addons: " + m.addonStates.map((a) =>
      `${a.name} ${a.state}${a.seconds ? ` in ${Math.round(a.seconds)}s` : ""}`).join(", ") }));
  }
  const live = (m.nodes || []).filter((n) => n.state !== "terminated");
  const gone = (m.nodes || []).filter((n) => n.state === "terminated");
  if (live.length) {
    b.append(nodesTable(m, live));
    if (gone.length) {
      const d = el("details", { class: "history" }, el("summary", { text: `Former nodes (${gone.length})` }), nodesTable(m, gone, "Former nodes"));
      b.append(d);
    }
  } else if (m.nodes && m.nodes.length) b.append(el("p", { class: "muted", text: `${m.nodes.length} nodes terminated: ${m.nodes[0].reason || ""}` }));
  if (m.operations && m.operations.length) {
    const ol = el("ol");
    for (const o of m.operations) {
      ol.append(el("li", { class: "outcome-" + o.outcome }, el("strong", { text: `${o.kind} ${o.from} → ${o.to}` }), ` ${o.outcome}`, o.detail ? ` — ${o.detail}` : ""));
    }
    b.append(el("details", { class: "operations" }, el("summary", { text: `Operations (${m.operations.length})` }), ol));
  }
  if (m.steps && m.steps.length) {
    const d = el("details", { class: "steps" }, el("summary", { text: `Steps (${m.steps.length})` }), stepsList(m));
    d.open = openSteps;
    b.append(d);
  }
  return b;
}

function card(m) {
  const li = el("li", { class: "mec", id: "mec-" + m.id, "data-status": m.status, "aria-labelledby": "t-" + m.id });
  const badge = el("span", { class: "badge " + m.status, text: m.status });
  li.append(el("div", { class: "mec-head" }, el("h3", { id: "t-" + m.id, text: m.name }), badge));
  li.append(cardBody(m, false));
  const kube = el("button", { type: "button", class: "kubeconfig", "aria-label": `Download kubeconfig of ${m.name}`, text: "Download kubeconfig" });
  const del = el("button", { type: "button", class: "danger delete", "aria-label": `Delete ${m.name}`, text: "Delete" });
  kube.addEventListener("click", () => downloadKubeconfig(li.record, kube));
  del.addEventListener("click", () => confirmDelete(li.record, del));
  // Scale: PATCH /mecs/{id}; the API's refusal (a quorum it would lose)
  // is shown as it answers, with the fix it names.
  const count = el("input", { type: "number", min: "1", max: "20", class: "scale-count", "aria-label": `Node count for ${m.name}`, value: String((m.spec && m.spec.nodeCount) || 1) });
  const noHA = el("input", { type: "checkbox", class: "scale-noha", "aria-label": `Accept a control plane without HA for ${m.name}` });
  const go = el("button", { type: "button", class: "scale-go", "aria-label": `Scale ${m.name}`, text: "Scale" });
  go.addEventListener("click", () => scale(li.record, count, noHA, go));
  const sc = el("div", { class: "scale" }, count, el("label", {}, noHA, " no HA"), go);
  sc.hidden = m.status !== "READY";
  li.append(el("div", { class: "actions" }, kube, sc, del));
  return li;
}

function updateCard(li, m) {
  const prev = li.record;
  li.record = m;
  li.dataset.status = m.status;
  const badge = $(".badge", li);
  badge.className = "badge " + m.status;
  badge.textContent = m.status;
  if (!prev || prev.version !== m.version || prev.updatedAt !== m.updatedAt) {
    const open = Boolean($("details.steps", li) && $("details.steps", li).open);
    $(".body", li).replaceWith(cardBody(m, open));
  } else {
    $(".age", li).textContent = age(m);
    $(".expiry", li).textContent = expiry(m);
  }
  $(".kubeconfig", li).hidden = !["READY", "SCALING", "REPAIRING", "DEGRADED"].includes(m.status);
  $(".scale", li).hidden = m.status !== "READY";
  $(".delete", li).hidden = m.status === "DELETED";
}

function render(items, truncated) {
  const ul = $("#mecs");
  const seen = new Set();
  let prevNode = null;
  for (const m of items) {
    seen.add(m.id);
    let li = document.getElementById("mec-" + m.id);
    if (!li) li = card(m);
    updateCard(li, m);
    // Keep the API's order (newest first) without moving focused nodes needlessly.
    const want = prevNode ? prevNode.nextSibling : ul.firstChild;
    if (want !== li) ul.insertBefore(li, want);
    prevNode = li;
  }
  for (const li of [...ul.children]) if (!seen.has(li.id.slice(4))) li.remove();
  const counts = {};
  for (const m of items) counts[m.status] = (counts[m.status] || 0) + 1;
  const summary = Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ");
  $("#list-info").textContent = items.length
    ? `${items.length} MEC${items.length > 1 ? "s" : ""}${summary ? " — " + summary : ""}. Updated ${new Date().toLocaleTimeString()}.` + (truncated ? ` Showing the newest ${MAX_ITEMS}.` : "")
    : `No MECs here yet. Updated ${new Date().toLocaleTimeString()}.`;
}

// announce reads msg out (aria-live): messages arriving together are read
// together, and clearing first makes a repeated text read again.
let pending = [];
let announceTimer = null;
function announce(msg) {
  pending.push(msg);
  if (announceTimer) return;
  $("#announcer").textContent = "";
  announceTimer = setTimeout(() => {
    $("#announcer").textContent = pending.join(" ");
    pending = [];
    announceTimer = null;
  }, 100);
}

function updateRegions(items) {
  let changed = false;
  for (const m of items) if (!state.regions.has(m.region)) { state.regions.add(m.region); changed = true; }
  if (!changed) return;
  const sel = $("#filter-region");
  const cur = sel.value;
  const sorted = [...state.regions].sort();
  sel.replaceChildren(el("option", { value: "", text: "All regions" }), ...sorted.map((r) => el("option", { value: r, text: r })));
  sel.value = cur;
  $("#regions").replaceChildren(...sorted.map((r) => el("option", { value: r })));
}

async function refresh() {
  if (state.loading) return;
  state.loading = true;
  const status = $("#filter-status").value;
  const region = $("#filter-region").value;
  try {
    let { items, truncated } = await listAll(status, region);
    if (!status) items = items.filter((m) => m.status !== "DELETED");
    updateRegions(items);
    const changes = [];
    for (const m of items) {
      const before = state.statuses.get(m.id);
      if (!state.first && before && before !== m.status) changes.push(`${m.name} is now ${m.status}`);
      state.statuses.set(m.id, m.status);
    }
    state.first = false;
    render(items, truncated);
    if (changes.length) announce(changes.join(". ") + ".");
    $("#list-error").hidden = true;
  } catch (e) {
    $("#list-error").textContent = "Could not load the MECs: " + e.message;
    $("#list-error").hidden = false;
  } finally {
    state.loading = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = null;
  if ($("#auto-refresh").checked) state.timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}

// --- actions ----------------------------------------------------------------

async function downloadKubeconfig(m, btn) {
  btn.disabled = true;
  try {
    const yaml = await api("GET", `/mecs/${m.id}/kubeconfig`);
    const url = URL.createObjectURL(new Blob([yaml], { type: "application/yaml" }));
    const a = el("a", { href: url, download: `${m.name}.kubeconfig.yaml` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    announce(`Kubeconfig of ${m.name} downloaded as ${m.name}.kubeconfig.yaml.`);
  } catch (e) {
    announce(`Kubeconfig of ${m.name}: ${e.message}`);
    $("#list-error").textContent = `Kubeconfig of ${m.name}: ${e.message}`;
    $("#list-error").hidden = false;
  } finally {
    btn.disabled = false;
  }
}

async function scale(m, count, noHA, btn) {
  const body = { nodeCount: Number(count.value) };
  if (noHA.checked) body.haControlPlane = false;
  btn.disabled = true;
  try {
    await api("PATCH", `/mecs/${m.id}`, { body });
    announce(`Scaling ${m.name} to ${body.nodeCount} nodes.`);
    await refresh();
  } catch (e) {
    // A refusal names the field and the fix.
    const why = [e.message, ...Object.entries(e.fields || {}).map(([k, v]) => `${k} ${v}`)].join(": ");
    announce(`Could not scale ${m.name}: ${why}`);
    $("#list-error").textContent = `Could not scale ${m.name}: ${why}`;
    $("#list-error").hidden = false;
  } finally {
    btn.disabled = false;
  }
}

function confirmDelete(m, btn) {
  const dlg = $("#confirm-delete");
  $("#cd-name").textContent = m.name;
  $("#cd-confirm").setAttribute("aria-label", `Delete ${m.name} now`);
  dlg.returnValue = "";
  dlg.onclose = async () => {
    dlg.onclose = null;
    if (dlg.returnValue !== "delete") { btn.focus(); return; }
    btn.disabled = true;
    try {
      await api("DELETE", `/mecs/${m.id}`);
      announce(`Deleting ${m.name}.`);
      await refresh();
    } catch (e) {
      announce(`Could not delete ${m.name}: ${e.message}`);
      $("#list-error").textContent = `Could not delete ${m.name}: ${e.message}`;
      $("#list-error").hidden = false;
    } finally {
      btn.disabled = false;
    }
  };
  dlg.showModal();
  $("#cd-cancel").focus(); // the safe choice first
}

let meta = { addons: [], defaults: { addons: ["dns"] } };
function setDefaults() {
  for (const i of document.querySelectorAll("#addons input")) i.checked = (meta.defaults.addons || []).includes(i.value);
}

async function init() {
  try {
    const r = await fetch("/ui/meta", { headers: HEADER });
    meta = await r.json();
    $("#api-info").textContent = `API ${meta.endpoint} (${meta.region}), signed by mecctl with your AWS credentials`;
  } catch (e) {
    $("#api-info").textContent = "mecctl dashboard";
  }
  const box = $("#addons");
  for (const a of meta.addons || []) {
    const id = "f-addon-" + a;
    box.append(el("label", { for: id }, el("input", { type: "checkbox", id, value: a, name: "addons" }), a));
  }
  setDefaults();
  const f = form();
  f.addEventListener("submit", submitCreate);
  f.addEventListener("focusout", (ev) => {
    const box = ev.target.closest && ev.target.closest(".field[data-field]");
    if (box && ev.target.value !== "") { touched.add(box.dataset.field); liveValidate(); }
  });
  f.addEventListener("input", (ev) => {
    const box = ev.target.closest && ev.target.closest(".field[data-field]");
    if (box && touched.has(box.dataset.field)) liveValidate();
  });
  $("#refresh").addEventListener("click", refresh);
  $("#filter-status").addEventListener("change", refresh);
  $("#filter-region").addEventListener("change", refresh);
  $("#auto-refresh").addEventListener("change", schedule);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  await refresh();
  schedule();
}

document.addEventListener("DOMContentLoaded", init);
