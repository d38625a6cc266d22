package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"

	"github.com/mecd/mecd/internal/mec"
)

// Where the observability addon puts Grafana: the kube-prometheus-stack
// release "kube-prom-stack" in namespace observability; the Grafana
// subchart's service is <release>-grafana, port 80 to the pod's 3000
// (microk8s-core-addons addons/observability/enable; grafana chart
// templates/_helpers.tpl and values.yaml). The chart's admin password is
// prom-operator, kept in the service's Secret under admin-password.
const (
	grafanaNamespace = "observability"
	grafanaService   = "svc/kube-prom-stack-grafana"
	grafanaSvcPort   = 80
)

var grafanaCmd = &command{
	name:    "grafana",
	args:    "ID|NAME",
	summary: "reach a MEC's Grafana (observability addon) on localhost through kubectl port-forward",
	detail: `Fetches the MEC's kubeconfig into a private temporary file (removed when the
command ends) and runs kubectl port-forward to the observability addon's
Grafana service, on 127.0.0.1 only. The port-forward is kubectl's own: install
kubectl, or name it with --kubectl or $KUBECTL. The Kubernetes API endpoint must
be reachable from here (the VPC, or a publicEndpoint MEC from apiAccessCidrs).
Ctrl-C stops it.

  mecctl grafana edge-1            # then open http://127.0.0.1:3000
  mecctl grafana edge-1 --port 8300`,
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 3000, "local port on 127.0.0.1")
		kubectl := fs.String("kubectl", "", "the kubectl to run (default $KUBECTL, else kubectl on PATH)")
		return func(ctx context.Context, args []string) error {
			if *port < 1 || *port > 65535 {
				return usagef("grafana", "--port must be 1-65535, got %d", *port)
			}
			c, m, err := a.target(ctx, "grafana", args)
			if err != nil {
				return err
			}
			if !slices.Contains(m.Spec.Addons, "observability") {
				return fmt.Errorf("MEC %s has no observability addon, and Grafana comes with it: create a MEC with --addons including observability", m.Name)
			}
			if m.Status != mec.Ready {
				return fmt.Errorf("MEC %s is %s: its Grafana is reachable once it is READY", m.Name, m.Status)
			}
			raw, err := c.Kubeconfig(ctx, m.ID)
			if err != nil {
				return err
			}
			f, err := os.CreateTemp("", "mecctl-grafana-*.kubeconfig") // mode 0600
			if err != nil {
				return fmt.Errorf("kubeconfig file: %w", err)
			}
			defer os.Remove(f.Name())
			if _, err := f.Write(raw); err != nil {
				_ = f.Close()
				return fmt.Errorf("kubeconfig file: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("kubeconfig file: %w", err)
			}
			bin := *kubectl
			if bin == "" {
				bin = a.getenv("KUBECTL")
			}
			if bin == "" {
				bin = "kubectl"
			}
			fmt.Fprintf(a.stdout, "Grafana of %s on http://127.0.0.1:%d (user admin; the password is the addon's, prom-operator unless changed:\n"+
				"  kubectl -n %s get secret kube-prom-stack-grafana -o jsonpath='{.data.admin-password}' | base64 -d). Ctrl-C stops.\n",
				m.Name, *port, grafanaNamespace)
			cmd := exec.CommandContext(ctx, bin, "--kubeconfig", f.Name(), "--namespace", grafanaNamespace,
				"port-forward", "--address", "127.0.0.1", grafanaService, strconv.Itoa(*port)+":"+strconv.Itoa(grafanaSvcPort))
			cmd.Stdout, cmd.Stderr = a.stdout, a.stderr
			err = cmd.Run()
			switch {
			case errors.Is(err, exec.ErrNotFound):
				return fmt.Errorf("%s not found: the port-forward is kubectl's; install kubectl or pass --kubectl", bin)
			case ctx.Err() != nil:
				return nil // Ctrl-C: the user stopped it
			case err != nil:
				return fmt.Errorf("kubectl port-forward to %s's Grafana: %w", m.Name, err)
			}
			return nil
		}
	},
}
