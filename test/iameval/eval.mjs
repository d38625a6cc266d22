// eval.mjs: AWS's IAM policy evaluation (@cloud-copilot/iam-simulate, pinned
// in package.json) as a process the Go tests talk to. One JSON request per
// line on stdin, {"id": n, "simulation": {...}} (iam-simulate's Simulation);
// one JSON answer per line on stdout, {"id": n, "result": "Allowed" |
// "ExplicitlyDenied" | "ImplicitlyDenied", "ignored": [context keys the
// action does not take], "error": "..."}. It exits when stdin closes.
import { createInterface } from 'node:readline';
import { runSimulation } from '@cloud-copilot/iam-simulate';

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let id = null;
  try {
    const req = JSON.parse(line);
    id = req.id;
    const res = await runSimulation(req.simulation, { simulationMode: 'Strict' });
    if (res.resultType === 'error') {
      process.stdout.write(JSON.stringify({ id, error: JSON.stringify(res.errors) }) + '\n');
      continue;
    }
    const one = res.resultType === 'single' ? res.result : res.results[0];
    process.stdout.write(JSON.stringify({ id, result: res.overallResult, ignored: one?.ignoredContextKeys ?? [] }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ id, error: String(e && e.stack || e) }) + '\n');
  }
}
