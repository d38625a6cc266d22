package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

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
	flags: func(a *app, fs *flag.FlagSet) func(context.Context, []string) error {
		out := fs.String("o", "", "write a standalone kubeconfig to this file (- for stdout) instead of merging")
		path := fs.String("kubeconfig", "", "the kubeconfig to merge into (default: $KUBECONFIG's first existing file, else ~/.kube/config)")
		ctxName := fs.String("context", "", "name of the context, cluster and user (default: the MEC's name)")
		force := fs.Bool("force", false, "replace entries of the same name, or an existing -o file")
		setCurrent := fs.Bool("set-current", true, "make the MEC's context the current one (=false leaves it)")
		return func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("kubeconfig", "want one MEC id or name")
			}
			if *out != "" && *path != "" {
				return usagef("kubeconfig", "-o writes a file of its own; --kubeconfig is for merging: give one of them")
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			m, err := c.Resolve(ctx, args[0])
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

func (a *app) writeStandalone(path string, e *kubeEntries, force bool) error {
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
func (a *app) kubeconfigPaths(flagPath string) (string, []string) {
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

type mergeResult struct{ replaced, unchanged bool }

var sections = []struct{ key, kind string }{{"clusters", "cluster"}, {"users", "user"}, {"contexts", "context"}}

func (e *kubeEntries) of(kind string) *yaml.Node {
	switch kind {
	case "cluster":
		return e.cluster
	case "user":
		return e.user
	}
	return e.context
}

// mergeInto adds the entries to the kubeconfig at dest, keeping everything
// else in it (other entries, preferences, comments). An entry of the same
// name that differs is a conflict: refused unless force.
func mergeInto(dest string, others []string, e *kubeEntries, force, setCurrent bool) (mergeResult, error) {
	var res mergeResult
	if real, err := filepath.EvalSymlinks(dest); err == nil {
		dest = real // write through a symlinked kubeconfig, not over the link
	}
	for _, o := range others {
		b, err := os.ReadFile(o)
		if err != nil {
			continue
		}
		doc, err := parseKubeconfig(b)
		if err != nil {
			return res, fmt.Errorf("%s: %w", o, err)
		}
		for _, s := range sections {
			if findNamed(sectionSeq(doc, s.key, false), e.name) != nil {
				return res, fmt.Errorf("%s (in $KUBECONFIG) already has a %s named %q, which kubectl would see instead; pick another name with --context",
					o, s.kind, e.name)
			}
		}
	}
	unlock, err := lockFile(dest)
	if err != nil {
		return res, err
	}
	defer unlock()
	old, err := os.ReadFile(dest)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read kubeconfig: %w", err)
	}
	doc, err := parseKubeconfig(old)
	if err != nil {
		return res, fmt.Errorf("%s: %w", dest, err)
	}
	var conflicts []string
	same := 0
	for _, s := range sections {
		seq := sectionSeq(doc, s.key, true)
		want := e.of(s.kind)
		if i := findNamed(seq, e.name); i != nil {
			if equalNodes(seq.Content[*i], want) {
				same++
				continue
			}
			if !force {
				conflicts = append(conflicts, fmt.Sprintf("%s %q", s.kind, e.name))
				continue
			}
			seq.Content[*i] = want
			res.replaced = true
			continue
		}
		seq.Content = append(seq.Content, want)
	}
	if len(conflicts) > 0 {
		return res, fmt.Errorf("%s already has %s, different from this MEC's; not replacing them: pick another name with --context, or replace them with --force",
			dest, strings.Join(conflicts, ", "))
	}
	res.unchanged = same == len(sections)
	if setCurrent {
		setKey(doc, "current-context", scalar(e.name))
	}
	b, err := encodeYAML(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}, HeadComment: docComment(old)})
	if err != nil {
		return res, err
	}
	if bytes.Equal(b, old) {
		return res, nil
	}
	mode := fs.FileMode(0o600)
	if st, err := os.Stat(dest); err == nil {
		mode = st.Mode().Perm()
	}
	return res, writeFileAtomic(dest, b, mode)
}

// docComment keeps a comment at the top of the file.
func docComment(old []byte) string {
	var n yaml.Node
	if yaml.Unmarshal(old, &n) == nil {
		return n.HeadComment
	}
	return ""
}

// parseKubeconfig returns the top-level mapping of a kubeconfig; an empty
// or missing file is a new, empty one.
func parseKubeconfig(b []byte) (*yaml.Node, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("not a kubeconfig (YAML): %w", err)
	}
	if n.Kind == 0 || (len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
		return mapping("apiVersion", scalar("v1"), "kind", scalar("Config"), "preferences", mapping(),
			"clusters", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}, "users", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"},
			"contexts", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}, "current-context", scalar("")), nil
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a kubeconfig: the top level is not a mapping")
	}
	return n.Content[0], nil
}

// sectionSeq returns the sequence under key, creating it (or replacing a
// null) when create is set; nil if absent and not created.
func sectionSeq(doc *yaml.Node, key string, create bool) *yaml.Node {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key {
			v := doc.Content[i+1]
			if v.Kind == yaml.SequenceNode {
				return v
			}
			if !create {
				return nil
			}
			doc.Content[i+1] = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			return doc.Content[i+1]
		}
	}
	if !create {
		return nil
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	doc.Content = append(doc.Content, scalar(key), seq)
	return seq
}

func setKey(doc *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key {
			doc.Content[i+1] = v
			return
		}
	}
	doc.Content = append(doc.Content, scalar(key), v)
}

// findNamed returns the index of the entry whose name is name.
func findNamed(seq *yaml.Node, name string) *int {
	if seq == nil {
		return nil
	}
	for i, it := range seq.Content {
		if it.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(it.Content); j += 2 {
			if it.Content[j].Value == "name" && it.Content[j+1].Value == name {
				return &i
			}
		}
	}
	return nil
}

// equalNodes compares two entries by their data, not their formatting.
func equalNodes(a, b *yaml.Node) bool {
	var x, y any
	if a.Decode(&x) != nil || b.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// lockFile takes kubectl's lock convention (<file>.lock, created
// exclusively) so a concurrent kubectl or mecctl does not lose our write.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("kubeconfig directory: %w", err)
	}
	lock := path + ".lock"
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) || time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s (if no kubectl or mecctl is running, remove it): %w", lock, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeFileAtomic replaces path in one rename, so a reader never sees half a file.
func writeFileAtomic(path string, b []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
