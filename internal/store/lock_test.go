package store_test

import (
	"context"
	"testing"
	"time"
)

// A lock keeps a second run out while the first holds it, until the
// first gives it back or its time passes.
func TestLock(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	steps := []struct {
		name  string
		do    func() (bool, error)
		taken bool
	}{
		{"first run takes it", func() (bool, error) { return s.Lock(ctx, "reaper", "a", now.Add(time.Minute)) }, true},
		{"a second run is kept out", func() (bool, error) { return s.Lock(ctx, "reaper", "b", now.Add(time.Minute)) }, false},
		{"the holder takes it again", func() (bool, error) { return s.Lock(ctx, "reaper", "a", now.Add(time.Minute)) }, true},
		{"another name is free", func() (bool, error) { return s.Lock(ctx, "other", "b", now.Add(time.Minute)) }, true},
		{"given back, it is free", func() (bool, error) {
			if err := s.Unlock(ctx, "reaper", "a"); err != nil {
				return false, err
			}
			return s.Lock(ctx, "reaper", "b", now.Add(-time.Second)) // b's run died at once
		}, true},
		{"a lock whose time passed is free", func() (bool, error) { return s.Lock(ctx, "reaper", "c", now.Add(time.Minute)) }, true},
		{"someone else's unlock leaves it", func() (bool, error) {
			if err := s.Unlock(ctx, "reaper", "b"); err != nil {
				return false, err
			}
			return s.Lock(ctx, "reaper", "d", now.Add(time.Minute))
		}, false},
	}
	for _, st := range steps {
		got, err := st.do()
		if err != nil || got != st.taken {
			t.Fatalf("%s: taken %v (%v), want %v", st.name, got, err, st.taken)
		}
	}
}
