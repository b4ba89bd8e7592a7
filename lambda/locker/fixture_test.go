package main

// These tests run the shipped bootstrap (built with the bundler's flags,
// for this machine) against a local Lambda Runtime API and a fake EC2, IAM,
// STS and CloudFormation that keep state: what is checked is what the fakes
// received.
//
// This file holds the fixture: the fake account, the started function, the
// events and the helpers that read the locks and the output.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/lambdatest"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := lambdatest.CleanupBuilds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

const (
	vpcID       = "vpc-0a1b2c3d4e5f60718"
	webRole     = "web-role"
	webProfile  = "web-profile"
	webStack    = "Luke"
	web1        = "i-0aaaaaaaaaaaaaaa1"
	web2        = "i-0aaaaaaaaaaaaaaa2"
	adminRole   = "Admin"
	adminInst   = "i-0bbbbbbbbbbbbbbb1"
	evilRole    = "evil"
	evilInst    = "i-0ccccccccccccccc1"
	lockName    = "defenders-lock"
	invokeLimit = 60 * time.Second
)

// newCloud is an account with one running web instance whose role is
// under /defenders/, deployed by the CloudFormation stack Luke
// (CREATE_COMPLETE, with the instance profile, the instance and its lock),
// and two roles the locker must never write: Admin at "/" and evil at
// "/defendersx/", each with a running instance and no stack. Writes are
// limited to /defenders/ as the construct's IAM policy limits them.
func newCloud(t *testing.T) *lambdatest.Cloud {
	t.Helper()
	c := lambdatest.NewCloud(t)
	c.LimitWrites("/defenders/")
	c.AddRole(webRole, "/defenders/")
	c.AddInstanceProfile(webProfile, "/", webRole)
	c.PutInstance(lambdatest.Instance{ID: web1, State: "running", VPC: vpcID, PrivateIP: "10.0.1.10", PublicIP: "54.10.20.30", Profile: webProfile})
	c.PutStack(lambdatest.Stack{Name: webStack, Status: "CREATE_COMPLETE", Resources: []lambdatest.StackResource{
		{LogicalID: "LukeRole", PhysicalID: webRole, Type: "AWS::IAM::Role"},
		{LogicalID: "LukeProfile", PhysicalID: webProfile, Type: "AWS::IAM::InstanceProfile"},
		{LogicalID: "LukeInstance", PhysicalID: web1, Type: "AWS::EC2::Instance"},
		{LogicalID: "LukeLock", PhysicalID: "Luke-LukeLock-1A2B3C4D5E6F", Type: "AWS::IAM::Policy"},
	}})
	c.AddRole(adminRole, "/")
	c.AddInstanceProfile("admin-profile", "/", adminRole)
	c.PutInstance(lambdatest.Instance{ID: adminInst, State: "running", VPC: vpcID, PrivateIP: "10.0.1.20", PublicIP: "54.10.20.40", Profile: "admin-profile"})
	c.AddRole(evilRole, "/defendersx/")
	c.AddInstanceProfile("evil-profile", "/defendersx/", evilRole)
	c.PutInstance(lambdatest.Instance{ID: evilInst, State: "running", VPC: vpcID, PrivateIP: "10.0.1.30", PublicIP: "54.10.20.50", Profile: "evil-profile"})
	return c
}

// startLocker runs the shipped bootstrap against c with the construct's
// environment plus extra.
func startLocker(t *testing.T, c *lambdatest.Cloud, extra map[string]string) *lambdatest.Function {
	t.Helper()
	env := c.Env()
	env["DEFENDERS_ROLE_PATH"] = "/defenders/"
	env["DEFENDERS_POLICY_NAME"] = lockName
	for k, v := range extra {
		env[k] = v
	}
	return lambdatest.Start(t, lambdatest.BuildBootstrap(t, "."), env)
}

// calls returns every call the fake EC2, IAM and CloudFormation received
// (the function's own API calls; STS only serves the lockdown).
func calls(c *lambdatest.Cloud) []lambdatest.Call {
	return slices.Concat(c.EC2.Calls(""), c.IAM.Calls(""), c.CloudFormation.Calls(""))
}

// counts returns the calls per service-qualified action ("iam:PutRolePolicy").
func counts(c *lambdatest.Cloud) map[string]int {
	out := map[string]int{}
	for _, s := range []*lambdatest.Service{c.EC2, c.IAM, c.CloudFormation} {
		for action, n := range s.Counts() {
			out[s.Name+":"+action] += n
		}
	}
	return out
}

// eventSeq numbers the events' ids.
var eventSeq atomic.Int64

// event renders an EventBridge event.
func event(t *testing.T, detailType, source string, detail any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("00000000-0000-0000-0000-%012d", eventSeq.Add(1)),
		"detail-type": detailType, "source": source, "account": lambdatest.Account,
		"time": "2026-11-23T18:00:00Z", "region": lambdatest.Region, "resources": []string{}, "detail": detail,
	})
	if err != nil {
		t.Fatalf("encode event: %v", err)
	}
	return b
}

// stateChange is an "EC2 Instance State-change Notification".
func stateChange(t *testing.T, instance, state string) []byte {
	return event(t, "EC2 Instance State-change Notification", "aws.ec2", map[string]string{"instance-id": instance, "state": state})
}

// scheduled is a "Scheduled Event".
func scheduled(t *testing.T) []byte {
	return event(t, "Scheduled Event", "aws.events", map[string]any{})
}

// invoke sends one event and fails the test if there is no answer.
func invoke(t *testing.T, f *lambdatest.Function, payload []byte) (Summary, *lambdatest.ErrorPayload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), invokeLimit)
	defer cancel()
	body, fnErr, err := f.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var s Summary
	if fnErr == nil {
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatalf("response %q: %v", body, err)
		}
	}
	return s, fnErr
}

// mustSucceed invokes and fails the test on a function error.
func mustSucceed(t *testing.T, f *lambdatest.Function, payload []byte) Summary {
	t.Helper()
	s, fnErr := invoke(t, f, payload)
	if fnErr != nil {
		t.Fatalf("function error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
	}
	return s
}

// mustNotStart invokes and fails the test unless the function failed its
// start: it exits without serving the invocation and logs "init failed"
// (lambdarun.FailStart).
func mustNotStart(t *testing.T, f *lambdatest.Function, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), invokeLimit)
	defer cancel()
	if _, fnErr, err := f.Invoke(ctx, payload); err == nil {
		t.Fatalf("the function served an invocation (error %+v)", fnErr)
	}
	if !strings.Contains(f.Stdout(), `"msg":"init failed"`) {
		t.Errorf("no init failure logged: %s", f.Stdout())
	}
}

// puts returns the PutRolePolicy calls the fake IAM received for role.
func puts(c *lambdatest.Cloud, role string) []lambdatest.Call {
	var out []lambdatest.Call
	for _, call := range c.IAM.Calls("PutRolePolicy") {
		if call.Form.Get("RoleName") == role {
			out = append(out, call)
		}
	}
	return out
}

// lastLock parses the last lock written on role from the PutRolePolicy
// request the fake received (its form-decoded PolicyDocument) and returns
// the lock's aws:SourceIp list (empty in VPC-endpoints-only mode) and VPCs.
func lastLock(t *testing.T, c *lambdatest.Cloud, role string) (sourceIPs, vpcs []string) {
	t.Helper()
	return lastLockNamed(t, c, role, lockName)
}

// lastLockNamed is lastLock for a lock policy called policy.
func lastLockNamed(t *testing.T, c *lambdatest.Cloud, role, policy string) (sourceIPs, vpcs []string) {
	t.Helper()
	calls := puts(c, role)
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Status != http.StatusOK {
			continue
		}
		if name := calls[i].Form.Get("PolicyName"); name != policy {
			t.Fatalf("PutRolePolicy wrote policy %q, want %q", name, policy)
		}
		return parseLock(t, calls[i].Form.Get("PolicyDocument"))
	}
	t.Fatalf("no successful PutRolePolicy on %s", role)
	return nil, nil
}

func parseLock(t *testing.T, doc string) (sourceIPs, vpcs []string) {
	t.Helper()
	var d lockpolicy.Document
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("lock %q is not a policy: %v", doc, err)
	}
	list := func(v any) []string {
		switch v := v.(type) {
		case string:
			return []string{v}
		case []any:
			var out []string
			for _, s := range v {
				out = append(out, fmt.Sprint(s))
			}
			sort.Strings(out)
			return out
		}
		return nil
	}
	sourceIPs, vpcs = []string{}, []string{}
	for _, st := range d.Statement {
		if st.Effect != "Deny" {
			t.Errorf("the lock has a %s statement %s", st.Effect, st.Sid)
		}
		switch st.Sid {
		case lockpolicy.SidDenyPublicCallsFromOtherAddresses:
			sourceIPs = list(st.Condition["NotIpAddress"]["aws:SourceIp"])
		case lockpolicy.SidDenyEndpointCallsFromOtherVpcs:
			vpcs = list(st.Condition["StringNotEquals"]["aws:SourceVpc"])
		}
	}
	return sourceIPs, vpcs
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// logLine is the part of the function's log line the tests read.
type logLine struct {
	Level        string         `json:"level"`
	Msg          string         `json:"msg"`
	RequestID    string         `json:"requestId"`
	EventKind    string         `json:"eventKind"`
	APICalls     int            `json:"apiCalls"`
	Retries      int            `json:"retries"`
	Calls        map[string]int `json:"calls"`
	Error        string         `json:"error"`
	LocksSkipped int            `json:"locksSkipped"`
	Results      []struct {
		Role        string   `json:"role"`
		Action      string   `json:"action"`
		SourceIPs   []string `json:"sourceIps"`
		Reason      string   `json:"reason"`
		Stack       string   `json:"stack"`
		StackStatus string   `json:"stackStatus"`
	} `json:"results"`
	Skipped []struct {
		Role string `json:"role"`
	} `json:"skipped"`
	Lockdown *struct {
		Address string `json:"address"`
	} `json:"lockdown"`
}

// emfLine is the function's Embedded Metric Format line.
type emfLine struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	FallbackLocks float64 `json:"FallbackLocks"`
	Errors        float64 `json:"Errors"`
	LocksWritten  float64 `json:"LocksWritten"`
	LocksSkipped  float64 `json:"LocksSkipped"`
	APICalls      float64 `json:"APICalls"`
	DurationMs    float64 `json:"DurationMs"`
	RequestID     string  `json:"requestId"`
}

// output splits the function's stdout into log lines and EMF lines, and
// fails on anything else: every stdout line must be one or the other.
func output(t *testing.T, f *lambdatest.Function) ([]logLine, []emfLine) {
	t.Helper()
	var logs []logLine
	var metrics []emfLine
	for _, l := range f.StdoutLines() {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &probe); err != nil {
			t.Fatalf("stdout line is not JSON: %q", l)
		}
		if _, ok := probe["_aws"]; ok {
			var m emfLine
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("EMF line %q: %v", l, err)
			}
			metrics = append(metrics, m)
			continue
		}
		var lg logLine
		if err := json.Unmarshal([]byte(l), &lg); err != nil || lg.Msg == "" {
			t.Fatalf("stdout line %q is neither a log line nor EMF (%v)", l, err)
		}
		logs = append(logs, lg)
	}
	return logs, metrics
}

// last returns the output of the last invocation.
func last(t *testing.T, f *lambdatest.Function) (logLine, emfLine) {
	t.Helper()
	logs, metrics := output(t, f)
	if len(logs) == 0 || len(metrics) == 0 {
		t.Fatalf("no log or metrics line in stdout:\n%s", f.Stdout())
	}
	return logs[len(logs)-1], metrics[len(metrics)-1]
}
