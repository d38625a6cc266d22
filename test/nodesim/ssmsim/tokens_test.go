package ssmsim

import (
	"os"
	"strings"
	"testing"
)

// The token file behaves as MicroK8s' (tokens.go cites the sources): a TTL
// token passes until it expires, however often it is used; a single-use one
// passes once; a line removed from the file (what a node script can do, and
// no command can) revokes its token.
func TestClusterTokenFile(t *testing.T) {
	h := &host{root: t.TempDir()}
	ttl, once, gone := strings.Repeat("a", 32), strings.Repeat("b", 32), strings.Repeat("c", 32)
	for _, tc := range []struct {
		tok string
		ttl int
	}{{ttl, 900}, {once, -1}, {gone, 900}} {
		if err := h.addToken(tc.tok, tc.ttl); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(h.tokenPath(clusterTokensFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], ttl+"|") || lines[1] != once {
		t.Fatalf("token file %q, want add_token.py's lines", b)
	}
	for use := 1; use <= 2; use++ {
		if !h.consumeToken(ttl) {
			t.Fatalf("use %d: a TTL token must stay valid after a join used it", use)
		}
	}
	if !h.consumeToken(once) || h.consumeToken(once) {
		t.Fatal("a single-use token must pass exactly once")
	}
	// Revoke as revoke_tokens does: rewrite the file without the line.
	kept := strings.ReplaceAll(string(b), gone, "")
	kept = strings.Join(strings.FieldsFunc(kept, func(r rune) bool { return r == '\n' }), "\n")
	var out []string
	for _, l := range strings.Split(kept, "\n") {
		if !strings.HasPrefix(l, "|") {
			out = append(out, l)
		}
	}
	if err := os.WriteFile(h.tokenPath(clusterTokensFile), []byte(strings.Join(out, "\n")+"\n"), 0o660); err != nil {
		t.Fatal(err)
	}
	if h.consumeToken(gone) {
		t.Fatal("a token removed from the file still passes")
	}
	if h.consumeToken(strings.Repeat("d", 32)) {
		t.Fatal("an unknown token passes")
	}
}
