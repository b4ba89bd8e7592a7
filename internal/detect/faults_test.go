package detect_test

// What the inventory does when EC2 throttles or fails: short, growing
// negative caching of failed lookups, a bounded number of calls per
// invocation, and verdicts that fail closed. Every test runs on a fake
// clock; a failing EC2 call costs simulated time (the SDK's retries).

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// retryAfter is how long a new instance whose lookup failed n times in a
// row, each as soon as allowed, waits for the next lookup: its own
// negative caching (a second, doubling, at most the refresh interval) or,
// from the third failure in a row, the circuit breaker's cool-down (5 s,
// doubling, at most the refresh interval), whichever is longer.
func retryAfter(n int) time.Duration {
	d := min(time.Second<<(n-1), detect.DefaultMinRefreshInterval)
	if n >= detect.DefaultBreakerThreshold {
		d = max(d, min(detect.DefaultBreakerCooldown<<(n-detect.DefaultBreakerThreshold), detect.DefaultBreakerMaxCooldown))
	}
	return d
}

func TestAThrottlingBlipDelaysANewInstanceBySecondsNotTheRefreshInterval(t *testing.T) {
	const fresh = "i-0000000000000beef"
	tests := []struct {
		name     string
		failures int
		want     time.Duration // retryAfter(failures), spelled out
	}{
		{"after one throttled lookup the instance is asked again a second later", 1, time.Second},
		{"after two throttled lookups in a row, two seconds later", 2, 2 * time.Second},
		{"after three in a row the breaker opens: five seconds later", 3, 5 * time.Second},
		{"however long the blip, never later than the refresh interval", 10, detect.DefaultMinRefreshInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.failures); got != tt.want {
				t.Fatalf("retryAfter(%d) = %v, want %v", tt.failures, got, tt.want)
			}
			clock := newClock()
			src := newSource(map[string]detect.Instance{fresh: {ID: fresh}})
			c := newCache(src, clock, detect.CacheOptions{})
			src.fail(errEC2)
			for i := range tt.failures {
				if i > 0 {
					clock.Advance(retryAfter(i))
				}
				if _, _, err := c.Lookup(t.Context(), fresh); !errors.Is(err, errEC2) {
					t.Fatalf("lookup %d during the blip: err = %v", i+1, err)
				}
			}
			if got := src.count(fresh); got != tt.failures {
				t.Fatalf("%d source calls during the blip, want %d", got, tt.failures)
			}
			src.fail(nil)
			clock.Advance(tt.want - time.Millisecond)
			if _, _, err := c.Lookup(t.Context(), fresh); !errors.Is(err, errEC2) || src.count(fresh) != tt.failures {
				t.Fatalf("within the backoff: err = %v after %d calls, want the cached failure", err, src.count(fresh))
			}
			clock.Advance(time.Millisecond)
			if _, found := mustLookup(t, c, fresh); !found {
				t.Errorf("not found %v after the blip", tt.want)
			}
		})
	}
}

// outageWorld is n instances behind a CachedInventory over a bulk source
// whose every call costs callTime on the fake clock, and a Processor.
type outageWorld struct {
	clock *fakeClock
	src   bulkSource
	inv   *detect.CachedInventory
	proc  *detect.Processor
	ids   []string
}

func newOutageWorld(n int, callTime time.Duration) *outageWorld {
	w := &outageWorld{clock: newClock()}
	data := map[string]detect.Instance{}
	for k := range n {
		id := fmt.Sprintf("i-%08x", 0xa000+k)
		data[id] = detect.Instance{ID: id, VpcID: "vpc-01", PublicIPs: addrs(fmt.Sprintf("198.51.100.%d", 1+k))}
		w.ids = append(w.ids, id)
	}
	w.src = bulkSource{newSource(data)}
	w.src.delay = func() { w.clock.Advance(callTime) }
	w.inv = detect.NewCachedInventory(w.src, detect.CacheOptions{Now: w.clock.Now})
	w.proc = detect.NewProcessor(w.inv, detect.Config{Now: w.clock.Now, DedupeWindow: -1})
	return w
}

// batch is, for every instance, a call from its own address and one from
// an attacker's (the i-th attacker address of round r).
func (w *outageWorld) batch(r int) []cloudtrail.Record {
	var recs []cloudtrail.Record
	for k, id := range w.ids {
		for _, ip := range []string{fmt.Sprintf("198.51.100.%d", 1+k), fmt.Sprintf("203.0.%d.%d", 113+r, 1+k)} {
			rec := record("stolen instance credentials used from a foreign IP")
			rec.UserIdentity.PrincipalID = "AROAYEXAMPLEROLEID01:" + id
			rec.UserIdentity.ARN = "arn:aws:sts::111122223333:assumed-role/web-server-role/" + id
			rec.SourceIPAddress = ip
			recs = append(recs, rec)
		}
	}
	return recs
}

func TestAnEC2OutageCostsAnInvocationAFewCalls(t *testing.T) {
	const (
		instances = 20
		callTime  = 2 * time.Second // a failing call with the SDK's retries
		maxCalls  = 3               // consecutive failures that stop the calls
	)
	tests := []struct {
		name string
		age  time.Duration // of the cached entries when the outage starts
	}{
		{"entries older than the refresh interval", 5 * time.Minute},
		{"expired entries", 11 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOutageWorld(instances, callTime)
			if res := w.proc.Process(t.Context(), w.batch(0)); len(res.Alerts) != instances || len(res.Undecided) != 0 {
				t.Fatalf("warming: %d alerts, %d undecided", len(res.Alerts), len(res.Undecided))
			}
			w.clock.Advance(tt.age)
			w.src.fail(errEC2)
			calls, began := w.src.total(), w.clock.Now()
			res := w.proc.Process(t.Context(), w.batch(1))
			spent, made := w.clock.Now().Sub(began), w.src.total()-calls
			t.Logf("%d records: %d alerts, %d OK, %d undecided; %d source calls, %v", 2*instances,
				len(res.Alerts), res.Stats.Expected, len(res.Undecided), made, spent)
			if len(res.Alerts) != instances {
				t.Errorf("%d alerts, want %d: an alert must survive an inventory outage", len(res.Alerts), instances)
			}
			if res.Stats.Expected != instances || len(res.Undecided) != 0 {
				t.Errorf("%d OK and %d undecided, want the %d legitimate calls judged against the last known addresses",
					res.Stats.Expected, len(res.Undecided), instances)
			}
			if made > maxCalls || spent > maxCalls*callTime {
				t.Errorf("the outage cost %d source calls and %v, want at most %d calls", made, spent, maxCalls)
			}
		})
	}
}

func TestTheBreakerFailsClosed(t *testing.T) {
	const (
		instances = 5
		callTime  = 2 * time.Second
	)
	w := newOutageWorld(instances, callTime)
	w.proc.Process(t.Context(), w.batch(0)) // warm
	w.clock.Advance(time.Minute)
	w.src.fail(errEC2)
	for i := range detect.DefaultBreakerThreshold {
		if _, _, err := w.inv.Lookup(t.Context(), fmt.Sprintf("i-%08x", 0xf000+i)); !errors.Is(err, errEC2) {
			t.Fatalf("failing lookup %d: %v", i, err)
		}
	}
	if s := w.inv.Stats(); s.BreakerOpens != 1 {
		t.Fatalf("%d failed calls in a row did not open the breaker: %+v", detect.DefaultBreakerThreshold, s)
	}
	calls := w.src.total()
	unknown := record("stolen instance credentials used from a foreign IP")
	unknown.UserIdentity.PrincipalID = "AROAYEXAMPLEROLEID01:i-0000beef"
	res := w.proc.Process(t.Context(), append(w.batch(1), unknown))

	t.Run("nothing calls the source while it is open", func(t *testing.T) {
		if n := w.src.total() - calls; n != 0 {
			t.Errorf("%d source calls with the breaker open", n)
		}
	})
	t.Run("an instance without a cached answer is undecided, never OK", func(t *testing.T) {
		if len(res.Undecided) != 1 || !errors.Is(res.Undecided[0].Err, detect.ErrUnavailable) || !errors.Is(res.Undecided[0].Err, errEC2) {
			t.Errorf("undecided %+v, want the unknown instance's record, naming the breaker and the last failure", res.Undecided)
		}
	})
	t.Run("cached instances are judged against their last known addresses, and the alerts stand", func(t *testing.T) {
		if len(res.Alerts) != instances || res.Stats.Expected != instances {
			t.Errorf("%d alerts and %d OK, want %d of each", len(res.Alerts), res.Stats.Expected, instances)
		}
	})
	t.Run("after the cool-down one probe closes it", func(t *testing.T) {
		w.src.fail(nil)
		w.clock.Advance(detect.DefaultBreakerCooldown)
		if _, found := mustLookup(t, w.inv, "i-0000beef"); found {
			t.Error("a made-up instance was found")
		}
		if n := w.src.total() - calls; n != 1 {
			t.Errorf("%d source calls for the probe, want 1", n)
		}
		if res := w.proc.Process(t.Context(), []cloudtrail.Record{unknown}); len(res.Undecided) != 0 || len(res.Alerts) != 1 {
			t.Errorf("after the probe: %d undecided, %d alerts; want the InstanceMissing alert", len(res.Undecided), len(res.Alerts))
		}
	})
}

func TestWouldBeAlertsAreRefreshedOncePerInstanceAndTogether(t *testing.T) {
	const instances = 8
	w := newOutageWorld(instances, 100*time.Millisecond)
	w.proc.Process(t.Context(), w.batch(0))
	w.clock.Advance(time.Minute) // older than the refresh interval, younger than the TTL
	calls := w.src.total()
	// Three attacks per instance in one batch.
	recs := append(append(w.batch(1), w.batch(2)...), w.batch(3)...)
	res := w.proc.Process(t.Context(), recs)
	if n := w.src.total() - calls; n != 1 || w.src.single != 0 {
		t.Errorf("%d source calls (%d single lookups) to re-check %d alerts of %d instances, want one bulk call",
			n, w.src.single, len(res.Alerts), instances)
	}
	if len(res.Alerts) != 3*instances || res.Stats.Rechecked != 3*instances {
		t.Errorf("%d alerts, %d rechecked; want %d of each", len(res.Alerts), res.Stats.Rechecked, 3*instances)
	}
}

func TestTheRateLimitPacesInsteadOfFailing(t *testing.T) {
	ids := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("i-%08x", 0xc000+i))
		}
		return out
	}
	tests := []struct {
		name          string
		o             detect.CacheOptions
		lookups       int
		wantThrottled int
		wantWaited    time.Duration
	}{
		{"within the burst nothing waits", detect.CacheOptions{MissRate: 2, MissBurst: 4}, 4, 0, 0},
		{"beyond the burst each lookup waits for its token", detect.CacheOptions{MissRate: 2, MissBurst: 4}, 8, 0, 4 * 500 * time.Millisecond},
		{"a token further away than MissMaxWait is refused", detect.CacheOptions{MissRate: 2, MissBurst: 4, MissMaxWait: 400 * time.Millisecond}, 8, 4, 0},
		{"without waiting every lookup beyond the burst is refused", detect.CacheOptions{MissRate: 2, MissBurst: 4, MissMaxWait: -1}, 8, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			c := newCache(newSource(map[string]detect.Instance{}), clock, tt.o)
			throttled := 0
			for _, id := range ids(tt.lookups) {
				if _, _, err := c.Lookup(t.Context(), id); errors.Is(err, detect.ErrThrottled) {
					throttled++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if s := c.Stats(); throttled != tt.wantThrottled || s.RateWaited != tt.wantWaited {
				t.Errorf("%d throttled after waiting %v, want %d after %v (%+v)", throttled, s.RateWaited, tt.wantThrottled, tt.wantWaited, s)
			}
		})
	}
	t.Run("a wait ends with the lookup's context", func(t *testing.T) {
		c := detect.NewCachedInventory(newSource(map[string]detect.Instance{}), detect.CacheOptions{MissRate: 0.5, MissBurst: 1})
		mustLookup(t, c, "i-0000c001")
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		began := time.Now()
		if _, _, err := c.Lookup(ctx, "i-0000c002"); err == nil || time.Since(began) > time.Second {
			t.Errorf("err = %v after %v, want a refusal without waiting 2 s past the deadline", err, time.Since(began))
		}
	})
}
