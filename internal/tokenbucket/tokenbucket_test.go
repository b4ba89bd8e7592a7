package tokenbucket

import (
	"testing"
	"time"
)

func TestReserve(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		rate    float64
		burst   int
		calls   int           // reservations at t0
		maxWait time.Duration // for each
		want    []time.Duration
		wantOK  []bool
	}{
		{"the burst passes at once", 5, 2, 2, 0, []time.Duration{0, 0}, []bool{true, true}},
		{"then callers queue at the rate", 5, 2, 4, time.Second, []time.Duration{0, 0, 200 * time.Millisecond, 400 * time.Millisecond}, []bool{true, true, true, true}},
		{"a wait over maxWait is refused and takes nothing", 5, 1, 3, 250 * time.Millisecond, []time.Duration{0, 200 * time.Millisecond, 0}, []bool{true, true, false}},
		{"a negative rate is no limit", -1, 0, 3, 0, []time.Duration{0, 0, 0}, []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tt.rate, tt.burst)
			b.last = t0
			for i := range tt.calls {
				w, ok := b.Reserve(t0, tt.maxWait)
				if ok != tt.wantOK[i] || (ok && w != tt.want[i]) {
					t.Errorf("call %d: %v, %v; want %v, %v", i, w, ok, tt.want[i], tt.wantOK[i])
				}
			}
		})
	}
	// Refill: a second later, rate tokens are back (up to the burst).
	b := New(2, 2)
	b.last = t0
	b.Reserve(t0, 0)
	b.Reserve(t0, 0)
	if _, ok := b.Reserve(t0, 0); ok {
		t.Fatal("an empty bucket gave a token without waiting")
	}
	if w, ok := b.Reserve(t0.Add(time.Second), 0); !ok || w != 0 {
		t.Errorf("after a second: %v, %v; want a token at once", w, ok)
	}
}
