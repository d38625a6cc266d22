package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
