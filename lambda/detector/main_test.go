package main

// These tests run the shipped artifact: the bootstrap binary built with the
// CDK bundler's flags (for the host platform), served by a local Lambda
// Runtime API and talking to local fake EC2, SNS and SQS endpoints
// (internal/lambdatest). Nothing in them calls the handler directly.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// detectorPkg is the package the construct builds.
const detectorPkg = "github.com/defenders-cdk/defenders/lambda/detector"

// mixInstances is the number of instances cloudtrailtest.Mix uses; the
// fake EC2 knows them all.
const mixInstances = 5

func TestMain(m *testing.M) {
	code := m.Run()
	if err := lambdatest.CleanupBuilds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// fixture is a started detector with its fake AWS around it.
type fixture struct {
	cloud    *lambdatest.Cloud
	sns      *lambdatest.SNS
	sqs      *lambdatest.SQS
	fn       *lambdatest.Function
	topicARN string
	queueURL string

	invocations int // invocations answered, each writes one EMF record
}

// fakeAWS starts the fake endpoints and returns the function's environment.
func fakeAWS(t testing.TB) (*fixture, map[string]string) {
	t.Helper()
	f := &fixture{
		cloud:    lambdatest.NewCloud(t),
		sns:      lambdatest.NewSNS(t),
		sqs:      lambdatest.NewSQS(t),
		topicARN: lambdatest.TopicARN("defenders-alerts"),
	}
	f.queueURL = f.sqs.QueueURL("defenders-dead-letters")
	f.cloud.PutInstance(lambdatest.Instance{
		ID: ctt.InstanceID, State: "running", VPC: ctt.VpcID,
		PrivateIP: ctt.PrivateIP, PublicIP: ctt.PublicIP, IPv6: []string{ctt.PublicIPv6},
	})
	for k := 1; k < mixInstances; k++ {
		f.cloud.PutInstance(lambdatest.Instance{
			ID: ctt.MixInstance(k), State: "running", VPC: ctt.VpcID,
			PrivateIP: fmt.Sprintf("10.0.3.%d", k), PublicIP: ctt.MixInstanceIP(k),
		})
	}
	f.cloud.EC2.Handle("DescribeNatGateways", describeNatGateways)
	f.cloud.EC2.Handle("DescribeVpcEndpoints", describeVpcEndpoints)
	env := map[string]string{
		EnvTopicARN:     f.topicARN,
		EnvDLQURL:       f.queueURL,
		EnvDedupeWindow: "1h",
		EnvInventoryTTL: "10m",
		EnvSelfRoleARN:  ctt.DetectorRoleARN,
	}
	for _, m := range []map[string]string{f.cloud.Env(), f.sns.Env(), f.sqs.Env()} {
		for k, v := range m {
			env[k] = v
		}
	}
	return f, env
}

// start runs the shipped bootstrap against fresh fakes; overrides change
// the environment ("" removes a variable).
func start(t testing.TB, overrides map[string]string) *fixture {
	t.Helper()
	f, env := fakeAWS(t)
	for k, v := range overrides {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	f.fn = lambdatest.Start(t, lambdatest.BuildBootstrap(t, detectorPkg), env)
	return f
}

// filterValues returns the values of the EC2 filter name in req.
func filterValues(req *lambdatest.Request, name string) []string {
	for i := 1; req.Form.Has("Filter." + strconv.Itoa(i) + ".Name"); i++ {
		p := "Filter." + strconv.Itoa(i)
		if req.Get(p+".Name") == name {
			return req.List(p + ".Value")
		}
	}
	return nil
}

// fakeVPC is a VPC of the fake account with one available NAT gateway
// and one interface endpoint. VPCs are regional: a call signed for another
// region does not see it.
type fakeVPC struct{ region, id, natID, natIP, endpoint string }

// fakeVPCs are the fixture VPC in the function's region and, for the
// cross-region tests, one in eu-west-1.
var fakeVPCs = []fakeVPC{
	{lambdatest.Region, ctt.VpcID, "nat-0123456789abcdef0", ctt.NATIP, ctt.OwnEndpoint},
	{euWest, euVPC, "nat-0e0e0e0e0e0e0e0e0", euNATIP, euEndpoint},
}

// describeNatGateways knows the NAT gateways of fakeVPCs.
func describeNatGateways(req *lambdatest.Request) (string, error) {
	vpcs, states := filterValues(req, "vpc-id"), filterValues(req, "state")
	if len(vpcs) == 0 {
		return "", lambdatest.Errorf(http.StatusBadRequest, "InvalidParameterValue", "the detector must filter on vpc-id")
	}
	var b strings.Builder
	b.WriteString("<natGatewaySet>")
	for _, v := range fakeVPCs {
		if v.region == req.Region && slices.Contains(vpcs, v.id) && (states == nil || slices.Contains(states, "available")) {
			fmt.Fprintf(&b, "<item><natGatewayId>%s</natGatewayId><vpcId>%s</vpcId><state>available</state>"+
				"<natGatewayAddressSet><item><publicIp>%s</publicIp><privateIp>10.0.0.5</privateIp><isPrimary>true</isPrimary></item></natGatewayAddressSet></item>",
				v.natID, v.id, v.natIP)
		}
	}
	b.WriteString("</natGatewaySet>")
	return b.String(), nil
}

// describeVpcEndpoints knows the endpoints of fakeVPCs.
func describeVpcEndpoints(req *lambdatest.Request) (string, error) {
	vpcs := filterValues(req, "vpc-id")
	if len(vpcs) == 0 {
		return "", lambdatest.Errorf(http.StatusBadRequest, "InvalidParameterValue", "the detector must filter on vpc-id")
	}
	var b strings.Builder
	b.WriteString("<vpcEndpointSet>")
	for _, v := range fakeVPCs {
		if v.region == req.Region && slices.Contains(vpcs, v.id) {
			fmt.Fprintf(&b, "<item><vpcEndpointId>%s</vpcEndpointId><vpcEndpointType>Interface</vpcEndpointType><vpcId>%s</vpcId><state>available</state></item>",
				v.endpoint, v.id)
		}
	}
	b.WriteString("</vpcEndpointSet>")
	return b.String(), nil
}

// invoke sends an event and returns the response or the function error.
func (f *fixture) invoke(t testing.TB, payload []byte) ([]byte, *lambdatest.ErrorPayload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, fnErr, err := f.fn.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	f.invocations++
	return resp, fnErr
}

// invokeOK invokes and fails the test on a function error.
func (f *fixture) invokeOK(t testing.TB, payload []byte) Summary {
	t.Helper()
	resp, fnErr := f.invoke(t, payload)
	if fnErr != nil {
		t.Fatalf("function error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
	}
	var s Summary
	if err := json.Unmarshal(resp, &s); err != nil {
		t.Fatalf("response %s: %v", resp, err)
	}
	return s
}

// lastMetrics returns the EMF record of the last invocation. The
// function's stdout reaches the test through a pipe, possibly after the
// Runtime API answer: it waits for the record.
func (f *fixture) lastMetrics(t testing.TB) map[string]any {
	t.Helper()
	var records []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		records = records[:0]
		for _, l := range f.fn.StdoutLines() {
			if strings.Contains(l, `"_aws"`) {
				records = append(records, l)
			}
		}
		if len(records) >= f.invocations && len(records) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d EMF records on stdout after %d invocations", len(records), f.invocations)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(records[len(records)-1]), &m); err != nil {
		t.Fatalf("EMF record %q: %v", records[len(records)-1], err)
	}
	return m
}

// metric reads a count from an EMF record.
func metric(t testing.TB, m map[string]any, name string) int {
	t.Helper()
	v, ok := m[name].(float64)
	if !ok {
		t.Fatalf("EMF record has no %s: %v", name, m)
	}
	return int(v)
}

// alerts decodes the alerts published to SNS.
func (f *fixture) alerts(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range f.sns.Messages() {
		var a map[string]any
		if err := json.Unmarshal([]byte(m.Message), &a); err != nil {
			t.Fatalf("SNS message is not JSON: %v\n%s", err, m.Message)
		}
		out = append(out, a)
	}
	return out
}

// deadLetters decodes the alert dead letters in SQS.
func (f *fixture) deadLetters(t testing.TB) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	for _, m := range f.sqs.Messages() {
		var d DeadLetter
		if err := json.Unmarshal([]byte(m.Body), &d); err != nil {
			t.Fatalf("dead letter is not JSON: %v\n%s", err, m.Body)
		}
		if m.QueueURL != f.queueURL {
			t.Errorf("dead letter sent to %s, want %s", m.QueueURL, f.queueURL)
		}
		out = append(out, d)
	}
	return out
}

// uniqIDs returns the sorted uniq_id of alerts published to SNS and of
// alerts dead-lettered to SQS.
func (f *fixture) uniqIDs(t testing.TB) (published, deadLettered []string) {
	t.Helper()
	for _, a := range f.alerts(t) {
		published = append(published, a["uniq_id"].(string))
	}
	for _, d := range f.deadLetters(t) {
		var a struct {
			UniqID string `json:"uniq_id"`
		}
		if err := json.Unmarshal(d.Alert, &a); err != nil {
			t.Fatalf("dead letter alert: %v", err)
		}
		deadLettered = append(deadLettered, a.UniqID)
	}
	sort.Strings(published)
	sort.Strings(deadLettered)
	return published, deadLettered
}

// stolen returns a stolen-credential record of the fixture instance used
// from attacker address ip.
func stolen(ip string, n int) []byte {
	e := ctt.StolenFromForeignIP.Build()
	e.SourceIP = ip
	e.EventID = fmt.Sprintf("5a3b1c7d-84e6-4f40-9d3b-%012d", n)
	return e.JSON()
}

// attackerIP returns the i-th attacker address.
func attackerIP(i int) string { return fmt.Sprintf("203.0.113.%d", 1+i%250) }

// stolenBatch returns a CloudWatch Logs event with n stolen-credential
// records from n addresses, and the uniq_ids they must raise.
func stolenBatch(n int) ([]byte, []string) {
	recs := make([][]byte, n)
	ids := make([]string, n)
	for i := range n {
		recs[i] = stolen(attackerIP(i), i)
		ids[i] = ctt.InstanceID + "-" + attackerIP(i)
	}
	sort.Strings(ids)
	return ctt.CWLEvent(ctt.CWLPayload(recs...)), ids
}

func TestShippedBinaryLinksNoCDK(t *testing.T) {
	bin := lambdatest.BuildBootstrap(t, detectorPkg)
	for _, dep := range lambdatest.ModuleDeps(t, bin) {
		if strings.Contains(dep, "jsii") || strings.Contains(dep, "aws-cdk-go") || strings.Contains(dep, "constructs-go") {
			t.Errorf("the Lambda binary links %s", dep)
		}
	}
}

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

// TestSNSRetries checks that throttling and server errors are retried and
// the alert is published once.
func TestSNSRetries(t *testing.T) {
	throttled := lambdatest.Errorf(http.StatusBadRequest, "Throttled", "Rate exceeded")
	internal := lambdatest.Errorf(http.StatusInternalServerError, "InternalError", "Internal error")
	tests := []struct {
		name   string
		faults []*lambdatest.APIError
	}{
		{"throttled 3 times", lambdatest.Repeat(3, throttled)},
		{"500 3 times", lambdatest.Repeat(3, internal)},
		{"throttled then 500", []*lambdatest.APIError{throttled, internal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			f.sns.InjectFaults("Publish", tt.faults...)
			s := f.invokeOK(t, ctt.EventBridge(ctt.StolenFromForeignIP.JSON()))
			if got := len(f.sns.Messages()); got != 1 || s.Published != 1 {
				t.Errorf("%d messages published (summary %+v), want 1", got, s)
			}
			if got, want := f.sns.Count("Publish"), len(tt.faults)+1; got != want {
				t.Errorf("%d Publish calls, want %d", got, want)
			}
			if n := f.sqs.Count(""); n != 0 {
				t.Errorf("%d SQS calls, want none", n)
			}
		})
	}
}

// TestDeadLetters checks that alerts SNS does not take land in the
// dead-letter queue, and that no alert is lost.
func TestDeadLetters(t *testing.T) {
	const n = 12
	tests := []struct {
		name         string
		setup        func(f *fixture)
		wantAttempts int // per dead-lettered alert; 0: not checked
		allDead      bool
	}{
		{
			name:         "SNS down",
			setup:        func(f *fixture) { f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error")) },
			wantAttempts: 4,
			allDead:      true,
		},
		{
			name: "SNS refuses (permanent error, no retries)",
			setup: func(f *fixture) {
				f.sns.SetFailure(lambdatest.Errorf(403, "AuthorizationError", "not authorized to perform: SNS:Publish"))
			},
			wantAttempts: 1,
			allDead:      true,
		},
		{
			name: "SNS flaky",
			setup: func(f *fixture) {
				f.sns.InjectFaults("Publish", lambdatest.Repeat(3*n, f.sns.Throttled())...)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			tt.setup(f)
			event, want := stolenBatch(n)
			s := f.invokeOK(t, event)
			published, dead := f.uniqIDs(t)
			all := append(slices.Clone(published), dead...)
			sort.Strings(all)
			if !slices.Equal(all, want) {
				t.Fatalf("alerts lost or duplicated:\npublished %v\ndead-lettered %v\nwant %v", published, dead, want)
			}
			if s.Published != len(published) || s.DeadLettered != len(dead) {
				t.Errorf("summary %+v, want %d published and %d dead-lettered", s, len(published), len(dead))
			}
			if tt.allDead && len(dead) != n {
				t.Errorf("%d alerts dead-lettered, want %d", len(dead), n)
			}
			for i, d := range f.deadLetters(t) {
				msg := f.sqs.Messages()[i]
				if d.Kind != "alert" || d.TopicARN != f.topicARN || d.Error == "" || d.RequestID == "" ||
					!strings.HasPrefix(d.Subject, "Potential Credential Compromise for ") || d.FailedAt == "" {
					t.Errorf("dead letter %+v", d)
				}
				if tt.wantAttempts != 0 && d.Attempts != tt.wantAttempts {
					t.Errorf("dead letter after %d attempts, want %d", d.Attempts, tt.wantAttempts)
				}
				if msg.Attributes["kind"] != "alert" || msg.Attributes["type"] != "BadSource" ||
					msg.Attributes["severity"] != "HIGH" || !strings.HasPrefix(msg.Attributes["uniq_id"], ctt.InstanceID) {
					t.Errorf("dead letter attributes %v", msg.Attributes)
				}
			}
			em := f.lastMetrics(t)
			if metric(t, em, "PublishFailures") != len(dead) || metric(t, em, "DeadLettered") != len(dead) {
				t.Errorf("metrics %v, want %d publish failures dead-lettered", em, len(dead))
			}
		})
	}
}

// TestNothingDelivered checks that when neither SNS nor the dead-letter
// queue takes the alerts, the invocation fails, and that Lambda's retry
// delivers them.
func TestNothingDelivered(t *testing.T) {
	f := start(t, nil)
	f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error"))
	f.sqs.SetFailure(f.sqs.ServerError())
	event, want := stolenBatch(3)
	_, fnErr := f.invoke(t, event)
	if fnErr == nil {
		t.Fatal("the invocation succeeded; want an error so that Lambda retries it")
	}
	if fnErr.ErrorType != ErrTypeUndelivered || !strings.Contains(fnErr.ErrorMessage, "3 alerts") {
		t.Errorf("error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
	}
	if em := f.lastMetrics(t); metric(t, em, "Undelivered") != 3 {
		t.Errorf("metrics %v", em)
	}
	// Lambda retries the event once the queue is back.
	f.sqs.SetFailure(nil)
	s := f.invokeOK(t, event)
	if _, dead := f.uniqIDs(t); !slices.Equal(dead, want) || s.DeadLettered != 3 {
		t.Errorf("after the retry, dead-lettered %v (summary %+v), want %v", dead, s, want)
	}
}

// TestKinesisBatchItemFailures checks the partial batch response.
func TestKinesisBatchItemFailures(t *testing.T) {
	payloads := [][]byte{
		ctt.CWLPayload(ctt.InstanceFromPublicIP.JSON()),                  // 0: legitimate
		ctt.CWLPayload(stolen(attackerIP(1), 1)),                         // 1: alert
		ctt.CWLPayload(ctt.IAMUserCall.JSON(), stolen(attackerIP(2), 2)), // 2: alert
		[]byte("this is not a CloudWatch Logs payload"),                  // 3: malformed, not retried
		ctt.CWLPayload(ctt.IAMUserCall.JSON()),                           // 4: nothing to check
	}
	event := ctt.KinesisEvent(payloads...)
	down := lambdatest.Errorf(500, "InternalError", "Internal error")
	tests := []struct {
		name     string
		setup    func(f *fixture)
		wantSeqs []int
		wantDead int
	}{
		{name: "delivered", setup: func(*fixture) {}},
		{name: "SNS down, dead-lettered", setup: func(f *fixture) { f.sns.SetFailure(down) }, wantDead: 2},
		{name: "SNS and SQS down", setup: func(f *fixture) { f.sns.SetFailure(down); f.sqs.SetFailure(f.sqs.ServerError()) }, wantSeqs: []int{1, 2}},
		{
			name: "inventory down: undecided records are retried",
			setup: func(f *fixture) {
				f.cloud.EC2.InjectFaults("DescribeInstances", lambdatest.Repeat(20,
					lambdatest.Errorf(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."))...)
			},
			wantSeqs: []int{0, 1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			tt.setup(f)
			resp, fnErr := f.invoke(t, event)
			if fnErr != nil {
				t.Fatalf("function error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
			}
			var got struct {
				BatchItemFailures []struct {
					ItemIdentifier string `json:"itemIdentifier"`
				} `json:"batchItemFailures"`
			}
			if err := json.Unmarshal(resp, &got); err != nil {
				t.Fatalf("response %s: %v", resp, err)
			}
			var seqs []string
			for _, f := range got.BatchItemFailures {
				seqs = append(seqs, f.ItemIdentifier)
			}
			var want []string
			for _, i := range tt.wantSeqs {
				want = append(want, ctt.KinesisSequence(i))
			}
			if !slices.Equal(seqs, want) {
				t.Errorf("batchItemFailures %v, want %v", seqs, want)
			}
			if n := len(f.sqs.Messages()); n != tt.wantDead {
				t.Errorf("%d dead letters, want %d", n, tt.wantDead)
			}
			if em := f.lastMetrics(t); metric(t, em, "Malformed") != 1 {
				t.Errorf("metrics %v, want 1 malformed record", em)
			}
		})
	}
}

// TestUndecidedFailsAsyncInvocation checks that records the inventory could
// not decide fail a CloudWatch Logs invocation, so that Lambda retries it
// (and finally dead-letters the event), instead of being dropped.
func TestUndecidedFailsAsyncInvocation(t *testing.T) {
	f := start(t, nil)
	f.cloud.EC2.InjectFaults("DescribeInstances", lambdatest.Repeat(3,
		lambdatest.Errorf(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."))...)
	event, _ := stolenBatch(2)
	_, fnErr := f.invoke(t, event)
	if fnErr == nil || fnErr.ErrorType != ErrTypeUndecided {
		t.Fatalf("function error %+v, want %s", fnErr, ErrTypeUndecided)
	}
	if !strings.Contains(fnErr.ErrorMessage, "2 records") || !strings.Contains(fnErr.ErrorMessage, "UnauthorizedOperation") {
		t.Errorf("error message %q does not say what failed", fnErr.ErrorMessage)
	}
	if n := len(f.sns.Messages()); n != 0 {
		t.Errorf("%d alerts published without an inventory answer", n)
	}
	if em := f.lastMetrics(t); metric(t, em, "Undecided") != 2 {
		t.Errorf("metrics %v, want 2 undecided", em)
	}
}

// TestOversizedRecord checks that an alert about a record too large for
// SNS or SQS is still delivered, with the record summarised.
func TestOversizedRecord(t *testing.T) {
	e := ctt.StolenFromForeignIP.Build()
	e.RequestParameters = `{"blob":"` + strings.Repeat("A", 254<<10) + `"}`
	event := ctt.CWLEvent(ctt.CWLPayload(e.JSON()))
	tests := []struct {
		name    string
		snsDown bool
	}{
		{"published", false},
		{"dead-lettered", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			if tt.snsDown {
				f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error"))
			}
			f.invokeOK(t, event)
			var alert []byte
			if tt.snsDown {
				d := f.deadLetters(t)
				if len(d) != 1 {
					t.Fatalf("%d dead letters, want 1", len(d))
				}
				alert = d[0].Alert
			} else {
				m := f.sns.Messages()
				if len(m) != 1 {
					t.Fatalf("%d SNS messages, want 1", len(m))
				}
				alert = []byte(m[0].Message)
			}
			var a struct {
				UniqID          string `json:"uniq_id"`
				CloudTrailEvent struct {
					Truncated bool   `json:"truncated"`
					EventID   string `json:"eventID"`
				} `json:"CloudTrailEvent"`
			}
			if err := json.Unmarshal(alert, &a); err != nil {
				t.Fatal(err)
			}
			if !a.CloudTrailEvent.Truncated || a.CloudTrailEvent.EventID != e.EventID || a.UniqID != ctt.InstanceID+"-"+ctt.AttackerIP {
				t.Errorf("alert %s", alert)
			}
		})
	}
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

// TestGarbagePayloads checks that unusable events fail their invocation
// and that the process keeps serving.
func TestGarbagePayloads(t *testing.T) {
	f := start(t, nil)
	tests := []struct {
		name    string
		payload string
	}{
		{"not JSON", "this is not JSON"},
		{"truncated JSON", `{"awslogs":{"data":"H4sI`},
		{"JSON array", `[1,2,3]`},
		{"JSON string", `"hello"`},
		{"empty object", `{}`},
		{"unknown shape", `{"Records":[{"eventSource":"aws:s3","s3":{}}]}`},
		{"bad base64", `{"awslogs":{"data":"!!!not base64!!!"}}`},
		{"bad gzip", `{"awslogs":{"data":"aGVsbG8gd29ybGQ="}}`},
		{"EventBridge detail not an object", `{"detail-type":"AWS API Call via CloudTrail","detail":[}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fnErr := f.invoke(t, []byte(tt.payload))
			if fnErr == nil {
				t.Fatal("the invocation succeeded; want an error (Lambda retries, then dead-letters the event)")
			}
			if fnErr.ErrorType != ErrTypeInvalidEvent {
				t.Errorf("error type %q (%s), want %s", fnErr.ErrorType, fnErr.ErrorMessage, ErrTypeInvalidEvent)
			}
		})
	}
	if exited, err := f.fn.Exited(); exited {
		t.Fatalf("the function exited: %v", err)
	}
	if s := f.invokeOK(t, ctt.EventBridge(ctt.StolenFromForeignIP.JSON())); s.Published != 1 {
		t.Errorf("after garbage: summary %+v, want the alert published", s)
	}
}

// TestSettingsFailClosed checks that a misconfigured function does not
// start.
func TestSettingsFailClosed(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no topic", map[string]string{EnvTopicARN: ""}},
		{"no dead-letter queue", map[string]string{EnvDLQURL: ""}},
		{"bad dedupe window", map[string]string{EnvDedupeWindow: "an hour"}},
		{"bad lockdown flag", map[string]string{EnvLockdown: "yes please"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, tt.env)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, fnErr, err := f.fn.Invoke(ctx, ctt.EventBridge(ctt.StolenFromForeignIP.JSON())); err == nil {
				t.Fatalf("the function served an invocation (error %+v)", fnErr)
			}
			if !strings.Contains(f.fn.Stdout(), "init failed") {
				t.Errorf("no init failure logged: %s", f.fn.Stdout())
			}
		})
	}
}

// TestLockdown checks that DEFENDERS_LOCKDOWN locks the credentials at cold
// start and fails closed.
func TestLockdown(t *testing.T) {
	tests := []struct {
		name      string
		checkip   http.HandlerFunc
		wantStart bool
	}{
		{"locked", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "198.51.100.5\n") }, true},
		{"address lookup fails", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkip := httptest.NewServer(tt.checkip)
			defer checkip.Close()
			f := start(t, map[string]string{
				EnvLockdown:             "true",
				"DEFENDERS_CHECKIP_URL": checkip.URL,
				EnvSelfRoleARN:          lambdatest.FunctionRoleARN,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, fnErr, err := f.fn.Invoke(ctx, ctt.EventBridge(ctt.StolenFromForeignIP.JSON()))
			if !tt.wantStart {
				if err == nil {
					t.Fatalf("the function started unlocked: %s %+v", resp, fnErr)
				}
				return
			}
			if err != nil || fnErr != nil {
				t.Fatalf("invoke: %v %+v", err, fnErr)
			}
			assume := f.cloud.STS.Calls("AssumeRole")
			if len(assume) != 1 || assume[0].Form.Get("RoleArn") != lambdatest.FunctionRoleARN ||
				!strings.Contains(assume[0].Form.Get("Policy"), "198.51.100.5") {
				t.Fatalf("AssumeRole calls %+v", assume)
			}
			for _, c := range append(f.cloud.EC2.Calls(""), f.sns.Calls("")...) {
				if c.AccessKeyID != lambdatest.SessionAccessKeyID {
					t.Errorf("%s signed with %s, want the locked session", c.Action, c.AccessKeyID)
				}
			}
			if len(f.sns.Messages()) != 1 {
				t.Errorf("%d alerts published, want 1", len(f.sns.Messages()))
			}
		})
	}
}

// --- Figures --------------------------------------------------------------

// firstNextServer is a Runtime API that only records when the first GET
// .../invocation/next arrives, and holds it.
func firstNextServer(t testing.TB) (addr string, first <-chan time.Time) {
	ch := make(chan time.Time, 1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/invocation/next") {
			now := time.Now()
			once.Do(func() { ch <- now })
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ch
}

// coldStart starts the binary and returns the time from process start to
// its first /next request.
func coldStart(t testing.TB, bin string, env map[string]string) time.Duration {
	t.Helper()
	addr, first := firstNextServer(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"AWS_LAMBDA_RUNTIME_API=" + addr, "AWS_REGION=" + lambdatest.Region,
		"AWS_ACCESS_KEY_ID=" + lambdatest.FakeAccessKeyID, "AWS_SECRET_ACCESS_KEY=" + lambdatest.FakeSecretAccessKey,
		"AWS_SESSION_TOKEN=" + lambdatest.FakeSessionToken, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(t.TempDir(), "none"),
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	select {
	case at := <-first:
		return at.Sub(began)
	case <-time.After(20 * time.Second):
		t.Fatalf("no /next request within 20 s; output:\n%s", out.String())
		return 0
	}
}

// TestFigureColdStart measures process start to first /next request.
func TestFigureColdStart(t *testing.T) {
	bin := lambdatest.BuildBootstrap(t, detectorPkg)
	_, env := fakeAWS(t)
	const starts = 11
	d := make([]time.Duration, starts)
	for i := range d {
		d[i] = coldStart(t, bin, env)
	}
	slices.Sort(d)
	t.Logf("cold start (process start to first /next, %s/%s, %d starts): median %v, min %v, max %v",
		runtime.GOOS, runtime.GOARCH, starts, d[starts/2].Round(10*time.Microsecond), d[0].Round(10*time.Microsecond), d[starts-1].Round(10*time.Microsecond))
	if d[starts/2] > 2*time.Second {
		t.Errorf("median cold start %v is over 2 s", d[starts/2])
	}
}

// TestFigureArtifactSize builds the deployed artifact (linux/arm64, the
// bundler's flags) and reports its zipped size.
func TestFigureArtifactSize(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the linux/arm64 artifact")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	args := append([]string{"build"}, lambdatest.BuildFlags...)
	cmd := exec.Command("go", append(args, "-o", bin, detectorPkg)...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "bootstrap", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("linux/arm64 bootstrap: %d bytes, zipped (Deflate) %d bytes", len(raw), zipped.Len())
	if zipped.Len() > 50<<20 {
		t.Errorf("zipped artifact %d bytes exceeds Lambda's 50 MB direct upload limit", zipped.Len())
	}
}

// BenchmarkInvokeCWL1000 measures one invocation with a 1,000-event
// CloudWatch Logs batch, end to end through the binary and the fakes (the
// inventory cache warm, deduplication off so that every invocation
// publishes its alerts).
func BenchmarkInvokeCWL1000(b *testing.B) {
	recs := ctt.Mix(1000, 0.6, mixInstances, 7)
	event := ctt.CWLEvent(ctt.CWLPayload(recs...))
	f := start(b, map[string]string{EnvDedupeWindow: "0s"})
	first := f.invokeOK(b, event)
	for b.Loop() {
		f.invokeOK(b, event)
	}
	b.ReportMetric(float64(first.Alerts), "alerts/op")
	b.ReportMetric(f.lastMetrics(b)["DurationMs"].(float64), "handler-ms(last)")
}

// BenchmarkColdStart measures process start to first /next request.
func BenchmarkColdStart(b *testing.B) {
	bin := lambdatest.BuildBootstrap(b, detectorPkg)
	_, env := fakeAWS(b)
	b.ResetTimer()
	for b.Loop() {
		coldStart(b, bin, env)
	}
}
