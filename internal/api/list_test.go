package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// seedRecords writes n records straight into the store (the API would
// start n executions): statuses cycle, every seventh is in eu-west-1. It
// returns the ids newest first with their records.
func seedRecords(t *testing.T, e *env, n int) ([]string, map[string]*mec.MEC) {
	t.Helper()
	t0 := time.Now().Add(-time.Hour)
	recs := make([]*mec.MEC, n)
	for i := range recs {
		region := map[bool]string{true: "eu-west-1", false: "us-east-1"}[i%7 == 0]
		sp, err := spec.Parse(fmt.Appendf(nil, `{"name":"edge-%d","region":%q}`, i, region), e.h.defaults())
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &mec.MEC{ID: mec.NewID(t0.Add(time.Duration(i) * time.Millisecond)), Name: sp.Name,
			Status: mec.Statuses[i%len(mec.Statuses)], Region: region, Spec: sp}
	}
	work := make(chan *mec.MEC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 4 {
		wg.Go(func() {
			for m := range work {
				if err := e.st.Create(context.Background(), m, nil); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	for _, m := range recs {
		work <- m
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	ids := make([]string, n)
	byID := map[string]*mec.MEC{}
	for i, m := range recs {
		ids[n-1-i] = m.ID
		byID[m.ID] = m
	}
	return ids, byID
}

func TestListPagesThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	ids, byID := seedRecords(t, e, 1000)
	type filter struct{ status, region string }
	for _, limit := range []int{1, 3, 7, 50, 99, 100} {
		for _, f := range []filter{{}, {status: "READY"}, {region: "eu-west-1"}, {status: "DELETED", region: "eu-west-1"}} {
			if limit == 1 && f.region != "" {
				continue
			}
			t.Run(fmt.Sprintf("limit=%d/status=%s/region=%s", limit, f.status, f.region), func(t *testing.T) {
				var want []string
				for _, id := range ids {
					m := byID[id]
					if (f.status == "" || string(m.Status) == f.status) && (f.region == "" || m.Region == f.region) {
						want = append(want, id)
					}
				}
				var got []string
				token := ""
				for page := 0; ; page++ {
					if page > len(want)+1 {
						t.Fatal("pagination does not end")
					}
					q := url.Values{"limit": {fmt.Sprint(limit)}}
					if f.status != "" {
						q.Set("status", f.status)
					}
					if f.region != "" {
						q.Set("region", f.region)
					}
					if token != "" {
						q.Set("nextToken", token)
					}
					r := req{method: "GET", path: "/mecs", query: q.Encode(), style: eventStyle(page) % styleCount}
					// The first page is recorded for the document check; the rest are alike.
					resp := e.quiet(t, r)
					if page == 0 {
						resp = e.do(t, r)
					}
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("page %d: %d %s", page, resp.StatusCode, resp.Body)
					}
					var lr ListResponse
					if err := json.Unmarshal([]byte(resp.Body), &lr); err != nil {
						t.Fatal(err)
					}
					if len(lr.Items) > limit || (lr.NextToken != "" && len(lr.Items) != limit) {
						t.Fatalf("page %d: %d items with limit %d, next %q", page, len(lr.Items), limit, lr.NextToken)
					}
					for _, m := range lr.Items {
						got = append(got, m.ID)
					}
					if lr.NextToken == "" {
						break
					}
					token = lr.NextToken
				}
				if !slices.Equal(got, want) {
					t.Fatalf("got %d ids, want %d, newest first without gaps or duplicates", len(got), len(want))
				}
			})
		}
	}
}
