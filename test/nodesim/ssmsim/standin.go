package ssmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// envHostURL tells a stand-in where its host's control API is.
const envHostURL = "MECD_SIM_HOST_URL"

// The stand-ins are this very binary under the names snap and microk8s (the
// host's bin/ holds symlinks to os.Executable()). This init runs before any
// test or main code of a binary that imports ssmsim and, under those names,
// turns the process into the stand-in and exits.
func init() {
	if slices.Contains(standIns, filepath.Base(os.Args[0])) {
		os.Exit(runStandInClient(filepath.Base(os.Args[0]), os.Args[1:]))
	}
}

// standIns are the tools a host's bin/ holds, first on its PATH: snap and
// microk8s, cloud-init, and the storage tools of Longhorn's node
// preparation (storage.go). A node script must use no other tool that
// changes the host: it would run on the machine the simulator runs on.
var standIns = []string{"snap", "microk8s", "cloud-init", "systemctl", "modprobe", "apt-get", "blkid", "mkfs.ext4", "mount", "mountpoint"}

type execRequest struct {
	Argv []string `json:"argv"`
}

type execResponse struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
}

// runStandInClient is the whole stand-in process: post argv to the Sim, print
// what it answers, exit with its code. All state lives in the Sim.
func runStandInClient(name string, args []string) int {
	base := os.Getenv(envHostURL)
	if base == "" {
		fmt.Fprintf(os.Stderr, "%s: not on a simulated host (%s is not set)\n", name, envHostURL)
		return 127
	}
	body, _ := json.Marshal(execRequest{Argv: append([]string{name}, args...)})
	// No proxy, whatever the environment says: the control API is on loopback.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Post(strings.TrimRight(base, "/")+"/exec", "application/json", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: simulator unreachable: %v\n", name, err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out execResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
		fmt.Fprintf(os.Stderr, "%s: simulator error %d: %s\n", name, resp.StatusCode, strings.TrimSpace(string(b)))
		return 1
	}
	_, _ = io.WriteString(os.Stdout, out.Stdout)
	_, _ = io.WriteString(os.Stderr, out.Stderr)
	return out.Exit
}

// result is a stand-in command's outcome.
type result struct {
	stdout, stderr string
	code           int
}

func success(stdout string) result           { return result{stdout: stdout} }
func fail(code int, stderr string) result    { return result{stderr: stderr, code: code} }
func failOut(code int, stdout string) result { return result{stdout: stdout, code: code} }

// handleExec serves POST /_sim/host/<id>/exec for the stand-ins.
func (s *Sim) handleExec(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var req execRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || len(req.Argv) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	h, inst, err := s.hostFor(id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	ctx, cancel := s.withSim(r.Context())
	defer cancel()
	res := s.runStandIn(ctx, h, inst, req.Argv)
	b, _ := json.Marshal(execResponse{Stdout: res.stdout, Stderr: res.stderr, Exit: res.code})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// runStandIn dispatches a stand-in command line. Faults come first, as a fault
// stands for the real tool failing whatever the state.
func (s *Sim) runStandIn(ctx context.Context, h *host, inst Instance, argv []string) result {
	// Log the command, never its arguments: tokens travel in them.
	sub := ""
	if len(argv) > 1 {
		sub = argv[1]
	}
	s.log.InfoContext(ctx, "stand-in", "instanceId", h.id, "tool", argv[0], "subcommand", sub)
	if f, failed := s.faults.CommandFault(inst.Tags, inst.LaunchIndex, argv); failed {
		s.log.InfoContext(ctx, "injected command fault", "instanceId", h.id, "tool", argv[0], "subcommand", sub, "exit", f.ExitCode)
		if argv[0] == "microk8s" && sub == "join" {
			s.joinFault(ctx, h, argv[2:])
			// join.py reports its failures with print(), on stdout
			// (microk8s scripts/wrappers/join.py: "Contacting cluster at",
			// "Connection failed. ...", exit 1, 4, 5 or 6).
			return failOut(f.ExitCode, withNewline(f.Stderr))
		}
		return fail(f.ExitCode, withNewline(f.Stderr))
	}
	switch argv[0] {
	case "cloud-init":
		return s.cloudInitCmd(ctx, h, argv[1:])
	case "snap":
		return s.snap(ctx, h, argv[1:])
	case "microk8s":
		return s.microk8s(ctx, h, argv[1:])
	case "systemctl", "modprobe", "apt-get", "blkid", "mkfs.ext4", "mount", "mountpoint":
		return s.storageTool(h, argv)
	}
	return fail(127, argv[0]+": command not found\n")
}

func withNewline(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

// ControlHandler serves the simulator's /_sim/ paths: the stand-ins' control
// API (/_sim/host/<id>/exec) and the IMDSv2 stand-in (/_sim/imds/<id>/...).
// It accepts the full path and, for a front that strips the mount point, the
// path without the /_sim prefix.
func (s *Sim) ControlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/_sim")
		p = strings.TrimPrefix(p, "/")
		kind, rest, _ := strings.Cut(p, "/")
		id, sub, _ := strings.Cut(rest, "/")
		if id == "" {
			http.NotFound(w, r)
			return
		}
		switch kind {
		case "host":
			if sub == "exec" {
				s.handleExec(w, r, id)
				return
			}
		case "imds":
			s.serveIMDS(w, r, id, "/"+sub)
			return
		}
		http.NotFound(w, r)
	})
}
