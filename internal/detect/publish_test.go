package detect_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

var errSNS = errors.New("sns: Throttling")

// flakyPublisher fails each alert a configured number of times.
type flakyPublisher struct {
	failures  map[string]int // uniq id -> failures before success (-1: always)
	err       error
	attempts  map[string]int
	published []string
}

func (f *flakyPublisher) Publish(_ context.Context, a detect.Alert) error {
	if f.attempts == nil {
		f.attempts = map[string]int{}
	}
	f.attempts[a.UniqID]++
	if n := f.failures[a.UniqID]; n < 0 || f.attempts[a.UniqID] <= n {
		return f.err
	}
	f.published = append(f.published, a.UniqID)
	return nil
}

func alerts(ids ...string) []detect.Alert {
	out := make([]detect.Alert, len(ids))
	for i, id := range ids {
		out[i] = detect.Alert{UniqID: id}
	}
	return out
}

// recordSleeps is a RetryPolicy.Sleep that records the delays.
func recordSleeps(delays *[]time.Duration) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		*delays = append(*delays, d)
		return ctx.Err()
	}
}

func TestPublishAll(t *testing.T) {
	t.Run("transient failures are retried with exponential backoff", func(t *testing.T) {
		var delays []time.Duration
		pub := &flakyPublisher{failures: map[string]int{"b": 3}, err: errSNS}
		failed := detect.PublishAll(t.Context(), pub, alerts("a", "b"), detect.RetryPolicy{
			MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 250 * time.Millisecond, Sleep: recordSleeps(&delays)})
		if len(failed) != 0 || !slices.Equal(pub.published, []string{"a", "b"}) {
			t.Fatalf("failed %v, published %v", failed, pub.published)
		}
		if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}; !slices.Equal(delays, want) {
			t.Errorf("delays = %v, want %v", delays, want)
		}
	})
	t.Run("an alert that keeps failing is returned after the last attempt", func(t *testing.T) {
		var delays []time.Duration
		pub := &flakyPublisher{failures: map[string]int{"b": -1}, err: errSNS}
		failed := detect.PublishAll(t.Context(), pub, alerts("a", "b", "c"), detect.RetryPolicy{Sleep: recordSleeps(&delays)})
		if len(failed) != 1 || failed[0].Alert.UniqID != "b" || failed[0].Attempts != detect.DefaultMaxAttempts || !errors.Is(failed[0].Err, errSNS) {
			t.Fatalf("failed = %+v", failed)
		}
		if !slices.Equal(pub.published, []string{"a", "c"}) {
			t.Errorf("published %v: the alerts after the failure must still go out", pub.published)
		}
	})
	t.Run("a permanent error is not retried", func(t *testing.T) {
		pub := &flakyPublisher{failures: map[string]int{"a": -1}, err: detect.Permanent(errSNS)}
		failed := detect.PublishAll(t.Context(), pub, alerts("a"), detect.RetryPolicy{Sleep: recordSleeps(new([]time.Duration))})
		if len(failed) != 1 || failed[0].Attempts != 1 || !detect.IsPermanent(failed[0].Err) || !errors.Is(failed[0].Err, errSNS) {
			t.Errorf("failed = %+v", failed)
		}
	})
	t.Run("Permanent of nil is nil", func(t *testing.T) {
		if detect.Permanent(nil) != nil {
			t.Error("Permanent(nil) != nil")
		}
	})
	t.Run("once the context ends the remaining alerts are returned unsent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		pub := detect.PublisherFunc(func(context.Context, detect.Alert) error {
			cancel()
			return errSNS
		})
		failed := detect.PublishAll(ctx, pub, alerts("a", "b", "c"), detect.RetryPolicy{})
		if len(failed) != 3 || failed[0].Attempts != 1 || failed[1].Attempts != 0 || !errors.Is(failed[2].Err, context.Canceled) {
			t.Errorf("failed = %+v", failed)
		}
		if !errors.Is(failed[0].Err, errSNS) || !errors.Is(failed[0].Err, context.Canceled) {
			t.Errorf("first failure should carry both causes: %v", failed[0].Err)
		}
	})
	t.Run("the default sleep waits", func(t *testing.T) {
		start := time.Now()
		pub := &flakyPublisher{failures: map[string]int{"a": 1}, err: errSNS}
		if failed := detect.PublishAll(t.Context(), pub, alerts("a"), detect.RetryPolicy{BaseDelay: 5 * time.Millisecond}); len(failed) != 0 {
			t.Fatal(failed)
		}
		if time.Since(start) < 5*time.Millisecond {
			t.Error("did not wait")
		}
	})
}

func TestProcessorPublishKeepsFailedAlertsUntilForgotten(t *testing.T) {
	tests := []struct {
		name       string
		forget     bool // the dead-letter queue did not take the alert either
		wantAlerts int  // alerts of the retried batch
	}{
		{"a dead-lettered alert stays remembered: the retry suppresses it", false, 0},
		{"an alert that reached nothing is forgotten: the retry raises it again", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := detect.NewProcessor(world(), detect.Config{})
			recs := []cloudtrail.Record{record(ctt.StolenFromForeignIP)}
			res := p.Process(t.Context(), recs)
			pub := &flakyPublisher{failures: map[string]int{res.Alerts[0].UniqID: -1}, err: errSNS}
			failed := p.Publish(t.Context(), pub, res.Alerts, detect.RetryPolicy{Sleep: recordSleeps(new([]time.Duration))})
			if len(failed) != 1 {
				t.Fatalf("failed = %v", failed)
			}
			if tt.forget {
				p.Forget(failed[0].Alert)
			}
			if again := p.Process(t.Context(), recs); len(again.Alerts) != tt.wantAlerts {
				t.Errorf("the retried batch raised %d alerts, want %d", len(again.Alerts), tt.wantAlerts)
			}
		})
	}
}
