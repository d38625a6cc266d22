// Command mecd-bench measures mecd on the local runtime (kumo as a process,
// the node simulator, the real Lambda binaries and ASL) and writes the
// results into BENCHMARKS.md (DESIGN section 9): orchestration overhead,
// cost per MEC, scale, and each Lambda's size, cold start and memory.
//
//	mecd-bench [-kumo bin/kumo] [-build build] [-out BENCHMARKS.md] [-quick]
//
// Speed and cost are measured here, never by timed tests. Each latency
// scale gets its own local runtime (the workflow's waits scale with it),
// one after another; every process started is stopped by its pid. The
// runtime waits for the local-runtime lock other test binaries hold.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/latency"
)

func main() { localrt.RunCommand("mecd-bench", run) }

type options struct {
	kumo, build, out string
	ratioScales      []float64
	ratioNodes       []int
	costScale        float64
	costNodes        []int
	reps             int
	scaleScale       float64
	scaleMECs        []int
	scaleNodes       int
	listRecords      int
	processes        int
	scaleProcesses   int
	budget           time.Duration
	sections         map[string]bool
}

func parseOptions() (options, error) {
	var o options
	fs := flag.NewFlagSet("mecd-bench", flag.ContinueOnError)
	fs.StringVar(&o.kumo, "kumo", "bin/kumo", "kumo binary (`make bench` builds it from the pinned module)")
	fs.StringVar(&o.build, "build", "build", "where `make build` put <function>/bootstrap (linux/arm64)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "report to write (the part between its generated markers is replaced)")
	ratio := fs.String("scales", "0.02,0.1,0.25", "latency scales of the overhead-ratio runs (3-node MECs, typical and high)")
	ratioNodes := fs.String("ratio-nodes", "1,3,5,10", "node counts of the overhead-ratio runs at the largest of -scales, once each (3 nodes -reps times at the others)")
	fs.Float64Var(&o.costScale, "cost-scale", 0.02, "latency scale of the cost runs, API latency, cold starts and list latency")
	nodes := fs.String("nodes", "1,3,5,10", "node counts of the cost runs")
	fs.IntVar(&o.reps, "reps", 2, "repetitions of each overhead-ratio run")
	fs.Float64Var(&o.scaleScale, "scale-scale", 0.05, "latency scale of the concurrent-MEC runs")
	mecs := fs.String("mecs", "10,50,100", "MECs created at once in the scale runs")
	fs.IntVar(&o.scaleNodes, "scale-nodes", 3, "nodes per MEC in the scale runs")
	fs.IntVar(&o.listRecords, "list-records", 10000, "records in the table for the list latency")
	fs.IntVar(&o.processes, "processes", 4, "Lambda processes per function")
	fs.IntVar(&o.scaleProcesses, "scale-processes", 16, "Lambda processes per function in the runtime of the scale runs (its local Lambda concurrency)")
	fs.DurationVar(&o.budget, "budget", 40*time.Minute, "skip what would start after this much time")
	only := fs.String("only", "ratio,cost,scale,lambda,list,ops", "sections to run")
	quick := fs.Bool("quick", false, "a small smoke run: one scale, few MECs, few records")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	if *quick {
		// Smaller defaults; flags given explicitly still win.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"scales": "0.02", "ratio-nodes": "3", "nodes": "1,3", "mecs": "5", "scale-scale": "0.02", "list-records": "300", "reps": "1"} {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	var err error
	if o.ratioScales, err = floats(*ratio); err != nil {
		return o, err
	}
	if o.costNodes, err = ints(*nodes); err != nil {
		return o, err
	}
	if o.ratioNodes, err = ints(*ratioNodes); err != nil {
		return o, err
	}
	if o.scaleMECs, err = ints(*mecs); err != nil {
		return o, err
	}
	o.sections = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		o.sections[strings.TrimSpace(s)] = true
	}
	return o, nil
}

func run(ctx context.Context) error {
	o, err := parseOptions()
	if err != nil {
		return err
	}
	root, err := backend.RepoRoot(".")
	if err != nil {
		return err
	}
	res := &results{Started: time.Now(), Opts: o, Cond: readConditions(root)}
	if res.Transitions, err = newTransitionModel(root); err != nil {
		return fmt.Errorf("transition count: %w", err)
	}
	if o.sections["lambda"] {
		res.Sizes = binarySizes(o.build)
	}
	logf := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(res.Started).Seconds(), fmt.Sprintf(format, args...))
	}
	over := func(what string) bool {
		if time.Since(res.Started) > o.budget {
			res.note("%s: skipped, the %v budget was spent", what, o.budget)
			return true
		}
		return ctx.Err() != nil
	}

	var scales []float64
	if o.sections["ratio"] {
		scales = append(scales, o.ratioScales...)
	}
	if o.sections["cost"] || o.sections["lambda"] || o.sections["list"] || o.sections["ops"] {
		scales = append(scales, o.costScale)
	}
	if o.sections["scale"] {
		scales = append(scales, o.scaleScale)
	}
	slices.Sort(scales)
	scales = slices.Compact(scales)
	existing := "" // a MEC id whose record the API latency and cold starts read
	for _, sc := range scales {
		if over(fmt.Sprintf("runtime at scale %g", sc)) {
			continue
		}
		logf("starting the local runtime at scale %g (waits for the lock if another runtime holds 127.0.0.1:4566)", sc)
		procs, waiters := o.processes, 0
		if o.sections["scale"] && sc == o.scaleScale {
			procs, waiters = o.scaleProcesses, slices.Max(o.scaleMECs)
		}
		e, err := startEnv(ctx, o.kumo, sc, procs, waiters)
		if err != nil {
			res.note("scale %g: %v", sc, err)
			continue
		}
		res.Startups = append(res.Startups, startup{sc, procs, e.startup, loadavg()})
		logf("runtime up in %v", e.startup.Round(time.Millisecond))
		func() {
			defer e.close()
			tag := strings.ReplaceAll(strconv.FormatFloat(sc, 'f', -1, 64), ".", "")
			one := func(mode latency.Mode, n, rep int) *mecRun {
				name := fmt.Sprintf("b%s-%s-n%d-%d-%d", tag, mode, n, rep, time.Now().Unix()%100000)
				r := e.runMEC(ctx, mode, n, name)
				if r.Err != nil {
					logf("  %s: %v", name, r.Err)
					res.note("run %s (scale %g, %s, %d nodes): %v", name, sc, mode, n, r.Err)
				} else {
					logf("  %s: READY in %.2fs, DELETED in %.2fs", name, r.readySeconds(), r.deletedSeconds())
					existing = r.ID
					for _, f := range r.Retried {
						logf("    retried: %s", f)
						res.note("run %s (scale %g, %s, %d nodes) reached READY after a retry: %s", name, sc, mode, n, f)
					}
					if len(r.Leaks) > 0 {
						res.note("run %s: leak audit after DELETED: %s", name, strings.Join(r.Leaks, "; "))
					}
					if r.Ready != nil && r.Ready.NodeRole == "" {
						res.note("run %s (scale %g, %s, %d nodes) made a node role of its own (no spare was free): it waited for IAM to propagate it", name, sc, mode, n)
					}
				}
				res.Runs = append(res.Runs, r)
				return r
			}
			if o.sections["ratio"] && slices.Contains(o.ratioScales, sc) {
				if err := e.warmSpares(ctx, fmt.Sprintf("w%s-%d", tag, time.Now().Unix()%100000)); err != nil {
					res.note("scale %g: %v (the first run makes its own node role)", sc, err)
				}
				if sc == slices.Max(o.ratioScales) {
					// Every node count once, at the scale where the scripts'
					// unscaled overhead weighs least.
					for _, n := range o.ratioNodes {
						for _, mode := range []latency.Mode{latency.Typical, latency.High} {
							if !over("overhead run") {
								one(mode, n, 0)
							}
						}
					}
				} else {
					for rep := range o.reps {
						for _, mode := range []latency.Mode{latency.Typical, latency.High} {
							if !over("overhead run") {
								one(mode, 3, rep)
							}
						}
					}
				}
			}
			if o.sections["cost"] && sc == o.costScale {
				for _, n := range o.costNodes {
					for _, mode := range []latency.Mode{latency.Typical, latency.High} {
						if n == 3 && o.sections["ratio"] && slices.Contains(o.ratioScales, sc) {
							continue // the overhead runs were these
						}
						if !over("cost run") {
							one(mode, n, 0)
						}
					}
				}
			}
			for _, r := range res.Runs {
				if r.Ready != nil && r.Nodes == 3 && res.template == nil {
					res.template = r.Ready // the list's records are copies of a READY 3-node record
				}
			}
			if sc == o.costScale && o.sections["ops"] && !over("day-2 operations") {
				logf("day-2 operations: scale up by 1, repair of 1 lost node")
				res.Ops = e.runOps(ctx, res.Transitions.ops, fmt.Sprintf("o%s-%d", tag, time.Now().Unix()%100000))
				for _, r := range res.Ops {
					if r.Err != nil {
						logf("  %s: %v", r.What, r.Err)
						res.note("day-2 operation %s: %v", r.What, r.Err)
					} else {
						logf("  %s: READY in %.2fs, %d transitions, %d invocations", r.What, r.Seconds, r.Transitions, r.Use.invocations())
					}
				}
			}
			if sc == o.costScale && o.sections["lambda"] && !over("lambda") {
				if existing == "" {
					res.note("lambda: no MEC record to read (every run failed); API latency and api cold start not measured")
				} else {
					logf("API latency through kumo's API Gateway")
					res.APILat = e.apiLatencies(ctx, existing, 200, 30)
					logf("cold starts")
					res.Cold = e.coldStarts(ctx, existing, 5)
				}
				res.Warm = e.warmMemory()
				res.Handlers = snapshot{}.until(e.snapshot()).Fns
				res.HandlersScale = sc
			}
			if sc == o.costScale && o.sections["list"] && !over("list") {
				if res.template == nil {
					res.note("list: no READY record to copy")
				} else {
					logf("list latency with %d records", o.listRecords)
					res.List = e.runList(ctx, res.template, o.listRecords, 50)
					if res.List.Err != nil {
						logf("  list: %v", res.List.Err)
					}
				}
			}
			if sc == o.scaleScale && o.sections["scale"] {
				for _, n := range o.scaleMECs {
					if over(fmt.Sprintf("scale run of %d MECs", n)) {
						break
					}
					logf("%d MECs of %d nodes at once", n, o.scaleNodes)
					r := e.runScale(ctx, n, o.scaleNodes, fmt.Sprintf("s%d-%d", n, time.Now().Unix()%100000), 280*time.Second)
					logf("  %d/%d READY, wall %v, API errors %d, leaks %d, err %v", r.Ready, n, r.Wall.Round(time.Millisecond), len(r.APIErrors), len(r.Leaks), r.Err)
					res.Scale = append(res.Scale, r)
				}
			}
		}()
		logf("runtime at scale %g stopped", sc)
	}
	res.Ended = time.Now()
	if err := writeReport(o.out, res); err != nil {
		return err
	}
	logf("wrote %s", o.out)
	if path, err := writeJSON(res); err != nil {
		return err
	} else if path != "" {
		logf("wrote %s", path)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return nil
}

func floats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("not a positive number: %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("not a positive whole number: %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}
