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

// allScenariosBatch decodes every fixture scenario as one CloudWatch Logs
// delivery, plus one malformed log event.
func allScenariosBatch(t *testing.T) *cloudtrail.Batch {
	t.Helper()
	var evs []ctt.LogEvent
	for i, s := range ctt.Scenarios {
		evs = append(evs, ctt.LogEvent{ID: string(rune('a' + i)), Message: string(s.JSON())})
	}
	evs = append(evs, ctt.LogEvent{ID: "broken", Message: `{"userIdentity":{"principalId":"AROA:i-`})
	var b cloudtrail.Batch
	if err := new(cloudtrail.Decoder).DecodeCWLEvent(ctt.CWLEvent(ctt.CWLPayloadEvents("DATA_MESSAGE", evs...)), &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestProcessorEndToEnd(t *testing.T) {
	clock := newClock()
	inv := detect.NewCachedInventory(world(), detect.CacheOptions{Now: clock.Now})
	p := detect.NewProcessor(inv, detect.Config{
		Self: detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}},
		Now:  clock.Now,
	})
	res := p.ProcessBatch(t.Context(), allScenariosBatch(t))

	t.Run("one alert is raised per instance and source address", func(t *testing.T) {
		var got []string
		for _, a := range res.Alerts {
			got = append(got, a.Type+" "+string(a.Severity)+" "+a.UniqID)
		}
		want := []string{
			"BadSource HIGH " + ctt.InstanceID + "-172.31.44.7",
			"BadSource HIGH " + ctt.InstanceID + "-" + ctt.AttackerIP,
			"InstanceMissing MEDIUM " + ctt.UnknownInstance + "-198.51.100.99",
		}
		if !slices.Equal(got, want) {
			t.Errorf("alerts = %q\nwant %q", got, want)
		}
	})
	t.Run("every record is accounted for in the stats", func(t *testing.T) {
		want := detect.Stats{
			Events: 18, Prefiltered: 3, Malformed: 1,
			InstanceSessions: 14, SkippedAWSService: 2, SkippedOwn: 1, Expected: 6,
			Rechecked: 5, Alerts: 3, Suppressed: 2,
		}
		if res.Stats != want {
			t.Errorf("stats = %+v\nwant    %+v", res.Stats, want)
		}
	})
	t.Run("the same attack in the next batch is suppressed", func(t *testing.T) {
		res2 := p.ProcessBatch(t.Context(), allScenariosBatch(t))
		if len(res2.Alerts) != 0 || res2.Stats.Suppressed != 5 {
			t.Errorf("alerts %d, suppressed %d", len(res2.Alerts), res2.Stats.Suppressed)
		}
	})
	t.Run("the attack is reported again after the dedupe window", func(t *testing.T) {
		clock.Advance(detect.DefaultDedupeWindow)
		if res3 := p.ProcessBatch(t.Context(), allScenariosBatch(t)); len(res3.Alerts) != 3 {
			t.Errorf("alerts %d, want 3", len(res3.Alerts))
		}
	})
}

func TestProcessorRechecksAfterAnAddressChange(t *testing.T) {
	clock := newClock()
	src := newSource(world())
	inv := detect.NewCachedInventory(src, detect.CacheOptions{Now: clock.Now})
	p := detect.NewProcessor(inv, detect.Config{Now: clock.Now})
	rec := record(ctt.InstanceFromPublicIP)
	p.Process(t.Context(), []cloudtrail.Record{rec}) // caches the instance

	// The instance gets a new Elastic IP two minutes later.
	clock.Advance(2 * time.Minute)
	moved := theInstance()
	moved.PublicIPs = addrs("198.51.100.123")
	src.set(ctt.InstanceID, moved)
	rec.SourceIPAddress = "198.51.100.123"

	res := p.Process(t.Context(), []cloudtrail.Record{rec})
	if len(res.Alerts) != 0 || res.Stats.Expected != 1 || res.Stats.Rechecked != 1 {
		t.Errorf("alerts %v, stats %+v", res.Alerts, res.Stats)
	}
}

func TestProcessorReturnsUndecidedRecordsWhenTheInventoryFails(t *testing.T) {
	src := newSource(world())
	src.fail(errEC2)
	p := detect.NewProcessor(detect.NewCachedInventory(src, detect.CacheOptions{}), detect.Config{})
	recs := []cloudtrail.Record{record(ctt.StolenFromForeignIP), record(ctt.InstanceIMDSv1Old), record(ctt.IAMUserCall)}
	recs[0].SequenceNumber = "seq-1"
	res := p.Process(t.Context(), recs)
	if len(res.Alerts) != 0 || len(res.Undecided) != 2 || res.Stats.Undecided != 2 || res.Stats.NotInstance != 1 {
		t.Fatalf("result = %+v", res)
	}
	u := res.Undecided[0]
	if u.InstanceID != ctt.InstanceID || u.Record.SequenceNumber != "seq-1" || !errors.Is(u.Err, errEC2) {
		t.Errorf("undecided = %+v", u)
	}
}

func TestProcessorWithoutDedupeReportsEveryCall(t *testing.T) {
	p := detect.NewProcessor(world(), detect.Config{DedupeWindow: -1})
	recs := []cloudtrail.Record{record(ctt.StolenFromForeignIP), record(ctt.StolenFailedCall)}
	if res := p.Process(t.Context(), recs); len(res.Alerts) != 2 || res.Stats.Suppressed != 0 {
		t.Errorf("alerts %d, suppressed %d", len(res.Alerts), res.Stats.Suppressed)
	}
	p.Forget(detect.Alert{UniqID: "x"}) // a no-op without a deduper
}

func TestProcessorReportsUnresolvableInstanceSessionsAsMissing(t *testing.T) {
	rec := record(ctt.StolenFromForeignIP)
	rec.UserIdentity.PrincipalID = "AROAYEXAMPLEROLEID01:odd"
	rec.UserIdentity.ARN = "arn:aws:sts::111122223333:assumed-role/web-server-role/odd"
	lookups := 0
	inv := detect.InventoryFunc(func(context.Context, string) (detect.Instance, bool, error) {
		lookups++
		return detect.Instance{}, false, nil
	})
	res := detect.NewProcessor(inv, detect.Config{}).Process(t.Context(), []cloudtrail.Record{rec})
	if len(res.Alerts) != 1 || res.Alerts[0].Type != "InstanceMissing" || lookups != 0 {
		t.Errorf("alerts %+v, %d lookups", res.Alerts, lookups)
	}
}

func TestStatsAddAndLog(t *testing.T) {
	var s detect.Stats
	s.Add(detect.Stats{Events: 2, Alerts: 1, Undecided: 3})
	s.Add(detect.Stats{Events: 1, Suppressed: 4})
	if s.Events != 3 || s.Alerts != 1 || s.Suppressed != 4 || s.Undecided != 3 {
		t.Errorf("sum = %+v", s)
	}
	if v := s.LogValue(); len(v.Group()) != 18 {
		t.Errorf("LogValue has %d attributes", len(v.Group()))
	}
}

func TestProcessorStatsAccountForEveryInstanceSession(t *testing.T) {
	p := detect.NewProcessor(world(), detect.Config{Self: detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}}})
	res := p.ProcessBatch(t.Context(), allScenariosBatch(t))
	checkConservation(t, res.Stats)
}
