package node

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// retry looks again a tenth of the interval after a failure, then doubles
// up to the interval, for as long in all as the linear backoff it replaced
// (RETRY_SECONDS × N(N-1)/2): the API server back after dqlite re-formed is
// seen within a second on AWS, not ten. sleep is stubbed to record the waits.
func TestRetryLooksSoonThenBacksOff(t *testing.T) {
	lib, err := scripts.ReadFile("scripts/lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		n          int
		failures   int // before the command succeeds (-1: never)
		wantSleeps string
		wantTries  string
		wantOK     bool
	}{
		{"succeeds on the fourth try", 8, 3, "1 2 4", "4", true},
		{"gives up once the old backoff's time is spent", 3, -1, "1 2 4 8 10 10", "7", false},
		{"one try", 1, -1, "", "1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := "set -euo pipefail\nRETRY_SECONDS=10\n" + string(lib) + `
sleeps=""
sleep() { sleeps="$sleeps $1"; }
tries=0
flaky() { tries=$((tries + 1)); [ "` + strconv.Itoa(tc.failures) + `" -ge 0 ] && [ "$tries" -gt "` + strconv.Itoa(tc.failures) + `" ]; }
if retry ` + strconv.Itoa(tc.n) + ` flaky; then ok=yes; else ok=no; fi
echo "sleeps=${sleeps# } tries=$tries ok=$ok" >&3
`
			out, err := exec.Command("bash", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			want := "sleeps=" + tc.wantSleeps + " tries=" + tc.wantTries + " ok=" + map[bool]string{true: "yes", false: "no"}[tc.wantOK]
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
