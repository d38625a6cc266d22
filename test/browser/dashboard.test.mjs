// A real browser on the dashboard: Debian's chromium, headless, driven by
// playwright-core (no downloaded browser). Run by `go test ./test/browser`,
// which starts the local runtime and the dashboard and passes:
//   DASHBOARD_URL  the dashboard (http://127.0.0.1:<port>/)
//   MEC_NAME       a unique name for the MEC this test creates and deletes
//   SEEDED         JSON of the seeded MECs ({"ready":[...],"failed":..,"slow":..})
//   CHROMIUM_PATH  default /usr/bin/chromium
//   ARTIFACTS      where screenshots go (default ../artifacts)
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.DASHBOARD_URL;
const name = process.env.MEC_NAME;
const seeded = JSON.parse(process.env.SEEDED || "{}");
const artifacts = process.env.ARTIFACTS || path.resolve("../artifacts");
assert.ok(base && name, "DASHBOARD_URL and MEC_NAME are required (go test ./test/browser sets them)");
mkdirSync(artifacts, { recursive: true });

const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);
const shot = async (page, file, opts = {}) => {
  await page.screenshot({ path: path.join(artifacts, file), fullPage: true, ...opts });
  log(`screenshot ${file}`);
};

const userDataDir = mkdtempSync(path.join(tmpdir(), "mecd-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
});
const problems = [];
let page;
try {
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // A refused request (the bad name's 400) is logged by chromium; that one is expected.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  // Only the dashboard's own origin: everything the page does goes through it.
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (!["blob:", "data:"].includes(u.protocol) && u.origin !== new URL(base).origin) problems.push(`request to ${r.url()}`);
  });

  // 1. The list: every seeded MEC, in its state, from every region.
  await page.goto(base + "?refresh=500");
  const card = (n) => page.getByRole("listitem", { name: n, exact: true });
  const badge = (n) => card(n).locator(".badge");
  for (const n of seeded.ready || []) await assert.doesNotReject(badge(n).filter({ hasText: "READY" }).waitFor(), `${n} READY`);
  if (seeded.failed) {
    await badge(seeded.failed).filter({ hasText: "FAILED" }).waitFor();
    assert.match(await card(seeded.failed).locator(".failure").innerText(), /Failed at install: .*snap/);
  }
  if (seeded.slow) {
    await badge(seeded.slow).filter({ hasText: "CREATING" }).waitFor();
    assert.match(await card(seeded.slow).locator(".progress").innerText(), /step \d+ of \d+: nodesOnline/);
  }
  const regions = await page.locator("#filter-region option").allInnerTexts();
  assert.ok(regions.length >= 3, `regions to filter by: ${regions}`);
  const factory = (seeded.ready || [])[0];
  if (factory) {
    const roles = await card(factory).locator("table.nodes tbody tr").allInnerTexts();
    assert.equal(roles.length, 3, "the factory MEC's nodes");
    assert.ok(roles.every((r) => r.includes("control-plane")), `roles: ${roles}`);
    assert.match(await card(factory).innerText(), /Expires\s+in 7h/);
  }
  await shot(page, "01-list.png");
  log("list shows every seeded MEC in its state");

  // 2. Accessibility basics: every form control is labelled, every button
  // named, status updates are announced.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea")]
    .filter((e) => e.type !== "hidden" && e.labels.length === 0 && !e.getAttribute("aria-label"))
    .map((e) => e.id || e.name));
  assert.deepEqual(unlabelled, [], "form controls without a label");
  const unnamed = await page.evaluate(() => [...document.querySelectorAll("button")]
    .filter((b) => !(b.getAttribute("aria-label") || b.textContent).trim()).map((b) => b.outerHTML));
  assert.deepEqual(unnamed, [], "buttons without a name");
  assert.equal(await page.locator('[aria-live="polite"]').count() >= 1, true, "an aria-live region");

  // 3. A bad name: the API's message, next to the field.
  const nameInput = page.getByLabel("Name", { exact: false }).first();
  await nameInput.fill("Bad_Name!");
  // Submitted with Enter in the field, as a keyboard user does: the list
  // above re-renders as it refreshes, and a click can land on a button the
  // layout just moved (seen: the submit never happened).
  await nameInput.press("Enter");
  const nameError = page.locator("#e-name");
  await nameError.waitFor({ state: "visible" });
  assert.match(await nameError.innerText(), /DNS-1123 label/);
  assert.equal(await nameInput.getAttribute("aria-invalid"), "true");
  // The form-level message comes with the API's answer, possibly after the field's live hint.
  // Generous: on 2 cores the API answers behind whatever else `make test` runs.
  await page.locator("#form-error").filter({ hasText: /not valid/ }).waitFor({ state: "visible", timeout: 30000 });
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-name", "focus moves to the bad field");
  await shot(page, "02-validation-error.png");
  log("a bad name shows the API's validation message next to the field");

  // 4. Create through the form and follow it to READY.
  await nameInput.fill(name);
  await page.getByLabel("Nodes", { exact: true }).fill("1");
  await page.getByLabel("Time to live", { exact: true }).fill("2h");
  await page.getByLabel("hostpath-storage").check();
  await page.getByText("Network, image, storage and tags").click();
  await page.getByLabel("Tags", { exact: true }).fill("team=edge\nowner=browser-test");
  await page.getByLabel("Data volumes per node", { exact: true }).fill("1");
  await page.getByLabel("Data volume size in GiB", { exact: true }).fill("20");
  await nameInput.press("Enter");
  await page.locator("#form-status").filter({ hasText: `MEC ${name} is CREATING` }).waitFor();
  assert.equal(await nameError.isHidden(), true, "the name error is gone");
  await card(name).waitFor();
  await shot(page, "03-creating.png");
  await badge(name).filter({ hasText: "READY" }).waitFor({ timeout: 60000 });
  const text = await card(name).innerText();
  assert.match(text, /Endpoint\s+https:\/\/\S+:16443/);
  assert.match(text, /1 \(1 control-plane\)/);
  assert.match(text, /Addons: dns enabled, hostpath-storage enabled/);
  await card(name).getByText(/^Steps \(\d+\)$/).click();
  assert.match(await card(name).locator("details.steps").innerText(), /ready succeeded/);
  await shot(page, "04-ready.png");
  log(`${name} reached READY`);

  // 5. Download its kubeconfig.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: `Download kubeconfig of ${name}` }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `${name}.kubeconfig.yaml`);
  const kubeconfig = readFileSync(await download.path(), "utf8");
  assert.match(kubeconfig, /apiVersion: v1/);
  assert.match(kubeconfig, /server: https:\/\//);
  await download.delete(); // a secret: never kept as an artifact
  log("kubeconfig downloaded");

  // 5b. Scale it to 2 nodes with the card's control, and follow it.
  await page.getByLabel(`Node count for ${name}`, { exact: true }).fill("2");
  await page.getByRole("button", { name: `Scale ${name}`, exact: true }).click();
  await page.waitForFunction((n) => document.querySelector("#announcer").textContent.includes(`Scaling ${n} to 2 nodes`), name);
  await badge(name).filter({ hasText: "READY" }).waitFor({ timeout: 60000 });
  await page.waitForFunction((n) => /2 \(1 control-plane, 1 worker\)/.test(document.querySelector(`[aria-labelledby^="t-"] h3`) &&
    [...document.querySelectorAll("li.mec")].find((li) => li.querySelector("h3").textContent === n).innerText), name, { timeout: 60000 });
  const scaled = await card(name).innerText();
  assert.match(scaled, /added by operation 1/, "the node history shows the new node");
  await card(name).getByText(/^Operations \(1\)$/).click();
  assert.match(await card(name).locator("details.operations").innerText(), /scale 1 → 2 succeeded/);
  await shot(page, "04b-scaled.png");
  log(`${name} scaled to 2 nodes`);

  // 6. Delete, with confirmation.
  await page.getByRole("button", { name: `Delete ${name}`, exact: true }).click();
  const dialog = page.getByRole("dialog", { name: `Delete MEC ${name}?` });
  await dialog.waitFor();
  await shot(page, "05-confirm-delete.png", { fullPage: false });
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await dialog.waitFor({ state: "hidden" });
  assert.equal(await badge(name).innerText(), "READY", "Cancel deletes nothing");
  await page.getByRole("button", { name: `Delete ${name}`, exact: true }).click();
  await dialog.getByRole("button", { name: `Delete ${name} now` }).click();
  // Screen readers are told (the announcer is visually hidden, so read its text).
  await page.waitForFunction((n) => document.querySelector("#announcer").textContent.includes(`Deleting ${n}`), name);
  await card(name).waitFor({ state: "detached", timeout: 60000 }); // DELETED ones are hidden by default
  await page.getByLabel("Status", { exact: true }).selectOption("DELETED");
  await badge(name).filter({ hasText: "DELETED" }).waitFor();
  await shot(page, "06-deleted.png");
  log(`${name} deleted`);

  // 7. A phone-sized screen: no sideways scrolling, the form reachable.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(base);
  await phone.getByRole("listitem").first().waitFor();
  const [scrollWidth, innerWidth] = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scrollWidth <= innerWidth, `page is ${scrollWidth}px wide on a ${innerWidth}px screen`);
  const submit = phone.getByRole("button", { name: "Create MEC" });
  await submit.scrollIntoViewIfNeeded();
  const box = await submit.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= innerWidth && box.height >= 32, `submit button box ${JSON.stringify(box)}`);
  await shot(phone, "07-phone.png");
  await phone.close();
  log("usable on a phone-sized screen");

  assert.deepEqual(problems, [], "page errors or foreign requests");
  log("PASS");
} catch (e) {
  if (page) await page.screenshot({ path: path.join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
  console.error(`FAIL after ${((Date.now() - t0) / 1000).toFixed(1)}s: ${e.stack || e}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
