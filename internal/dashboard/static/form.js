// mecd dashboard: the create form. It builds the spec from the fields, shows
// the API's validation messages next to them, and submits through the proxy
// (helpers from app.js; both scripts share the page's global scope).
"use strict";

// --- create form --------------------------------------------------------------

const form = () => $("#create-form");
const touched = new Set();

function lines(v) {
  return v.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

// specFromForm returns the spec JSON for the API (only fields given) and
// the problems found before sending (fields the API could not parse).
function specFromForm() {
  const f = form().elements;
  const s = {};
  const local = {};
  const str = (k) => { const v = f[k].value.trim(); if (v) s[k] = v; };
  const num = (k) => {
    const v = f[k].value.trim();
    if (v === "") { if (f[k].validity && f[k].validity.badInput) local[k] = "must be a whole number"; return; }
    s[k] = Number(v);
  };
  str("name"); str("region"); num("nodeCount"); str("instanceType"); str("microk8sChannel"); str("ttl");
  str("amiId"); str("vpcId"); str("subnetId"); str("ebsKmsKeyId"); num("rootVolumeGiB");
  const dvCount = f.dataVolumeCount.value.trim(), dvSize = f.dataVolumeGiB.value.trim();
  if (dvCount !== "" || dvSize !== "") {
    if (dvCount === "") local.dataVolumes = "give the number of volumes per node (0-3) with the size";
    else {
      s.dataVolumes = { count: Number(dvCount) };
      if (dvSize !== "") s.dataVolumes.sizeGiB = Number(dvSize);
    }
  }
  s.addons = [...document.querySelectorAll("#addons input:checked")].map((i) => i.value);
  const apiCidrs = lines(f.apiAccessCidrs.value); if (apiCidrs.length) s.apiAccessCidrs = apiCidrs;
  const np = lines(f.nodePortCidrs.value); if (np.length) s.nodePortCidrs = np;
  if (f.publicEndpoint.checked) s.publicEndpoint = true;
  if (f.allowWorldAccess.checked) s.allowWorldAccess = true;
  if (f.haControlPlane.value) s.haControlPlane = f.haControlPlane.value === "true";
  if (f.expiresAt.value) {
    const t = new Date(f.expiresAt.value);
    if (isNaN(t)) local.expiresAt = "must be a date and time"; else s.expiresAt = t.toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  const tagLines = f.tags.value.split("\n").map((l) => l.trim()).filter(Boolean);
  if (tagLines.length) {
    s.tags = {};
    for (const l of tagLines) {
      const i = l.indexOf("=");
      if (i < 1) { local.tags = `"${l}" is not KEY=VALUE; write one tag per line as KEY=VALUE`; continue; }
      s.tags[l.slice(0, i).trim()] = l.slice(i + 1).trim();
    }
  }
  return { spec: s, local };
}

// fieldOf maps an API field key ("addons[1]", "tags.team") to a form field.
function fieldOf(key) {
  const base = key.split(/[.[]/)[0];
  return document.querySelector(`.field[data-field="${CSS.escape(base)}"]`) ? base : null;
}

function clearErrors(only) {
  for (const box of document.querySelectorAll(".field[data-field]")) {
    const name = box.dataset.field;
    if (only && !only.has(name)) continue;
    const e = $("#e-" + name);
    e.hidden = true;
    e.textContent = "";
    const input = $("#f-" + name);
    if (input) input.removeAttribute("aria-invalid");
  }
}

// showErrors puts each message next to its field; returns the fields shown
// and the messages that belong to no field.
function showErrors(fields, only) {
  const grouped = {};
  const rest = [];
  for (const [k, msg] of Object.entries(fields || {})) {
    const f = fieldOf(k);
    if (!f) { rest.push(`${k}: ${msg}`); continue; }
    if (only && !only.has(f)) continue;
    (grouped[f] = grouped[f] || []).push(k === f ? msg : `${k}: ${msg}`);
  }
  for (const [f, msgs] of Object.entries(grouped)) {
    const e = $("#e-" + f);
    e.textContent = msgs.join(" · ");
    e.hidden = false;
    const input = $("#f-" + f);
    if (input) input.setAttribute("aria-invalid", "true");
    if (f !== "name" && f !== "region" && f !== "nodeCount" && f !== "instanceType" && f !== "microk8sChannel" && f !== "ttl" && f !== "addons") {
      $(".advanced").open = true; // an error inside must be visible
    }
  }
  return { shown: Object.keys(grouped), rest };
}

// Hints while typing: the same rules as the API (spec.Parse, run by
// mecctl), shown for fields already left once. The API decides on submit.
let validateSeq = 0;
async function liveValidate() {
  const seq = ++validateSeq;
  const { spec, local } = specFromForm();
  let fields = {};
  try {
    const r = await fetch("/ui/validate", { method: "POST", headers: { ...HEADER, "Content-Type": "application/json" }, body: JSON.stringify(spec) });
    if (r.ok) fields = (await r.json()).fields || {};
  } catch (e) { /* hints only */ }
  if (seq !== validateSeq) return;
  delete fields.region; // the stack's regions are the API's to check
  clearErrors(touched);
  showErrors({ ...fields, ...local }, touched);
}

async function submitCreate(ev) {
  ev.preventDefault();
  const btn = $("#create-submit");
  const status = $("#form-status");
  const ferr = $("#form-error");
  clearErrors();
  ferr.hidden = true;
  const { spec, local } = specFromForm();
  if (Object.keys(local).length) {
    showErrors(local);
    focusFirstError();
    return;
  }
  btn.disabled = true;
  status.textContent = "Creating…";
  const key = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random().toString(16).slice(2);
  try {
    const m = await api("POST", "/mecs", { body: spec, headers: { "Idempotency-Key": key } });
    status.textContent = `MEC ${m.name} is ${m.status}: follow its progress in the list.`;
    announce(`Creating ${m.name} in ${m.region}.`);
    form().reset();
    touched.clear();
    setDefaults();
    await refresh();
  } catch (e) {
    status.textContent = "";
    const fields = { ...(e.fields || {}) };
    if (e.code === "NameTaken") fields.name = e.message;
    const { shown, rest } = showErrors(fields);
    const sentence = (t) => { t = String(t || "").trim(); t = t.charAt(0).toUpperCase() + t.slice(1); return /[.!?]$/.test(t) ? t : t + "."; };
    const msg = [e.message, ...rest].map(sentence).join(" ");
    ferr.textContent = shown.length ? `${msg} See the fields marked below.` : msg;
    ferr.hidden = false;
    focusFirstError();
  } finally {
    btn.disabled = false;
  }
}

function focusFirstError() {
  const bad = document.querySelector("[aria-invalid='true']");
  if (bad) bad.focus();
  else $("#form-error").hidden || $("#create-title").focus();
}

