package latency

import (
	"context"
	"testing"
	"time"
)

func TestModesAndScale(t *testing.T) {
	tests := []struct {
		mode Mode
		want float64 // seconds for SnapInstall before scaling
	}{
		{Typical, 90}, {Low, 45}, {High, 300},
	}
	for _, tc := range tests {
		m := New(0.01, tc.mode, 1)
		if got := m.Seconds(SnapInstall); got != tc.want {
			t.Errorf("%s: %v s, want %v", tc.mode, got, tc.want)
		}
		if got, want := m.Delay(SnapInstall), time.Duration(tc.want*0.01*float64(time.Second)); got != want {
			t.Errorf("%s: delay %v, want %v", tc.mode, got, want)
		}
	}
	r := New(1, Random, 7)
	for i := 0; i < 100; i++ {
		if s := r.Seconds(Join); s < 5 || s > 60 {
			t.Fatalf("random join %v outside [5, 60]", s)
		}
	}
}

func TestFixOverridesAndScaledSleep(t *testing.T) {
	m := New(0.01, High, 1)
	m.Fix(SnapInstall, 60)
	start := time.Now()
	m.Sleep(context.Background(), SnapInstall)
	if d := time.Since(start); d < 590*time.Millisecond || d > 900*time.Millisecond {
		t.Fatalf("a scaled 60 s install took %v, want about 0.6 s", d)
	}
	m.Unfix(SnapInstall)
	if m.Seconds(SnapInstall) != 300 {
		t.Fatal("Unfix did not restore the mode's value")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start = time.Now()
	m.Sleep(ctx, SnapInstall)
	if time.Since(start) > 50*time.Millisecond {
		t.Fatal("Sleep ignored a cancelled context")
	}
}

func TestSetRangeValidates(t *testing.T) {
	m := New(1, Typical, 1)
	if err := m.SetRange(Boot, Range{Low: 10, Typical: 5, High: 20}); err == nil {
		t.Fatal("low > typical accepted")
	}
	if err := m.SetRange(Boot, Range{Low: 1, Typical: 2, High: 3}); err != nil || m.Seconds(Boot) != 2 {
		t.Fatalf("valid range: %v, seconds %v", err, m.Seconds(Boot))
	}
}
