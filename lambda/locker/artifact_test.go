package main

// The artifact itself: what it links, and how fast it locks.

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

func TestTheBootstrapLinksNoCDK(t *testing.T) {
	for _, d := range lambdatest.ModuleDeps(t, lambdatest.BuildBootstrap(t, ".")) {
		if strings.Contains(d, "jsii") || strings.Contains(d, "aws-cdk-go") || strings.Contains(d, "constructs-go") {
			t.Errorf("the locker bootstrap links %s", d)
		}
	}
}

// TestPerformance measures, against the fakes, how long a state change
// takes to reach IAM as a written lock and how many API calls an event
// costs. The figures are in the test log (go test -v -run Performance).
func TestPerformance(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") == "" {
		t.Skip("a measurement: make bench runs it (DEFENDERS_FIGURES=1)")
	}
	const n = 20
	c := newCloud(t)
	f := startLocker(t, c, nil)
	mustSucceed(t, f, stateChange(t, web1, "running")) // warm: the first lock
	var latencies, roundTrips []time.Duration
	var perEvent []int
	for i := range n {
		ip := fmt.Sprintf("3.91.%d.%d", i/200, 10+i%200)
		c.UpdateInstance(web1, func(in *lambdatest.Instance) { in.PublicIP = ip })
		before := len(calls(c))
		sent := time.Now()
		mustSucceed(t, f, stateChange(t, web1, "running"))
		roundTrips = append(roundTrips, time.Since(sent))
		perEvent = append(perEvent, len(calls(c))-before)
		w := puts(c, webRole)
		lastPut := w[len(w)-1]
		if !strings.Contains(lastPut.Form.Get("PolicyDocument"), ip+"/32") {
			t.Fatalf("invocation %d did not write %s", i, ip)
		}
		latencies = append(latencies, lastPut.Received.Sub(sent))
	}
	before := counts(c)
	mustSucceed(t, f, stateChange(t, web1, "running"))
	unchanged := diff(counts(c), before)
	before = counts(c)
	mustSucceed(t, f, scheduled(t))
	sched := diff(counts(c), before)

	slices.Sort(perEvent)
	t.Logf("locker against the fakes, %d state changes that move the address: event→lock written median %v (min %v, max %v); "+
		"invocation round trip median %v; API calls per such event median %d (min %d, max %d); "+
		"an unchanged state change costs %d calls, a scheduled reconcile of 1 managed role %d calls",
		n, median(latencies), slices.Min(latencies), slices.Max(latencies), median(roundTrips),
		perEvent[len(perEvent)/2], perEvent[0], perEvent[len(perEvent)-1], unchanged, sched)
	if median(latencies) > 5*time.Second {
		t.Errorf("median event→lock latency %v against loopback fakes", median(latencies))
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// diff sums the growth of counters.
func diff(after, before map[string]int) int {
	n := 0
	for k, v := range after {
		n += v - before[k]
	}
	return n
}
