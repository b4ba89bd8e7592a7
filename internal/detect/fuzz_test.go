package detect_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// checkConservation asserts that every instance session ends up in exactly
// one outcome.
func checkConservation(t *testing.T, s detect.Stats) {
	t.Helper()
	if got := s.SkippedAWSService + s.SkippedOwn + s.SkippedOtherAccount + s.SkippedUnattributable + s.SkippedOtherRegion +
		s.Expected + s.Alerts + s.Suppressed + s.Undecided; got != s.InstanceSessions {
		t.Fatalf("outcomes add up to %d, not %d instance sessions: %+v", got, s.InstanceSessions, s)
	}
}

// FuzzProcessCWLPayload runs arbitrary CloudWatch Logs payloads through the
// decoder and the processor: nothing panics, every instance session is
// accounted for, and every alert renders as valid JSON.
func FuzzProcessCWLPayload(f *testing.F) {
	var recs [][]byte
	for _, s := range ctt.Scenarios {
		recs = append(recs, s.JSON())
	}
	f.Add(ctt.CWLPayload(recs...))
	f.Add(ctt.CWLPayload(ctt.Mix(20, 0.5, 3, 7)...))
	f.Add([]byte(`{"logEvents":[{"message":"{\"userIdentity\":{\"type\":\"AssumedRole\",\"principalId\":\"A:i-1a2b3c4d\"},\"sourceIPAddress\":\"::ffff:1.2.3.4\"}"}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var b cloudtrail.Batch
		_ = new(cloudtrail.Decoder).DecodeCWLPayload(payload, &b) // decoder errors are covered in package cloudtrail
		p := detect.NewProcessor(world(), detect.Config{Self: detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}}, Account: ctt.Account})
		res := p.ProcessBatch(context.Background(), &b)
		checkConservation(t, res.Stats)
		if res.Stats.NotInstance+res.Stats.InstanceSessions != len(b.Records) {
			t.Fatalf("stats %+v do not cover %d records", res.Stats, len(b.Records))
		}
		for _, a := range res.Alerts {
			out, err := a.Marshal(0)
			if err != nil || !json.Valid(out) {
				t.Fatalf("alert does not render: %v %q", err, out)
			}
		}
	})
}
