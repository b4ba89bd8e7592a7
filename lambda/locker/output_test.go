package main

// Shipped-binary tests of what an invocation writes to stdout.

import (
	"slices"
	"sort"
	"testing"
	"time"
)

func TestOutputIsOneLogLineAndOneMetricsLinePerInvocation(t *testing.T) {
	c := newCloud(t)
	f := startLocker(t, c, nil)
	mustSucceed(t, f, stateChange(t, web1, "running"))
	mustSucceed(t, f, scheduled(t))
	logs, metrics := output(t, f)
	if len(logs) != 2 || len(metrics) != 2 {
		t.Fatalf("%d log lines and %d metrics lines for 2 invocations:\n%s", len(logs), len(metrics), f.Stdout())
	}
	t.Run("the log line names the event, the roles and the API calls", func(t *testing.T) {
		lg := logs[0]
		if lg.Level != "INFO" || lg.EventKind != "state-change" || lg.RequestID == "" {
			t.Errorf("log line %+v", lg)
		}
		if len(lg.Results) != 1 || lg.Results[0].Role != webRole || lg.Results[0].Action != "written" ||
			!slices.Equal(lg.Results[0].SourceIPs, []string{"54.10.20.30/32"}) {
			t.Errorf("results %+v", lg.Results)
		}
		total := 0
		for _, n := range lg.Calls {
			total += n
		}
		if lg.APICalls == 0 || total != lg.APICalls || lg.Calls["iam:PutRolePolicy"] != 1 {
			t.Errorf("calls %v, apiCalls %d", lg.Calls, lg.APICalls)
		}
		if got := len(calls(c)); got != logs[0].APICalls+logs[1].APICalls {
			t.Errorf("the fakes saw %d calls, the log lines report %d", got, logs[0].APICalls+logs[1].APICalls)
		}
	})
	t.Run("the metrics line is EMF in Defenders/Locker without dimensions", func(t *testing.T) {
		m := metrics[0]
		if len(m.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("directives %+v", m.AWS.CloudWatchMetrics)
		}
		d := m.AWS.CloudWatchMetrics[0]
		if d.Namespace != "Defenders/Locker" || len(d.Dimensions) != 1 || len(d.Dimensions[0]) != 0 {
			t.Errorf("namespace %q, dimensions %v", d.Namespace, d.Dimensions)
		}
		var names []string
		for _, mt := range d.Metrics {
			names = append(names, mt.Name)
		}
		sort.Strings(names)
		wantList(t, "metrics", names, "APICalls", "DurationMs", "Errors", "FallbackLocks", "LocksSkipped", "LocksWritten")
		if m.LocksWritten != 1 || m.LocksSkipped != 0 || m.Errors != 0 || m.FallbackLocks != 0 || m.APICalls != float64(logs[0].APICalls) || m.DurationMs <= 0 {
			t.Errorf("values %+v", m)
		}
		if m.RequestID != logs[0].RequestID || m.AWS.Timestamp < time.Now().Add(-time.Hour).UnixMilli() {
			t.Errorf("request id %q (log %q), timestamp %d", m.RequestID, logs[0].RequestID, m.AWS.Timestamp)
		}
	})
}
