package detect_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// TestRealInstanceSessions decides published CloudTrail records of
// instance-profile sessions (internal/cloudtrail/testdata/real; its README
// names each source), delivered through CloudWatch Logs as the deployed
// detector receives them: from the address the instance has, the call
// passes; the same record when the instance has another address alerts,
// naming the instance and the address.
func TestRealInstanceSessions(t *testing.T) {
	for _, tt := range []struct{ file, instance string }{
		// An EKS node's instance role calling the Pod Identity agent's API
		// (eventVersion 1.09, IMDSv2).
		{"eks_pod_identity_instance_session_v1.09.record.json", "i-02930ce60274d87a7"},
		// A NAT instance's SSM agent (eventVersion 1.11, IMDSv2).
		{"sst_nat_instance_ssm_v1.11.record.json", "i-08c93cd0f3e081958"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "cloudtrail", "testdata", "real", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				SourceIP     string `json:"sourceIPAddress"`
				UserIdentity struct {
					AccountID string `json:"accountId"`
				} `json:"userIdentity"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			decide := func(addr string) detect.Result {
				t.Helper()
				var b cloudtrail.Batch
				if err := new(cloudtrail.Decoder).DecodeCWLPayload(ctt.CWLPayload(raw), &b); err != nil || len(b.Records) != 1 {
					t.Fatalf("decode: %d records, %v", len(b.Records), err)
				}
				inv := detect.StaticInventory{tt.instance: {ID: tt.instance, PublicIPs: []netip.Addr{netip.MustParseAddr(addr)}}}
				return detect.NewProcessor(inv, detect.Config{Account: rec.UserIdentity.AccountID}).ProcessBatch(t.Context(), &b)
			}
			if res := decide(rec.SourceIP); res.Stats.InstanceSessions != 1 || len(res.Alerts) != 0 || len(res.Skipped) != 0 || len(res.Undecided) != 0 {
				t.Errorf("from the instance's own address: %+v", res)
			}
			res := decide("192.0.2.1")
			if len(res.Alerts) != 1 || res.Alerts[0].InstanceID != tt.instance || res.Alerts[0].SourceIP != rec.SourceIP || res.Alerts[0].Type != "BadSource" {
				t.Fatalf("from an address the instance does not have: %+v", res)
			}
			if !json.Valid(res.Alerts[0].CloudTrailEvent) {
				t.Errorf("the alert's record is not JSON: %s", res.Alerts[0].CloudTrailEvent)
			}
		})
	}
}

// TestRealCloudWatchLogsPayloads runs published CloudWatch Logs payloads of
// CloudTrail records (internal/cloudtrail/testdata/real) through the decoder
// and the processor as the detector does: every event is counted, none is
// malformed, and none of their records (AWS services, IAM users, role
// sessions that are not instances') is taken for an instance session.
func TestRealCloudWatchLogsPayloads(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "cloudtrail", "testdata", "real", "*.cwl.json"))
	if len(files) == 0 {
		t.Fatal("no payloads")
	}
	for _, f := range files {
		payload, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var env struct{ LogEvents []json.RawMessage }
		if err := json.Unmarshal(payload, &env); err != nil {
			t.Fatal(err)
		}
		var b cloudtrail.Batch
		if err := new(cloudtrail.Decoder).DecodeCWLCompressed(ctt.Gzip(payload), &b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		res := detect.NewProcessor(detect.StaticInventory{}, detect.Config{}).ProcessBatch(t.Context(), &b)
		if b.Events != len(env.LogEvents) || b.Malformed != 0 || res.Stats.InstanceSessions != 0 || len(res.Alerts) != 0 {
			t.Errorf("%s: %d events of %d, %d malformed, %d instance sessions, %d alerts", filepath.Base(f),
				b.Events, len(env.LogEvents), b.Malformed, res.Stats.InstanceSessions, len(res.Alerts))
		}
	}
}
