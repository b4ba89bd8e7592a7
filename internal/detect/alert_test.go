package detect_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

func alertFor(t *testing.T, s ctt.Scenario) detect.Alert {
	t.Helper()
	rec := record(s)
	id, _ := detect.IsInstanceSession(&rec)
	inst, found, _ := world().Lookup(t.Context(), id)
	v := detect.Decide(&rec, inst, found)
	if v.Kind == detect.OK {
		t.Fatalf("%s is OK", s)
	}
	return detect.NewAlert(&rec, id, inst, v)
}

func TestAlertJSONIsAnchorCompatible(t *testing.T) {
	a := alertFor(t, ctt.StolenFromForeignIP)
	b, err := a.Marshal(detect.SNSMaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want any
	}{
		{"type", "BadSource"},
		{"message", "Event from IP 203.0.113.66 for instance i-0a1b2c3d4e5f60718 is not from expected addresses"},
		{"expected_ips", []any{ctt.PublicIP, ctt.ElasticIP, ctt.PublicIPv6, ctt.NATIP}},
		{"instance_id", ctt.InstanceID},
		{"uniq_id", ctt.InstanceID + "-" + ctt.AttackerIP},
		{"account", ctt.Account},
		{"region", ctt.Region},
		{"role_arn", ctt.InstanceRoleARN},
		{"access_key_id", "ASIAYEXAMPLEINSTKEY1"},
		{"severity", "HIGH"},
		{"event_time", "2024-05-14T10:00:00Z"},
		{"event_name", "ListBuckets"},
		{"source_ip", ctt.AttackerIP},
		{"ec2_role_delivery", "2.0"},
	}
	for _, tt := range tests {
		t.Run("the "+tt.key+" field is set", func(t *testing.T) {
			got, _ := json.Marshal(m[tt.key])
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("%s = %s, want %s", tt.key, got, want)
			}
		})
	}
	t.Run("the CloudTrail event is embedded as an object", func(t *testing.T) {
		ev, ok := m["CloudTrailEvent"].(map[string]any)
		if !ok || ev["eventID"] != "5a3b1c7d-84e6-4f40-9d3b-0e2f9c6b4a05" {
			t.Errorf("CloudTrailEvent = %v", m["CloudTrailEvent"])
		}
	})
	t.Run("delivery metadata is not published", func(t *testing.T) {
		if strings.Contains(string(b), "SequenceNumber") || strings.Contains(string(b), "DeliveryID") {
			t.Errorf("JSON leaks internal fields: %s", b)
		}
	})
	t.Run("the subject names the instance", func(t *testing.T) {
		if s := a.Subject(); s != "Potential Credential Compromise for "+ctt.InstanceID {
			t.Errorf("Subject = %q", s)
		}
	})
}

func TestInstanceMissingAlertHasEmptyExpectedIPs(t *testing.T) {
	a := alertFor(t, ctt.UnknownInstanceCall)
	b, err := a.Marshal(0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"expected_ips":[]`) || a.Type != "InstanceMissing" || a.Severity != detect.SeverityMedium {
		t.Errorf("alert = %s", b)
	}
}

func TestAlertThroughForeignEndpointListsTheExpectedEndpoints(t *testing.T) {
	a := alertFor(t, ctt.InstanceViaForeignVPCE)
	if a.VPCEndpointID != ctt.ForeignEndpoint || !slices.Contains(a.ExpectedVPCEs, ctt.OwnEndpoint) {
		t.Errorf("endpoint %q, expected %v", a.VPCEndpointID, a.ExpectedVPCEs)
	}
}

func TestAlertMarshalTruncatesHugeRecords(t *testing.T) {
	e := ctt.StolenFromForeignIP.Build()
	e.RequestParameters = `{"policy":"` + strings.Repeat("x", 300<<10) + `"}`
	rec, err := cloudtrail.ParseRecord(e.JSON())
	if err != nil {
		t.Fatal(err)
	}
	a := detect.NewAlert(&rec, ctt.InstanceID, theInstance(), detect.Decide(&rec, theInstance(), true))
	t.Run("an oversized alert is cut to fit with a summary of the record", func(t *testing.T) {
		b, err := a.Marshal(detect.SNSMaxMessageBytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > detect.SNSMaxMessageBytes || !strings.Contains(string(b), `"truncated":true`) || !strings.Contains(string(b), `"eventID":"5a3b1c7d`) {
			t.Errorf("%d bytes: %.300s", len(b), b)
		}
	})
	t.Run("an alert that cannot fit even truncated is an error", func(t *testing.T) {
		if _, err := a.Marshal(100); err == nil || !strings.Contains(err.Error(), "100-byte limit") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("without a limit the whole record is kept", func(t *testing.T) {
		b, err := a.Marshal(0)
		if err != nil || len(b) < 300<<10 {
			t.Errorf("%d bytes, %v", len(b), err)
		}
	})
}

func TestAlertEmbedsInvalidRawAsAString(t *testing.T) {
	rec := record(ctt.StolenFromForeignIP)
	rec.SetJSON([]byte("\xff{not json"))
	a := detect.NewAlert(&rec, ctt.InstanceID, theInstance(), detect.Decide(&rec, theInstance(), true))
	b, err := a.Marshal(0)
	if err != nil || !json.Valid(b) || !strings.Contains(string(b), "\"CloudTrailEvent\":\"\uFFFD{not json\"") {
		t.Errorf("alert = %s, %v", b, err)
	}
}

func TestAlertWithUnknownInstanceIDUsesThePrincipal(t *testing.T) {
	rec := record(ctt.StolenFromForeignIP)
	a := detect.NewAlert(&rec, "", detect.Instance{}, detect.Verdict{Kind: detect.InstanceMissing, Severity: detect.SeverityMedium})
	if a.UniqID != rec.UserIdentity.PrincipalID+"-"+ctt.AttackerIP || !strings.Contains(a.Message, "(unknown id)") {
		t.Errorf("alert = %+v", a)
	}
}
