package main

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/nodesim/latency"
)

type writer func(format string, args ...any)

func okRuns(res *results, keep func(*mecRun) bool) []*mecRun {
	var out []*mecRun
	for _, r := range res.Runs {
		if r.Err == nil && keep(r) {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Scale != b.Scale {
			return a.Scale < b.Scale
		}
		if a.Nodes != b.Nodes {
			return a.Nodes < b.Nodes
		}
		return a.Mode > b.Mode // typical before high
	})
	return out
}

func runLabel(r *mecRun) string { return fmt.Sprintf("%g %s", r.Scale, r.Mode) }

func renderRatio(w writer, res *results) {
	all := okRuns(res, func(*mecRun) bool { return true })
	runs := okRuns(res, func(r *mecRun) bool { return r.Nodes == 3 })
	if len(runs) == 0 {
		return
	}
	w("## 1. Orchestration overhead\n\n")
	w("MECs created one at a time with `POST /mecs` and deleted with `DELETE /mecs/{id}`: 3 nodes at every scale, and every node count at the largest scale and at the cost runs' scale. Time to READY = POST sent to the record's `readyAt`; time to DELETED = DELETE sent to `deletedAt`. Bounds (all scaled): **node work** = boot + max(agent online, install at first boot) + join + addons, where the install at first boot is snapd's seeding and then `snap install` (snapd takes no change before it seeded; the nodes install MicroK8s from their user data while the SSM agent starts); **+ AWS** adds the RunInstances call and one Run Command dispatch (node 0 finishes the build in the install-and-join command once every node joined). The bound is serial, as the seed's flow is: with more than one node, node 0 enables the addons a join cannot miss (dns, hostpath-storage, ingress, metrics-server, cert-manager) while the others join, so its ratio may be under 1; **simulator clocks** = the same path as the simulator timed it (slowest node launch to online, then each command sent to its slowest invocation done: dispatch + the script, its own overhead included). Not in any bound: IAM propagating a new instance profile before RunInstances accepts it (10 s typical, 20 s high, scaled), which a MEC that takes a spare node role made ahead does not wait for; each runtime's pool is filled by one warm-up MEC first, as on a stack in use.\n\n")
	w("| scale | mode | nodes | time to READY s | node-work bound s | ratio | + AWS s | ratio | simulator clocks s | ratio | time to DELETED s | terminate s | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range all {
		rd := r.readySeconds()
		term := r.Model[latency.Terminate]
		w("| %g | %s | %d | %s | %s | **%.2f** | %s | %.2f | %s | %.2f | %s | %s | **%.2f** |\n", r.Scale, r.Mode, r.Nodes, secs(rd),
			secs(r.nodeBound()), rd/r.nodeBound(), secs(r.awsBound()), rd/r.awsBound(), secs(r.actualBound()), rd/r.actualBound(),
			secs(r.deletedSeconds()), secs(term), r.deletedSeconds()/term)
	}
	w("\n")

	// One timeline column per (scale, mode): the first repetition.
	var cols []*mecRun
	seen := map[string]bool{}
	for _, r := range runs {
		if !seen[runLabel(r)] {
			seen[runLabel(r)] = true
			cols = append(cols, r)
		}
	}
	timelineTable(w, "### Where the time to READY goes (seconds; each stretch follows the previous one)", cols, (*mecRun).timeline)
	timelineTable(w, "### Where the time to DELETED goes (seconds)", cols, (*mecRun).teardownTimeline)

	w("### Node-online Wait loop and teardown loop\n\n")
	w("`check-nodes` waits inside its invocation, looking every `min(max(waited/50, poll/10, 50 ms), poll/2)` with poll = 10 s × scale (the look that sees the last node comes at most 2 % of the wait late). Overshoot = last node Online (running + modelled agent delay) to the look that saw it.\n\n")
	w("| scale | mode | nodes | online after s | checks | overshoot s | overshoot %% of the wait | cleanups | terminated -> DELETED s |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range okRuns(res, func(*mecRun) bool { return true }) {
		over, waited := r.onlineOvershoot()
		tl, _ := r.teardownTimeline()
		last := 0.0
		if len(tl) > 0 {
			last = tl[len(tl)-1].Seconds
		}
		w("| %g | %s | %d | %s | %d | %s | %.0f%% | %d | %s |\n", r.Scale, r.Mode, r.Nodes, secs(waited), r.Prov.Fns[provisionLoopTask].Count,
			secs(over), 100*over/max(waited, 1e-9), r.Tear.Fns[teardownLoopTask].Count, secs(last))
	}
	w("\n")

	w("### Script overhead per node command\n\n")
	w("Each invocation's script time less the simulated sleep inside it (join, after a reset: microk8s join; finalize, only when a join was retried: one `microk8s enable` call): bash, the snap/microk8s stand-ins, curl to IMDS and Parameter Store, python. The install column is different: that command waits for the install at first boot, then the joiners join while node 0 enables the addons a join cannot miss, and node 0 enables the others, verifies the nodes and stores the kubeconfig, so its time is mostly those waits and the modelled work, not overhead. Seconds, mean / max over the nodes.\n\n")
	w("| scale | mode | nodes | install | join | finalize | modelled install / join / addons |\n|---|---|---|---|---|---|---|\n")
	for _, r := range okRuns(res, func(*mecRun) bool { return true }) {
		ov := r.scriptOverhead()
		cell := func(step string) string {
			if len(ov[step]) == 0 {
				return "-"
			}
			return fmt.Sprintf("%s / %s", secs(meanF(ov[step])), secs(maxF(ov[step])))
		}
		w("| %g | %s | %d | %s | %s | %s | %s / %s / %s |\n", r.Scale, r.Mode, r.Nodes, cell("install"), cell("join"), cell("finalize"),
			secs(r.Model[latency.SnapInstall]), secs(r.Model[latency.Join]), secs(r.Model[latency.Addons]))
	}
	w("\n")
}

func timelineTable(w writer, title string, cols []*mecRun, f func(*mecRun) ([]segment, error)) {
	var names []string
	kinds := map[string]string{}
	vals := map[string]map[string]float64{}
	for _, c := range cols {
		segs, err := f(c)
		if err != nil {
			continue
		}
		vals[runLabel(c)] = map[string]float64{}
		for _, s := range segs {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
			kinds[s.Name] = s.Kind
			vals[runLabel(c)][s.Name] += s.Seconds
		}
	}
	if len(names) == 0 {
		return
	}
	w("%s\n\n| stretch | kind |", title)
	for _, c := range cols {
		w(" %s |", runLabel(c))
	}
	w("\n|---|---|%s\n", strings.Repeat("---|", len(cols)))
	for _, n := range names {
		w("| %s | %s |", n, kinds[n])
		for _, c := range cols {
			if v, ok := vals[runLabel(c)][n]; ok {
				w(" %s |", secs(v))
			} else {
				w(" - |")
			}
		}
		w("\n")
	}
	for _, kind := range []string{"orchestration", "node", "AWS"} {
		w("| **total %s** | |", kind)
		for _, c := range cols {
			t, all := 0.0, 0.0
			for n, v := range vals[runLabel(c)] {
				all += v
				if kinds[n] == kind {
					t += v
				}
			}
			w(" %s (%.0f%%) |", secs(t), 100*t/max(all, 1e-9))
		}
		w("\n")
	}
	w("\n")
}

func renderCost(w writer, res *results) {
	runs := okRuns(res, func(*mecRun) bool { return true })
	if len(runs) == 0 {
		return
	}
	w("## 2. Cost per MEC\n\n")
	w("**State transitions** are counted, not read (kumo keeps no execution history): every state entered is one, retries included. Walking the ASL's success path gives provision = 5 + 3k (prepare, launch, its choice, k × (check, choice), k−1 waits, install-and-join, finalize, ready; k is 1 unless the nodes take longer than a check-nodes invocation may wait) and teardown = 1 + 3c (deleting, c × (cleanup, choice), c−1 waits, deleted), where k and c are the invocations of `check-nodes` and `cleanup` counted at the front; a launch that waits for the node profile adds three (wait, launch, choice); any other task invocation beyond the path's (a retry, the join's reset and second join) adds one. `make bench` checks both formulas against a walk of `statemachine/*.asl.json` for k, c = 1..30 before measuring. **Lambda invocations and billed ms** are timed at the Runtime API in the front (event handed to the process -> result posted, rounded up to 1 ms per invocation), for synchronous (Step Functions, API Gateway) and EventBridge invocations alike; GB-s use each function's configured memory. **AWS API calls** are every call the front saw from the Lambdas and the node scripts (Parameter Store), without kumo's own Lambda invokes and the client's API requests. $ = transitions × $0.025/1000 + invocations × $0.20/M + GB-s × $0.0000133334 (Step Functions Standard, Lambda arm64, us-east-1 list prices; DynamoDB, EC2 and SSM requests not priced). Handler durations are local (AWS calls answered by kumo in-process in about a millisecond), so billed ms on AWS will be higher.\n\nSuccess paths walked: %s.\n\n", res.Transitions.Checked)
	w("| scale | mode | nodes | transitions (provision + teardown) | checks k / cleanups c | Lambda invocations (prov + teardown) | billed ms | GB-s | AWS API calls | $ per MEC |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		pt, k := provisionTransitions(r.Prov, 1)
		tt, cl := teardownTransitions(r.Tear, 1)
		all := r.Prov.add(r.Tear)
		inv := all.invocations()
		cost := float64(pt+tt)*priceTransition + float64(inv)*priceRequest + all.gbSeconds()*priceGBs
		w("| %g | %s | %d | **%d** (%d + %d) | %d / %d | %d (%d + %d) | %d | %.3f | %d | $%.5f |\n", r.Scale, r.Mode, r.Nodes,
			pt+tt, pt, tt, k, cl, inv, r.Prov.invocations(), r.Tear.invocations(), all.billedMs(), all.gbSeconds(), all.awsCalls(), cost)
	}
	w("\n")

	// Per function and per API action at the cost scale.
	cost := okRuns(res, func(r *mecRun) bool { return r.Scale == res.Opts.costScale })
	if len(cost) == 0 {
		return
	}
	w("### Lambda invocations per function (scale %g; invocations / billed ms, provision + teardown)\n\n| function | memory MB |", res.Opts.costScale)
	for _, r := range cost {
		w(" %d nodes %s |", r.Nodes, r.Mode)
	}
	w("\n|---|---|%s\n", strings.Repeat("---|", len(cost)))
	for _, f := range backend.Functions {
		w("| %s | %d |", f.Name, f.MemoryMB)
		for _, r := range cost {
			u := r.Prov.add(r.Tear).Fns[f.Name]
			if u.Count == 0 {
				w(" - |")
			} else {
				w(" %d / %d |", u.Count, u.BilledMs())
			}
		}
		w("\n")
	}
	w("\n### AWS API calls by service:action (scale %g, provision + teardown)\n\n| call |", res.Opts.costScale)
	for _, r := range cost {
		w(" %d nodes %s |", r.Nodes, r.Mode)
	}
	w("\n|---|%s\n", strings.Repeat("---|", len(cost)))
	keys := map[string]bool{}
	for _, r := range cost {
		for k := range r.Prov.add(r.Tear).Calls {
			keys[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		label := k
		switch {
		case k == "lambda:Invoke":
			label += " (kumo invoking the functions; not counted below)"
		case strings.HasPrefix(k, "execute-api:"):
			label += " (the client; not counted below)"
		}
		w("| %s |", label)
		for _, r := range cost {
			if n := r.Prov.add(r.Tear).Calls[k]; n > 0 {
				w(" %d |", n)
			} else {
				w(" - |")
			}
		}
		w("\n")
	}
	w("| **AWS API calls** |")
	for _, r := range cost {
		w(" **%d** |", r.Prov.add(r.Tear).awsCalls())
	}
	w("\n\n")
}

func renderScale(w writer, res *results) {
	if len(res.Scale) > 0 {
		w("## 3. Scale\n\n")
		r0 := res.Scale[0]
		w("N MECs of %d nodes created at once (N concurrent `POST /mecs`), followed to READY on the table, then all deleted at once (N concurrent `DELETE`) and followed to DELETED; then the leak audit over every cluster (instances not terminated, security groups, node roles and instance profiles, `/mecd/` parameters). Latency scale %g (the workflow's waits and timeouts scale with it); %d Lambda processes per function, kumo's SFN gives up on an invoke not answered in 30 s (on AWS, Lambda scales to the account's concurrency instead). Wall time = first POST sent to the last `readyAt`.\n\n", r0.Nodes, r0.Scale, r0.Processes)
		w("| MECs | all READY | wall to last READY s | time to READY p50 / p99 / max s | POST latency p50 / p99 ms | API errors | transitions per MEC | Lambda invocations per MEC | wall to last DELETED s | leak audit | kumo peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range res.Scale {
			ready := fmt.Sprintf("%d/%d", r.Ready, r.N)
			if r.Ready == r.N {
				ready = "yes (" + ready + ")"
			} else {
				ready = "**no** (" + ready + ")"
			}
			pt, _ := provisionTransitions(r.Prov, max(r.Ready, 1))
			tt, _ := teardownTransitions(r.Tear, max(r.Deleted, 1))
			leaks := "empty"
			if len(r.Leaks) > 0 {
				leaks = fmt.Sprintf("**%d left**", len(r.Leaks))
			}
			if r.Err != nil {
				leaks += " (" + clip(r.Err.Error(), 120) + ")"
			}
			w("| %d | %s | %s | %s / %s / %s | %s / %s | %d | %.1f | %.1f | %s | %s | %s |\n", r.N, ready, secs(r.Wall.Seconds()),
				secs(pct(r.ToReady, 50).Seconds()), secs(pct(r.ToReady, 99).Seconds()), secs(maxDur(r.ToReady).Seconds()),
				ms(pct(r.PostLatency, 50)), ms(pct(r.PostLatency, 99)), len(r.APIErrors),
				float64(pt+tt)/float64(max(r.Ready, 1)), float64(r.Prov.add(r.Tear).invocations())/float64(max(r.Ready, 1)),
				secs(r.DeleteWall.Seconds()), leaks, mib(r.KumoHWM))
		}
		w("\n")
		scaleSteps(w, res.Scale)
		for _, r := range res.Scale {
			for _, e := range append(append([]string(nil), r.APIErrors...), r.Failed...) {
				w("- %d MECs: %s\n", r.N, clip(e, 300))
			}
			for _, l := range r.Leaks {
				w("- %d MECs: leaked %s\n", r.N, l)
			}
			for _, f := range r.Retried {
				w("- %d MECs: READY after a retry: %s\n", r.N, f)
			}
			if len(r.OtherLeaks) > 0 {
				w("- after the %d MECs, the audit also found %d resources of earlier measurements (listed there)\n", r.N, len(r.OtherLeaks))
			}
		}
		w("\n")
	}
	if l := res.List; l != nil {
		w("### List latency with %d records\n\n", l.Records)
		w("%d READY 3-node records (copies of a real one, spread over four regions) written straight through `store.Store.Create` on kumo's DynamoDB (not the API: %.1f s, %.0f records/s), then `GET /mecs` through kumo's API Gateway, one request at a time. Client = through the front and API Gateway; handler = the api function alone.\n\n",
			l.Records, l.InsertTime.Seconds(), float64(l.Records)/max(l.InsertTime.Seconds(), 1e-9))
		if l.Err != nil {
			w("Failed: %s\n\n", clip(l.Err.Error(), 300))
		}
		w("| request | samples | client p50 / p99 ms | handler p50 / p99 ms |\n|---|---|---|---|\n")
		row := func(name, key string, ds []time.Duration) {
			if len(ds) == 0 {
				return
			}
			h := l.Handler[key]
			w("| %s | %d | %s / %s | %s / %s |\n", name, len(ds), ms(pct(ds, 50)), ms(pct(ds, 99)), ms(pct(h, 50)), ms(pct(h, 99)))
		}
		row("`GET /mecs?limit=100` (first page)", "first page", l.FirstPage)
		if len(l.Direct) > 0 {
			w("| the same page read by `store.Store.List` straight from kumo (no API Gateway, no Lambda) | %d | %s / %s | - |\n", len(l.Direct), ms(pct(l.Direct, 50)), ms(pct(l.Direct, 99)))
		}
		row(fmt.Sprintf("every page of a full listing (`nextToken`, %d items)", l.PagedItems), "paging", l.Paging)
		row("`GET /mecs?status=READY&limit=100` (byStatus index)", "status filter", l.Status)
		row("`GET /mecs?region=eu-central-1&limit=100` (filter, a quarter match)", "region filter", l.Region)
		w("\n")
	}
}

func renderLambda(w writer, res *results) {
	if len(res.Sizes) == 0 && len(res.Cold) == 0 {
		return
	}
	w("## 4. Lambda\n\n")
	w("Binary: `build/<fn>/bootstrap` from `make build` (linux/arm64, `-trimpath -ldflags \"-s -w\"`), and deflated in a zip as deployed. Cold start: the runtime's host build (%s/%s, not arm64) started %s on a Runtime API of the benchmark's own; init = exec to the first poll of `/runtime/invocation/next` (median of the samples); first invocation = event handed out to result posted (a synthetic event: a real record read for `api`, an unknown cluster id for the steps, which answer an error after one DynamoDB read); VmHWM = peak RSS after that first invocation. Warm peak RSS = the runtime's own processes after serving every run at scale %g. Handler p50 / p99 = every invocation those processes served.\n\n",
		runtime.GOOS, runtime.GOARCH, coldSamples(res), res.HandlersScale)
	w("| function | memory MB | binary MiB | zip MiB | cold init p50 / max ms | first invocation ms | VmHWM after first MiB | warm peak RSS MiB | invocations | handler p50 / p99 ms |\n|---|---|---|---|---|---|---|---|---|---|\n")
	cold := map[string]coldStart{}
	for _, c := range res.Cold {
		cold[c.Fn] = c
	}
	sizes := map[string]binSize{}
	for _, s := range res.Sizes {
		sizes[s.Fn] = s
	}
	for _, f := range backend.Functions {
		s, c, h := sizes[f.Name], cold[f.Name], res.Handlers[f.Name]
		bin, zip := "-", "-"
		if s.Err == nil && s.Bytes > 0 {
			bin, zip = mibBytes(s.Bytes), mibBytes(s.ZipBytes)
		}
		initCell, inv, hwm := "-", "-", "-"
		if len(c.Init) > 0 {
			initCell = fmt.Sprintf("%s / %s", ms(pct(c.Init, 50)), ms(maxDur(c.Init)))
			inv = fmt.Sprintf("%s (%s)", ms(pct(c.Invoke, 50)), c.Outcome)
			hwm = mib(c.HWMkB)
		}
		warm := "-"
		if kb := res.Warm[f.Name]; kb > 0 {
			warm = mib(kb)
		}
		hd := "-"
		if len(h.Durations) > 0 {
			hd = fmt.Sprintf("%s / %s", ms(pct(h.Durations, 50)), ms(pct(h.Durations, 99)))
		}
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %d | %s |\n", f.Name, f.MemoryMB, bin, zip, initCell, inv, hwm, warm, h.Count, hd)
	}
	w("\n")
	for _, s := range res.Sizes {
		if s.Err != nil {
			w("- %s: %s\n", s.Fn, s.Err)
		}
	}
	for _, c := range res.Cold {
		if c.Err != nil {
			w("- cold start %s: %s\n", c.Fn, clip(c.Err.Error(), 300))
		}
	}
	if len(res.APILat) > 0 {
		w("### API latency through kumo's API Gateway\n\nOne request at a time. Client = through the front and kumo's API Gateway (HTTP); handler = the api function alone (Runtime API). Each POST creates a 1-node MEC, which is deleted at once (DELETE while CREATING stops its provisioning) and followed to DELETED before the next POST.\n\n")
		w("| route | samples | client p50 / p99 ms | handler p50 / p99 ms |\n|---|---|---|---|\n")
		for _, a := range res.APILat {
			w("| %s | %d | %s / %s | %s / %s |\n", a.Route, len(a.Client), ms(pct(a.Client, 50)), ms(pct(a.Client, 99)), ms(pct(a.Handler, 50)), ms(pct(a.Handler, 99)))
		}
		w("\n")
		for _, a := range res.APILat {
			if a.Err != nil {
				w("- %s: %s\n", a.Route, strings.ReplaceAll(a.Err.Error(), "\n", " "))
			}
		}
		w("\n")
	}
}

func coldSamples(res *results) string {
	n := 0
	for _, c := range res.Cold {
		n = max(n, len(c.Init))
	}
	return fmt.Sprintf("%d times each", n)
}

// scaleSteps shows which steps stretch when many MECs run at once.
func scaleSteps(w writer, runs []*scaleRun) {
	order := []string{startToPrepare, mec.StepResolve, mec.StepSecurityGroup, mec.StepLaunch, mec.StepNodesOnline,
		mec.StepInstall, mec.StepJoinToken, mec.StepJoin, mec.StepFinalize, mec.StepAddons, mec.StepVerify,
		mec.StepKubeconfig}
	w("Step durations of the READY MECs, from their records (seconds, p50 / max): the stretches that grow with N are where the local runtime queues.\n\n| step |")
	for _, r := range runs {
		w(" %d MECs |", r.N)
	}
	w("\n|---|%s\n", strings.Repeat("---|", len(runs)))
	for _, step := range order {
		w("| %s |", step)
		for _, r := range runs {
			xs := r.Steps[step]
			if len(xs) == 0 {
				w(" - |")
				continue
			}
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			w(" %s / %s |", secs(sorted[(len(sorted)-1)/2]), secs(sorted[len(sorted)-1]))
		}
		w("\n")
	}
	w("\n")
}

func renderOps(w writer, res *results) {
	if len(res.Ops) == 0 {
		return
	}
	w("## 5. Day-2 operations\n\n")
	w("One 3-node MEC at the cost runs' scale, typical latencies: `PATCH /mecs/{id}` to 4 nodes, followed to READY; then that new worker's instance terminated behind mecd's back, a sweep (invoked: schedules never fire locally) finds it, and the repair is followed to READY. Seconds run from the PATCH, or from the loss, to READY (the repair's include the sweep's look). Transitions are counted as in section 2, from a walk of `statemachine/scale.asl.json` with k online checks and c looks for the removed instances (%s); Lambda invocations include the sweeper's.\n\n", res.Transitions.OpsChecked)
	w("| operation | seconds | transitions | checks k / looks c | Lambda invocations | by function | AWS API calls |\n|---|---|---|---|---|---|---|\n")
	for _, r := range res.Ops {
		if r.Err != nil {
			w("| %s | failed: %s | | | | | |\n", r.What, clip(r.Err.Error(), 120))
			continue
		}
		w("| %s | %.2f | **%d** | %d / %d | %d | %s | %d |\n", r.What, r.Seconds, r.Transitions, r.Checks, r.Releases,
			r.Use.invocations(), fnCounts(r.Use), r.Use.awsCalls())
	}
	w("\n")
}

// fnCounts is "fn n, ..." in name order.
func fnCounts(u usage) string {
	var names []string
	for fn := range u.Fns {
		names = append(names, fn)
	}
	sort.Strings(names)
	var parts []string
	for _, fn := range names {
		parts = append(parts, fmt.Sprintf("%s %d", fn, u.Fns[fn].Count))
	}
	return strings.Join(parts, ", ")
}
