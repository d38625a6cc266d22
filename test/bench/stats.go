package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// pct is the nearest-rank percentile p (0-100) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func meanF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func maxF(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	if len(xs) == 0 {
		return 0
	}
	return m
}

// ms formats a duration in milliseconds, one decimal below 10 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func secs(v float64) string { return fmt.Sprintf("%.2f", v) }

func mib(kb int64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }

func mibBytes(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
