package main

// These tests run the shipped artifact: the bootstrap binary built with the
// CDK bundler's flags (for the host platform), served by a local Lambda
// Runtime API and talking to local fake EC2, SNS and SQS endpoints
// (internal/lambdatest). Nothing in them calls the handler directly; the
// handler's own unit tests are in internal/detectorfn.
//
// This file holds the fixture: the fakes, the started function and the
// helpers that read what it did.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
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

// Stolen-credential fixtures, shared with the other detector tests (cloudtrailtest).
var (
	stolen      = ctt.Stolen
	attackerIP  = ctt.AttackerAddr
	stolenBatch = ctt.StolenBatch
)
