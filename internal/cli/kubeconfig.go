package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/mecd/mecd/internal/mec"
)

var kubeconfigCmd = &command{
	name:    "kubeconfig",
	args:    "ID|NAME",
	summary: "merge a READY MEC's kubeconfig into ~/.kube/config (or write it to a file)",
	detail: `By default the cluster, user and context are added to the kubeconfig kubectl
uses ($KUBECONFIG's first existing file, else ~/.kube/config), all named after
the MEC, and the context becomes the current one. An entry of that name that
differs is never replaced silently: mecctl refuses unless --force (or pick
another name with --context).

  mecctl kubeconfig edge-1 && kubectl get nodes
  mecctl kubeconfig edge-1 -o edge-1.yaml
  mecctl kubeconfig edge-1 -o - | less`,
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		out := fs.String("o", "", "write a standalone kubeconfig to this file (- for stdout) instead of merging")
		path := fs.String("kubeconfig", "", "the kubeconfig to merge into (default: $KUBECONFIG's first existing file, else ~/.kube/config)")
		ctxName := fs.String("context", "", "name of the context, cluster and user (default: the MEC's name)")
		force := fs.Bool("force", false, "replace entries of the same name, or an existing -o file")
		setCurrent := fs.Bool("set-current", true, "make the MEC's context the current one (=false leaves it)")
		return func(ctx context.Context, args []string) error {
			if *out != "" && *path != "" {
				return usagef("kubeconfig", "-o writes a file of its own; --kubeconfig is for merging: give one of them")
			}
			c, m, err := a.target(ctx, "kubeconfig", args)
			if err != nil {
				return err
			}
			if m.Status != mec.Ready {
				return fmt.Errorf("MEC %s is %s: its kubeconfig exists once it is READY", m.Name, m.Status)
			}
			raw, err := c.Kubeconfig(ctx, m.ID)
			if err != nil {
				return err
			}
			name := *ctxName
			if name == "" {
				name = m.Name
			}
			entries, err := mecEntries(raw, name)
			if err != nil {
				return fmt.Errorf("kubeconfig of %s: %w", m.Name, err)
			}
			if *out != "" {
				return a.writeStandalone(*out, entries, *force)
			}
			dest, others := a.kubeconfigPaths(*path)
			res, err := mergeInto(dest, others, entries, *force, *setCurrent)
			if err != nil {
				return err
			}
			verb := "Added"
			switch {
			case res.replaced:
				verb = "Replaced"
			case res.unchanged:
				verb = "Already had"
			}
			fmt.Fprintf(a.stdout, "%s context %q (cluster %s) in %s.\n", verb, name, m.Endpoint, dest)
			if *setCurrent {
				fmt.Fprintf(a.stdout, "Current context is now %q: kubectl get nodes\n", name)
			} else {
				fmt.Fprintf(a.stdout, "Use it: kubectl --context %s get nodes\n", name)
			}
			return nil
		}
	},
}

// kubeEntries are a MEC's cluster, user and context entries, named alike.
type kubeEntries struct {
	name                   string
	cluster, user, context *yaml.Node // the entries' mapping nodes
}

// mecEntries takes the cluster and user of the fetched kubeconfig's
// current context (MicroK8s's own names, "microk8s-cluster" and "admin",
// would collide across MECs) and names them after the MEC.
func mecEntries(raw []byte, name string) (*kubeEntries, error) {
	var kc struct {
		Clusters []struct {
			Name    string    `yaml:"name"`
			Cluster yaml.Node `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			Name string    `yaml:"name"`
			User yaml.Node `yaml:"user"`
		} `yaml:"users"`
		Contexts []struct {
			Name    string `yaml:"name"`
			Context struct {
				Cluster string `yaml:"cluster"`
				User    string `yaml:"user"`
			} `yaml:"context"`
		} `yaml:"contexts"`
		Current string `yaml:"current-context"`
	}
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %w", err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, errors.New("not a kubeconfig: no cluster or no user")
	}
	clusterName, userName := kc.Clusters[0].Name, kc.Users[0].Name
	for _, c := range kc.Contexts {
		if c.Name == kc.Current || kc.Current == "" {
			clusterName, userName = c.Context.Cluster, c.Context.User
			break
		}
	}
	e := &kubeEntries{name: name}
	for _, c := range kc.Clusters {
		if c.Name == clusterName {
			e.cluster = entry(name, "cluster", &c.Cluster)
		}
	}
	for _, u := range kc.Users {
		if u.Name == userName {
			e.user = entry(name, "user", &u.User)
		}
	}
	if e.cluster == nil || e.user == nil {
		return nil, fmt.Errorf("not a kubeconfig: its context names cluster %q and user %q, which it does not have", clusterName, userName)
	}
	ctxBody := mapping("cluster", scalar(name), "user", scalar(name))
	e.context = entry(name, "context", ctxBody)
	return e, nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i < len(kv); i += 2 {
		n.Content = append(n.Content, scalar(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

func entry(name, kind string, body *yaml.Node) *yaml.Node {
	return mapping("name", scalar(name), kind, body)
}

// standalone is a kubeconfig holding only the MEC.
func standalone(e *kubeEntries) *yaml.Node {
	seq := func(n *yaml.Node) *yaml.Node {
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{n}}
	}
	doc := mapping("apiVersion", scalar("v1"), "kind", scalar("Config"), "clusters", seq(e.cluster),
		"users", seq(e.user), "contexts", seq(e.context), "current-context", scalar(e.name))
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}
}

func encodeYAML(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode kubeconfig: %w", err)
	}
	return b.Bytes(), nil
}

func (a *App) writeStandalone(path string, e *kubeEntries, force bool) error {
	b, err := encodeYAML(standalone(e))
	if err != nil {
		return err
	}
	if path == "-" {
		_, err := a.stdout.Write(b)
		return err
	}
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s exists; not overwriting it (use --force, or merge with: mecctl kubeconfig %s)", path, e.name)
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Wrote %s (context %q): KUBECONFIG=%s kubectl get nodes\n", path, e.name, path)
	return nil
}

// kubeconfigPaths picks the file to merge into as kubectl does: --kubeconfig,
// else the first existing file of $KUBECONFIG (the last if none exists),
// else ~/.kube/config. others are the rest of $KUBECONFIG, checked for
// names the merge would shadow.
func (a *App) kubeconfigPaths(flagPath string) (string, []string) {
	if flagPath != "" {
		return flagPath, nil
	}
	var list []string
	for _, p := range filepath.SplitList(a.getenv("KUBECONFIG")) {
		if p != "" {
			list = append(list, p)
		}
	}
	if len(list) == 0 {
		home := a.getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		return filepath.Join(home, ".kube", "config"), nil
	}
	dest := list[len(list)-1]
	for _, p := range list {
		if _, err := os.Stat(p); err == nil {
			dest = p
			break
		}
	}
	var others []string
	for _, p := range list {
		if p != dest {
			others = append(others, p)
		}
	}
	return dest, others
}
