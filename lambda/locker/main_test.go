package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// These tests run the shipped bootstrap (built with the bundler's flags,
// for this machine) against a local Lambda Runtime API and a fake EC2, IAM,
// STS and CloudFormation that keep state: what is checked is what the fakes
// received.

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

func TestLocksFollowInstances(t *testing.T) {
	t.Run("a running instance's state change writes its public IP into the lock", func(t *testing.T) {
		c := newCloud(t)
		f := startLocker(t, c, nil)
		s := mustSucceed(t, f, stateChange(t, web1, "running"))
		if s.Written != 1 || s.Roles != 1 || s.Errors != 0 {
			t.Errorf("summary %+v, want one role written", s)
		}
		ips, vpcs := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp", ips, "54.10.20.30/32")
		wantList(t, "aws:SourceVpc", vpcs, vpcID)
		if doc, ok := c.RolePolicy(webRole, lockName); !ok || !strings.Contains(doc, "54.10.20.30/32") {
			t.Errorf("the fake's role policy is %q", doc)
		}
	})

	t.Run("a stop and a start with a new address move the lock to the new address", func(t *testing.T) {
		c := newCloud(t)
		f := startLocker(t, c, nil)
		mustSucceed(t, f, stateChange(t, web1, "running"))

		c.UpdateInstance(web1, func(in *lambdatest.Instance) { in.State, in.PublicIP = "stopped", "" })
		mustSucceed(t, f, stateChange(t, web1, "stopped"))
		ips, vpcs := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp while stopped", ips)
		wantList(t, "aws:SourceVpc while stopped", vpcs, vpcID)

		c.UpdateInstance(web1, func(in *lambdatest.Instance) { in.State, in.PublicIP = "running", "3.90.1.2" })
		mustSucceed(t, f, stateChange(t, web1, "running"))
		ips, _ = lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp after the start", ips, "3.90.1.2/32")
	})

	t.Run("a second instance of the role is added to the lock", func(t *testing.T) {
		c := newCloud(t)
		f := startLocker(t, c, nil)
		mustSucceed(t, f, stateChange(t, web1, "running"))
		c.PutInstance(lambdatest.Instance{ID: web2, State: "running", VPC: vpcID, PrivateIP: "10.0.1.11", PublicIP: "54.10.20.31", Profile: webProfile})
		mustSucceed(t, f, stateChange(t, web2, "running"))
		ips, _ := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp", ips, "54.10.20.30/32", "54.10.20.31/32")
	})

	t.Run("a terminated instance is removed from the lock", func(t *testing.T) {
		c := newCloud(t)
		c.PutInstance(lambdatest.Instance{ID: web2, State: "running", VPC: vpcID, PrivateIP: "10.0.1.11", PublicIP: "54.10.20.31", Profile: webProfile})
		f := startLocker(t, c, nil)
		mustSucceed(t, f, stateChange(t, web2, "running"))
		ips, _ := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp before", ips, "54.10.20.30/32", "54.10.20.31/32")

		c.UpdateInstance(web1, func(in *lambdatest.Instance) { in.State, in.PublicIP = "terminated", "" })
		mustSucceed(t, f, stateChange(t, web1, "terminated"))
		ips, _ = lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp after the termination", ips, "54.10.20.31/32")
	})

	t.Run("the schedule repairs a lock that drifted", func(t *testing.T) {
		c := newCloud(t)
		c.SetRolePolicy(webRole, lockName, `{"Version":"2012-10-17","Statement":[{"Sid":"Stale","Effect":"Deny","Action":"*","Resource":"*"}]}`)
		f := startLocker(t, c, nil)
		s := mustSucceed(t, f, scheduled(t))
		if s.Event != "scheduled" || s.Written != 1 {
			t.Errorf("summary %+v, want the scheduled event to write one lock", s)
		}
		ips, _ := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp", ips, "54.10.20.30/32")
	})
}

// TestDestroyWhileTheLockerRuns replays `cdk destroy` of the stack Luke
// step by step, as CloudFormation orders it, with the locker handling the
// events that the destroy causes: the lock policy is deleted, the instance
// terminated, the locker runs (on the terminated event and on the
// schedule), then the instance profile and the role are deleted. A lock
// written by the locker in between would make DeleteRole fail with
// DeleteConflict and the destroy with it.
func TestDestroyWhileTheLockerRuns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events func(t *testing.T) [][]byte
	}{
		{"the terminated event writes nothing and DeleteRole succeeds",
			func(t *testing.T) [][]byte { return [][]byte{stateChange(t, web1, "terminated")} }},
		{"the shutting-down and terminated events and a scheduled run write nothing and DeleteRole succeeds",
			func(t *testing.T) [][]byte {
				return [][]byte{stateChange(t, web1, "shutting-down"), stateChange(t, web1, "terminated"), scheduled(t)}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			f := startLocker(t, c, nil)
			mustSucceed(t, f, stateChange(t, web1, "running"))
			if _, ok := c.RolePolicy(webRole, lockName); !ok {
				t.Fatal("the deployed role has no lock to begin with")
			}
			writesBefore := len(puts(c, webRole))

			// cdk destroy: the stack is deleting; its lock goes first, then
			// the instance.
			c.SetStackStatus(webStack, "DELETE_IN_PROGRESS")
			if !c.DeleteRolePolicy(webRole, lockName) {
				t.Fatal("no lock to delete")
			}
			c.UpdateInstance(web1, func(in *lambdatest.Instance) { in.State, in.PublicIP = "terminated", "" })
			for _, ev := range tc.events(t) {
				s := mustSucceed(t, f, ev)
				if s.Errors != 0 || s.Written != 0 || s.Skipped != 1 {
					t.Errorf("summary %+v, want the role skipped and nothing written", s)
				}
				lg, m := last(t, f)
				if len(lg.Results) != 1 || lg.Results[0].Role != webRole || lg.Results[0].Action != "skipped" ||
					lg.Results[0].Stack != webStack || lg.Results[0].StackStatus != "DELETE_IN_PROGRESS" ||
					!strings.Contains(lg.Results[0].Reason, webStack) || lg.LocksSkipped != 1 {
					t.Errorf("log line %+v, want %s skipped for stack %s", lg, webRole, webStack)
				}
				if m.LocksSkipped != 1 || m.LocksWritten != 0 || m.Errors != 0 {
					t.Errorf("metrics LocksSkipped %v LocksWritten %v Errors %v", m.LocksSkipped, m.LocksWritten, m.Errors)
				}
			}
			if n := len(puts(c, webRole)) - writesBefore; n != 0 {
				t.Errorf("%d PutRolePolicy calls on %s during the destroy", n, webRole)
			}
			if _, ok := c.RolePolicy(webRole, lockName); ok {
				t.Errorf("%s has an inline policy CloudFormation does not know", webRole)
			}

			// CloudFormation goes on: the instance profile, then the role.
			c.DeleteInstanceProfile(webProfile)
			if err := c.DeleteRole(webRole); err != nil {
				t.Fatalf("DeleteRole: %v", err)
			}
			c.SetStackStatus(webStack, "DELETE_COMPLETE")
		})
	}

	t.Run("without a stack look-up the same destroy fails at DeleteRole", func(t *testing.T) {
		// The control: what the locker would have done, written directly.
		c := newCloud(t)
		c.DeleteRolePolicy(webRole, lockName)
		c.SetRolePolicy(webRole, lockName, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`)
		c.DeleteInstanceProfile(webProfile)
		if err := c.DeleteRole(webRole); err == nil || !strings.Contains(err.Error(), "DeleteConflict") {
			t.Errorf("DeleteRole: %v, want DeleteConflict", err)
		}
	})

	t.Run("a role whose stack failed to delete and still has an instance is locked", func(t *testing.T) {
		c := newCloud(t)
		c.SetStackStatus(webStack, "DELETE_FAILED")
		f := startLocker(t, c, nil)
		s := mustSucceed(t, f, stateChange(t, web1, "running"))
		if s.Written != 1 || s.Skipped != 0 {
			t.Errorf("summary %+v, want the running instance's role locked", s)
		}
		ips, _ := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp", ips, "54.10.20.30/32")
	})
}

func TestTheConfiguredPathAndPolicyNameAreRespected(t *testing.T) {
	c := newCloud(t)
	c.LimitWrites("/web/")
	c.AddRole("app-role", "/web/")
	c.AddInstanceProfile("app-profile", "/", "app-role")
	c.PutInstance(lambdatest.Instance{ID: "i-0ddddddddddddddd1", State: "running", VPC: vpcID, PrivateIP: "10.0.2.10", PublicIP: "18.200.1.2", Profile: "app-profile"})
	f := startLocker(t, c, map[string]string{"DEFENDERS_ROLE_PATH": "/web/", "DEFENDERS_POLICY_NAME": "web-lock"})

	t.Run("the schedule locks the roles under the configured path with the configured policy name", func(t *testing.T) {
		s := mustSucceed(t, f, scheduled(t))
		if s.Roles != 1 || s.Written != 1 {
			t.Errorf("summary %+v, want one role written", s)
		}
		ips, _ := lastLockNamed(t, c, "app-role", "web-lock")
		wantList(t, "aws:SourceIp", ips, "18.200.1.2/32")
	})
	t.Run("a role under the default path is then left alone", func(t *testing.T) {
		mustSucceed(t, f, stateChange(t, web1, "running"))
		if calls := puts(c, webRole); len(calls) != 0 {
			t.Errorf("%d PutRolePolicy calls on %s", len(calls), webRole)
		}
	})
}

func TestNothingIsWrittenWhenNothingChanged(t *testing.T) {
	c := newCloud(t)
	f := startLocker(t, c, nil)
	mustSucceed(t, f, stateChange(t, web1, "running"))
	tests := []struct {
		name  string
		event []byte
	}{
		{"a repeated state change reads but does not write", stateChange(t, web1, "running")},
		{"a scheduled reconcile reads but does not write", scheduled(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := c.IAM.Count("PutRolePolicy")
			s := mustSucceed(t, f, tc.event)
			if n := c.IAM.Count("PutRolePolicy") - before; n != 0 {
				t.Errorf("%d PutRolePolicy calls, want 0", n)
			}
			if s.Written != 0 || s.Unchanged != 1 {
				t.Errorf("summary %+v, want one unchanged role", s)
			}
		})
	}
}

func TestRolesOutsideTheManagedPathAreNeverWritten(t *testing.T) {
	tests := []struct {
		name  string
		role  string
		event []byte
	}{
		{"a role at / is skipped on its instance's state change", adminRole, stateChange(t, adminInst, "running")},
		{"a role at /defendersx/ is skipped on its instance's state change", evilRole, stateChange(t, evilInst, "running")},
		{"a scheduled reconcile leaves a role at / alone", adminRole, scheduled(t)},
		{"a scheduled reconcile leaves a role at /defendersx/ alone", evilRole, scheduled(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			f := startLocker(t, c, nil)
			mustSucceed(t, f, tc.event)
			if calls := puts(c, tc.role); len(calls) != 0 {
				t.Errorf("%d PutRolePolicy calls on %s, want none", len(calls), tc.role)
			}
			for _, call := range c.IAM.Calls("") {
				if call.Form.Get("RoleName") == tc.role {
					t.Errorf("IAM %s was called on %s; only the instance profile may be read", call.Action, tc.role)
				}
			}
			if _, ok := c.RolePolicy(tc.role, lockName); ok {
				t.Errorf("%s has a lock", tc.role)
			}
		})
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(c *lambdatest.Cloud)
		service func(c *lambdatest.Cloud) *lambdatest.Service
		action  string
		faults  int
	}{
		{"IAM throttling of the write is retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.IAM.InjectFaults("PutRolePolicy", lambdatest.Repeat(3, c.IAM.Throttle())...)
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.IAM }, "PutRolePolicy", 3},
		{"IAM server errors on the reads are retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.IAM.InjectFaults("GetInstanceProfile", lambdatest.Repeat(2, c.IAM.ServerError())...)
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.IAM }, "GetInstanceProfile", 2},
		{"IAM throttling then a server error on the write are retried",
			func(c *lambdatest.Cloud) {
				c.IAM.InjectFaults("PutRolePolicy", c.IAM.Throttle(), c.IAM.Throttle(), c.IAM.ServerError())
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.IAM }, "PutRolePolicy", 3},
		{"EC2 RequestLimitExceeded is retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.EC2.InjectFaults("DescribeInstances", lambdatest.Repeat(2, c.EC2.Throttle())...)
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.EC2 }, "DescribeInstances", 2},
		{"CloudFormation throttling of the stack look-up is retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.CloudFormation.InjectFaults("DescribeStackResources", c.CloudFormation.Throttle(), c.CloudFormation.ServerError())
				c.CloudFormation.InjectFaults("DescribeStacks", c.CloudFormation.Throttle())
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.CloudFormation }, "", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			f := startLocker(t, c, nil)
			tc.inject(c)
			s := mustSucceed(t, f, stateChange(t, web1, "running"))
			if s.Written != 1 {
				t.Errorf("summary %+v, want the lock written", s)
			}
			ips, _ := lastLock(t, c, webRole)
			wantList(t, "aws:SourceIp", ips, "54.10.20.30/32")
			failed := 0
			for _, call := range tc.service(c).Calls(tc.action) {
				if call.ErrorCode != "" {
					failed++
				}
			}
			if failed != tc.faults {
				t.Errorf("%d failed %s calls, want %d", failed, tc.action, tc.faults)
			}
			lg, _ := last(t, f)
			if lg.Retries != tc.faults {
				t.Errorf("the log line reports %d retries, want %d", lg.Retries, tc.faults)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	t.Run("garbage events get error responses and the process keeps serving", func(t *testing.T) {
		c := newCloud(t)
		f := startLocker(t, c, nil)
		bad := []struct {
			payload  string
			wantType string
		}{
			{`not json at all`, errorTypeInvalidEvent},
			{`{}`, errorTypeInvalidEvent},
			{`{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"x","state":"running"}}`, errorTypeInvalidEvent},
			{`{"detail-type":"Object Created","source":"aws.s3","detail":{}}`, errorTypeUnsupportedEvent},
		}
		for _, b := range bad {
			_, fnErr := invoke(t, f, []byte(b.payload))
			if fnErr == nil || fnErr.ErrorType != b.wantType {
				t.Errorf("event %s: error %+v, want %s", b.payload, fnErr, b.wantType)
			}
		}
		if n := len(calls(c)); n != 0 {
			t.Errorf("garbage events made %d API calls", n)
		}
		mustSucceed(t, f, stateChange(t, web1, "running"))
		if exited, err := f.Exited(); exited {
			t.Errorf("the process exited: %v", err)
		}
		logs, metrics := output(t, f)
		if len(logs) != len(bad)+1 || len(metrics) != len(bad)+1 {
			t.Errorf("%d log lines and %d metrics lines for %d invocations", len(logs), len(metrics), len(bad)+1)
		}
		for i := range bad {
			if logs[i].Level != "ERROR" || logs[i].Error == "" || metrics[i].Errors != 1 {
				t.Errorf("invocation %d: log %+v, Errors metric %v", i, logs[i], metrics[i].Errors)
			}
		}
	})

	t.Run("a role that cannot be written fails the invocation", func(t *testing.T) {
		c := newCloud(t)
		c.LimitWrites("/nothing/")
		f := startLocker(t, c, nil)
		_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
		if fnErr == nil || fnErr.ErrorType != errorTypeRoleFailed || !strings.Contains(fnErr.ErrorMessage, "AccessDenied") {
			t.Fatalf("error %+v, want %s with AccessDenied", fnErr, errorTypeRoleFailed)
		}
		lg, m := last(t, f)
		if lg.Level != "ERROR" || m.Errors != 1 || m.LocksWritten != 0 {
			t.Errorf("log level %s, Errors %v, LocksWritten %v", lg.Level, m.Errors, m.LocksWritten)
		}
	})

	t.Run("a CloudFormation error fails the role and writes nothing", func(t *testing.T) {
		c := newCloud(t)
		c.CloudFormation.InjectFaults("DescribeStackResources",
			lambdatest.Errorf(http.StatusForbidden, "AccessDenied", "not authorized to perform: cloudformation:DescribeStackResources"))
		f := startLocker(t, c, nil)
		_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
		if fnErr == nil || fnErr.ErrorType != errorTypeRoleFailed || !strings.Contains(fnErr.ErrorMessage, "AccessDenied") ||
			!strings.Contains(fnErr.ErrorMessage, "CloudFormation stack of role "+webRole) {
			t.Fatalf("error %+v, want %s with AccessDenied on the stack look-up", fnErr, errorTypeRoleFailed)
		}
		if n := len(puts(c, webRole)); n != 0 {
			t.Errorf("%d PutRolePolicy calls after a CloudFormation error", n)
		}
		lg, m := last(t, f)
		if lg.Level != "ERROR" || m.Errors != 1 || m.LocksWritten != 0 || m.LocksSkipped != 0 {
			t.Errorf("log level %s, Errors %v, LocksWritten %v, LocksSkipped %v", lg.Level, m.Errors, m.LocksWritten, m.LocksSkipped)
		}
	})

	t.Run("a lock that does not fit is a fallback with a FallbackLocks metric", func(t *testing.T) {
		c := newCloud(t)
		// An inline policy that leaves less than the exact lock needs but
		// more than the VPC-endpoints-only lock.
		pad := 9000 - len(`{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/"}]}`)
		c.SetRolePolicy(webRole, "app", `{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/`+
			strings.Repeat("k", pad)+`"}]}`)
		f := startLocker(t, c, nil)
		s := mustSucceed(t, f, stateChange(t, web1, "running"))
		if s.Fallback != 1 || s.Written != 1 {
			t.Errorf("summary %+v, want one fallback lock written", s)
		}
		ips, vpcs := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp", ips)
		wantList(t, "aws:SourceVpc", vpcs, vpcID)
		lg, m := last(t, f)
		if m.FallbackLocks != 1 || lg.Level != "WARN" {
			t.Errorf("FallbackLocks %v, log level %s", m.FallbackLocks, lg.Level)
		}
	})
}

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

// checkip serves a fixed egress address, as checkip.amazonaws.com would.
func checkip(t *testing.T, addr *string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if *addr == "" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, *addr)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLockdown(t *testing.T) {
	lockdownEnv := func(url string) map[string]string {
		return map[string]string{
			"DEFENDERS_LOCKDOWN":    "true",
			"DEFENDERS_ROLE_ARN":    lambdatest.FunctionRoleARN,
			"DEFENDERS_CHECKIP_URL": url,
		}
	}

	t.Run("with lockdown every EC2, IAM and CloudFormation call uses the locked session", func(t *testing.T) {
		c := newCloud(t)
		addr := "54.99.0.1"
		f := startLocker(t, c, lockdownEnv(checkip(t, &addr)))
		mustSucceed(t, f, stateChange(t, web1, "running"))
		assumes := c.STS.Calls("AssumeRole")
		if len(assumes) != 1 || assumes[0].AccessKeyID != lambdatest.FakeAccessKeyID ||
			assumes[0].Form.Get("RoleArn") != lambdatest.FunctionRoleARN || !strings.Contains(assumes[0].Form.Get("Policy"), "54.99.0.1") {
			t.Fatalf("AssumeRole calls %+v, want one from the function's own credentials with a session policy on 54.99.0.1", assumes)
		}
		all := calls(c)
		if len(all) == 0 || c.CloudFormation.Count("") == 0 {
			t.Fatalf("%d calls, %d of them CloudFormation: want some of each", len(all), c.CloudFormation.Count(""))
		}
		for _, call := range all {
			if call.AccessKeyID != lambdatest.SessionAccessKeyID {
				t.Errorf("%s was signed with %s, not the locked session", call.Action, call.AccessKeyID)
			}
		}
		if lg, _ := last(t, f); lg.Lockdown == nil || lg.Lockdown.Address != "54.99.0.1/32" {
			t.Errorf("log line lockdown %+v", lg.Lockdown)
		}
	})

	t.Run("when the lockdown fails every invocation fails and nothing is called until it succeeds", func(t *testing.T) {
		c := newCloud(t)
		addr := ""
		f := startLocker(t, c, lockdownEnv(checkip(t, &addr)))
		for range 2 {
			_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
			if fnErr == nil || fnErr.ErrorType != errorTypeNotStarted {
				t.Fatalf("error %+v, want %s", fnErr, errorTypeNotStarted)
			}
		}
		if n := len(calls(c)) + c.STS.Count("AssumeRole"); n != 0 {
			t.Errorf("%d AWS calls while the lockdown failed", n)
		}
		addr = "54.99.0.2"
		mustSucceed(t, f, stateChange(t, web1, "running"))
		for _, call := range calls(c) {
			if call.AccessKeyID != lambdatest.SessionAccessKeyID {
				t.Errorf("%s was signed with %s, not the locked session", call.Action, call.AccessKeyID)
			}
		}
	})

	t.Run("when STS refuses the locked session nothing runs", func(t *testing.T) {
		c := newCloud(t)
		addr := "54.99.0.3"
		c.STS.InjectFaults("AssumeRole", lambdatest.Repeat(20, lambdatest.Errorf(http.StatusForbidden, "AccessDenied", "not authorized to perform sts:AssumeRole"))...)
		f := startLocker(t, c, lockdownEnv(checkip(t, &addr)))
		_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
		if fnErr == nil || fnErr.ErrorType != errorTypeNotStarted || !strings.Contains(fnErr.ErrorMessage, "AccessDenied") {
			t.Fatalf("error %+v, want %s with AccessDenied", fnErr, errorTypeNotStarted)
		}
		if n := len(calls(c)); n != 0 {
			t.Errorf("%d EC2, IAM and CloudFormation calls without a locked session", n)
		}
	})

	tests := []struct {
		name string
		env  map[string]string
	}{
		{"a mistyped DEFENDERS_LOCKDOWN fails closed", map[string]string{"DEFENDERS_LOCKDOWN": "yes"}},
		{"a role path of every role fails closed", map[string]string{"DEFENDERS_ROLE_PATH": "/"}},
		{"a role path without slashes fails closed", map[string]string{"DEFENDERS_ROLE_PATH": "defenders"}},
		{"an invalid policy name fails closed", map[string]string{"DEFENDERS_POLICY_NAME": "no spaces allowed"}},
		{"an invalid lockdown option fails closed", map[string]string{"DEFENDERS_LOCKDOWN": "true", "DEFENDERS_ROLE_ARN": "not-an-arn"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			f := startLocker(t, c, tc.env)
			_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
			if fnErr == nil || fnErr.ErrorType != errorTypeNotStarted {
				t.Fatalf("error %+v, want %s", fnErr, errorTypeNotStarted)
			}
			if n := len(calls(c)) + c.STS.Count(""); n != 0 {
				t.Errorf("%d AWS calls", n)
			}
		})
	}
}

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
