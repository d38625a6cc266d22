package ssmsim

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MicroK8s keeps join tokens in files, which is what lets a node script
// revoke one: no command does (microk8s-resources/wrappers has none).
//   - add-node appends "<token>\n" (single use) or "<token>|<unix expiry>\n"
//     (--token-ttl) to $SNAP_DATA/credentials/cluster-tokens.txt, without
//     looking for duplicates (scripts/wrappers/add_token.py,
//     add_token_with_expiry).
//   - A launch configuration's persistentClusterToken goes to
//     persistent-cluster-tokens.txt (microk8s-cluster-agent pkg/k8sinit/apply.go,
//     pkg/snap/snap.go AddPersistentClusterToken).
//   - The cluster agent's join consumes a token: persistent ones always
//     pass; in cluster-tokens.txt the first line whose token matches decides
//     (pkg/util/token.go IsValidToken, split on the first "|"); a TTL token
//     stays valid, and its line stays, until it expires, even after it was
//     used; a single-use one is removed, by the first line it prefixes
//     (pkg/snap/snap.go ConsumeClusterToken, pkg/util/token.go RemoveToken).
//     Expired lines are never pruned.
const (
	clusterTokensFile    = "cluster-tokens.txt"
	persistentTokensFile = "persistent-cluster-tokens.txt"
)

func (h *host) tokenPath(name string) string {
	return filepath.Join(h.root, "var/snap/microk8s/current/credentials", name)
}

// addToken is add_token.py's add_token_with_expiry (ttl -1: single use).
func (h *host) addToken(tok string, ttl int) error {
	line := tok + "\n"
	if ttl != -1 {
		line = fmt.Sprintf("%s|%d\n", tok, time.Now().Unix()+int64(ttl))
	}
	return appendTokenLine(h.tokenPath(clusterTokensFile), line)
}

// addPersistentToken is the cluster agent's AddPersistentClusterToken.
func (h *host) addPersistentToken(tok string) error {
	return appendTokenLine(h.tokenPath(persistentTokensFile), tok+"\n")
}

func appendTokenLine(path, line string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	// The add-node wrapper makes the file group-rw, nothing for others.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o660)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tokenLine is one parsed line of a token file.
type tokenLine struct {
	value  string
	expiry time.Time // zero: none
	ttl    bool
}

func readTokens(path string) []tokenLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []tokenLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		tok, exp, ttl := strings.Cut(line, "|")
		t := tokenLine{value: tok, ttl: ttl}
		if ttl {
			var sec int64
			if _, err := fmt.Sscan(exp, &sec); err == nil {
				t.expiry = time.Unix(sec, 0)
			} else {
				t.expiry = time.Unix(0, 0) // unparsable: never valid (IsValidToken returns false, true)
			}
		}
		out = append(out, t)
	}
	return out
}

// consumeToken is ConsumeClusterToken: whether tok may join.
func (h *host) consumeToken(tok string) bool {
	for _, t := range readTokens(h.tokenPath(persistentTokensFile)) {
		if t.value == tok {
			return true
		}
	}
	path := h.tokenPath(clusterTokensFile)
	for _, t := range readTokens(path) {
		if t.value != tok {
			continue
		}
		if t.ttl {
			return time.Now().Before(t.expiry)
		}
		removeFirstPrefixed(path, tok)
		return true
	}
	return false
}

// removeFirstPrefixed is RemoveToken: it drops the first line that starts
// with tok (a prefix match, as in MicroK8s).
func removeFirstPrefixed(path, tok string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.SplitAfter(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), tok) {
			lines = append(lines[:i], lines[i+1:]...)
			break
		}
	}
	_ = os.WriteFile(path, []byte(strings.Join(lines, "")), 0o660)
}

// tokens lists both files' tokens, for a host's snapshot.
func (h *host) tokenList() []Token {
	var out []Token
	for _, t := range readTokens(h.tokenPath(persistentTokensFile)) {
		out = append(out, Token{Value: t.value, Persistent: true})
	}
	for _, t := range readTokens(h.tokenPath(clusterTokensFile)) {
		out = append(out, Token{Value: t.value, Expiry: t.expiry, SingleUse: !t.ttl})
	}
	return out
}
