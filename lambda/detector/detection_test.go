package main

// Shipped-binary tests of what is detected and what an alert says.

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// TestAlertMessage checks the published alert: one SNS message with the
// anchor project's fields and the detector's additions.
func TestAlertMessage(t *testing.T) {
	f := start(t, nil)
	s := f.invokeOK(t, ctt.EventBridge(ctt.StolenFromForeignIP.JSON()))
	if s.Source != "eventbridge" || s.Alerts != 1 || s.Published != 1 {
		t.Errorf("summary %+v, want one published alert from eventbridge", s)
	}
	msgs := f.sns.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d SNS messages, want exactly 1", len(msgs))
	}
	m := msgs[0]
	if m.TopicARN != f.topicARN {
		t.Errorf("TopicArn %q, want %q", m.TopicARN, f.topicARN)
	}
	if m.Subject != "Potential Credential Compromise for "+ctt.InstanceID {
		t.Errorf("Subject %q", m.Subject)
	}
	if m.Attributes["severity"] != "HIGH" || m.Attributes["type"] != "BadSource" {
		t.Errorf("message attributes %v, want severity HIGH and type BadSource", m.Attributes)
	}
	if m.AccessKeyID != lambdatest.FakeAccessKeyID {
		t.Errorf("signed with %q, want the function's credentials", m.AccessKeyID)
	}
	a := f.alerts(t)[0]
	want := map[string]any{
		"type":          "BadSource",
		"instance_id":   ctt.InstanceID,
		"uniq_id":       ctt.InstanceID + "-" + ctt.AttackerIP,
		"account":       ctt.Account,
		"region":        ctt.Region,
		"role_arn":      ctt.InstanceRoleARN,
		"access_key_id": "ASIAYEXAMPLEINSTKEY1",
		"severity":      "HIGH",
		"source_ip":     ctt.AttackerIP,
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("alert %s = %v, want %v", k, a[k], v)
		}
	}
	if msg, _ := a["message"].(string); !strings.Contains(msg, ctt.AttackerIP) || !strings.Contains(msg, ctt.InstanceID) {
		t.Errorf("alert message %q does not name the address and the instance", msg)
	}
	var expected []string
	for _, ip := range a["expected_ips"].([]any) {
		expected = append(expected, ip.(string))
	}
	for _, ip := range []string{ctt.PublicIP, ctt.PublicIPv6, ctt.NATIP} {
		if !slices.Contains(expected, ip) {
			t.Errorf("expected_ips %v lacks %s", expected, ip)
		}
	}
	ev, ok := a["CloudTrailEvent"].(map[string]any)
	if !ok || ev["eventID"] != ctt.StolenFromForeignIP.Build().EventID || ev["sourceIPAddress"] != ctt.AttackerIP {
		t.Errorf("CloudTrailEvent is not the record: %v", a["CloudTrailEvent"])
	}
	if n := f.sqs.Count(""); n != 0 {
		t.Errorf("%d SQS calls, want none", n)
	}
	em := f.lastMetrics(t)
	if metric(t, em, "Alerts") != 1 || metric(t, em, "Published") != 1 || metric(t, em, "EventsSeen") != 1 {
		t.Errorf("metrics %v", em)
	}
	aws := em["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if aws["Namespace"] != MetricsNamespace {
		t.Errorf("metrics namespace %v", aws["Namespace"])
	}
}

// TestDetection runs the canonical scenarios through each delivery shape.
func TestDetection(t *testing.T) {
	shapes := []struct {
		name string
		wrap func(rec []byte) []byte
	}{
		{"eventbridge", ctt.EventBridge},
		{"cloudwatch-logs", func(rec []byte) []byte { return ctt.CWLEvent(ctt.CWLPayload(rec)) }},
		{"kinesis", func(rec []byte) []byte { return ctt.KinesisEvent(ctt.CWLPayload(rec)) }},
	}
	scenarios := []struct {
		scenario ctt.Scenario
		wantType string // "" for no alert
		severity string
	}{
		{ctt.InstanceFromPublicIP, "", ""},
		{ctt.InstanceFromIPv6, "", ""},
		{ctt.InstanceViaNAT, "", ""},
		{ctt.InstanceViaOwnEndpoint, "", ""},
		{ctt.InstanceAWSService, "", ""},
		{ctt.IAMUserCall, "", ""},
		{ctt.DetectorOnInstanceOwnCall, "", ""},
		{ctt.StolenFromForeignIP, "BadSource", "HIGH"},
		{ctt.InstanceViaForeignVPCE, "BadSource", "HIGH"},
		{ctt.UnknownInstanceCall, "InstanceMissing", "MEDIUM"},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			f := start(t, nil)
			for _, sc := range scenarios {
				t.Run(string(sc.scenario), func(t *testing.T) {
					before := len(f.sns.Messages())
					resp, fnErr := f.invoke(t, sh.wrap(sc.scenario.JSON()))
					if fnErr != nil {
						t.Fatalf("function error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
					}
					if sh.name == "kinesis" && string(resp) != `{"batchItemFailures":[]}` {
						t.Errorf("Kinesis response %s, want no failures", resp)
					}
					msgs := f.sns.Messages()[before:]
					switch {
					case sc.wantType == "" && len(msgs) != 0:
						t.Errorf("published %d alerts for a legitimate call: %s", len(msgs), msgs[0].Message)
					case sc.wantType != "" && len(msgs) != 1:
						t.Errorf("published %d alerts, want 1", len(msgs))
					case sc.wantType != "":
						if msgs[0].Attributes["type"] != sc.wantType || msgs[0].Attributes["severity"] != sc.severity {
							t.Errorf("alert attributes %v, want %s %s", msgs[0].Attributes, sc.wantType, sc.severity)
						}
					}
				})
			}
		})
	}
}

// TestCWLBatch sends a 1,000-event CloudWatch Logs batch mixing legitimate
// calls, stolen credentials and garbage.
func TestCWLBatch(t *testing.T) {
	const garbage = 25
	recs := ctt.Mix(1000-garbage-40, 0.6, mixInstances, 42)
	for i := range 40 {
		recs = append(recs, stolen(attackerIP(i%20), i)) // 20 distinct addresses, each twice
	}
	for i := range garbage {
		// Truncated instance-session records: they pass the pre-filter
		// and fail to decode.
		full := stolen(attackerIP(i), 1000+i)
		recs = append(recs, full[:len(full)/2])
	}
	// Expected alerts: one per (instance, foreign address); the other
	// uses of the same pair are suppressed.
	want := map[string]bool{}
	stolenRecords := 0
	for _, r := range recs {
		var rec struct {
			SourceIPAddress string `json:"sourceIPAddress"`
			UserIdentity    struct {
				PrincipalID string `json:"principalId"`
			} `json:"userIdentity"`
		}
		if json.Unmarshal(r, &rec) != nil || !strings.HasPrefix(rec.SourceIPAddress, "203.0.113.") {
			continue
		}
		want[rec.UserIdentity.PrincipalID[strings.LastIndexByte(rec.UserIdentity.PrincipalID, ':')+1:]+"-"+rec.SourceIPAddress] = true
		stolenRecords++
	}
	event := ctt.CWLEvent(ctt.CWLPayload(recs...))
	f := start(t, nil)
	began := time.Now()
	s := f.invokeOK(t, event)
	elapsed := time.Since(began)
	published, dead := f.uniqIDs(t)
	if len(dead) != 0 {
		t.Errorf("%d alerts dead-lettered, want none", len(dead))
	}
	var wantIDs []string
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	sort.Strings(wantIDs)
	if !slices.Equal(published, wantIDs) {
		t.Errorf("published uniq_ids\n got %v\nwant %v", published, wantIDs)
	}
	if s.Events != 1000 || s.Malformed != garbage || s.Alerts != len(wantIDs) || s.Suppressed != stolenRecords-len(wantIDs) {
		t.Errorf("summary %+v, want 1000 events, %d malformed, %d alerts, %d suppressed", s, garbage, len(wantIDs), stolenRecords-len(wantIDs))
	}
	em := f.lastMetrics(t)
	if metric(t, em, "Malformed") != garbage || metric(t, em, "EventsSeen") != 1000 || metric(t, em, "Alerts") != len(wantIDs) {
		t.Errorf("metrics %v", em)
	}
	if n := f.cloud.EC2.Count("DescribeInstances"); n > 1 {
		t.Errorf("%d DescribeInstances calls for a cold cache, want 1 (bulk prefetch)", n)
	}
	t.Logf("1,000-event CWL batch, cold container: %v end to end (%d alerts, %d bytes of event)", elapsed.Round(time.Millisecond), len(wantIDs), len(event))
}

// TestDuplicatesSuppressed checks deduplication within the window.
func TestDuplicatesSuppressed(t *testing.T) {
	tests := []struct {
		name           string
		events         [][]byte
		wantSuppressed int
	}{
		{"same event twice", [][]byte{ctt.EventBridge(stolen(ctt.AttackerIP, 1)), ctt.EventBridge(stolen(ctt.AttackerIP, 1))}, 1},
		{"same instance and address, other calls", [][]byte{
			ctt.CWLEvent(ctt.CWLPayload(stolen(ctt.AttackerIP, 1), stolen(ctt.AttackerIP, 2), stolen(ctt.AttackerIP, 3))),
			ctt.EventBridge(stolen(ctt.AttackerIP, 4)),
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			suppressed := 0
			for _, e := range tt.events {
				suppressed += f.invokeOK(t, e).Suppressed
			}
			if n := len(f.sns.Messages()); n != 1 {
				t.Errorf("%d alerts published, want 1", n)
			}
			if suppressed != tt.wantSuppressed {
				t.Errorf("%d suppressed, want %d", suppressed, tt.wantSuppressed)
			}
		})
	}
}
