package locker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// render is lockpolicy.Render(...).JSON(), the reference the locker must
// match byte for byte.
func render(t *testing.T, ips, vpcs []string) string {
	t.Helper()
	d, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: ips, VPCs: vpcs}, lockpolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func denyAllJSON(t *testing.T) string {
	t.Helper()
	b, err := lockpolicy.DenyAll().JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func onlyResult(t *testing.T, rep Report) Result {
	t.Helper()
	if len(rep.Results) != 1 {
		t.Fatalf("got %d results, want 1: %+v", len(rep.Results), rep)
	}
	return rep.Results[0]
}

// TestStateChangeWritesTheRenderedLock covers the address sets and the
// parity with lockpolicy.Render: what the locker writes is byte-identical
// to rendering the same addresses and VPCs directly.
func TestStateChangeWritesTheRenderedLock(t *testing.T) {
	tests := []struct {
		name      string
		instances func(profile string) []ec2types.Instance
		wantIPs   []string
		wantVPCs  []string
	}{
		{name: "one running instance is locked to its public IP and VPC",
			instances: func(p string) []ec2types.Instance {
				return []ec2types.Instance{instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10"))}
			},
			wantIPs: []string{"203.0.113.10"}, wantVPCs: []string{vpcA}},
		{name: "an Elastic IP on a secondary interface and IPv6 addresses are allowed too",
			instances: func(p string) []ec2types.Instance {
				return []ec2types.Instance{instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10"),
					eni("198.51.100.5", "198.51.100.6", "2001:db8:1234::10"))}
			},
			wantIPs: []string{"198.51.100.5", "198.51.100.6", "203.0.113.10", "2001:db8:1234::10/128"}, wantVPCs: []string{vpcA}},
		{name: "a stopped sibling adds its VPC but not its old address",
			instances: func(p string) []ec2types.Instance {
				return []ec2types.Instance{
					instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")),
					instance("i-0aaaaaaaaaaaaaaa2", "stopped", p, vpcB, publicIP("203.0.113.99")),
				}
			},
			wantIPs: []string{"203.0.113.10"}, wantVPCs: []string{vpcA, vpcB}},
		{name: "terminated and shutting-down siblings are left out",
			instances: func(p string) []ec2types.Instance {
				return []ec2types.Instance{
					instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")),
					instance("i-0aaaaaaaaaaaaaaa2", "terminated", p, vpcB, publicIP("203.0.113.98")),
					instance("i-0aaaaaaaaaaaaaaa3", "shutting-down", p, vpcB, publicIP("203.0.113.97")),
				}
			},
			wantIPs: []string{"203.0.113.10"}, wantVPCs: []string{vpcA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			for _, in := range tt.instances(p) {
				c.addInstance(in)
			}
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
			if err != nil {
				t.Fatal(err)
			}
			res := onlyResult(t, rep)
			if res.Action != ActionWritten || res.Mode != ModeExact {
				t.Fatalf("action %s mode %s, want written exact: %+v", res.Action, res.Mode, res)
			}
			want := render(t, tt.wantIPs, tt.wantVPCs)
			if got := c.lock("web"); got != want {
				t.Errorf("written lock differs from lockpolicy.Render:\n got %s\nwant %s", got, want)
			}
			if res.Size != len(want) {
				t.Errorf("Size = %d, want %d", res.Size, len(want))
			}
			if len(c.puts) != 1 {
				t.Errorf("%d writes, want 1", len(c.puts))
			}
		})
	}
}

func TestNothingIsWrittenWhenNothingChanged(t *testing.T) {
	tests := []struct {
		name    string
		current func(t *testing.T) string
		writes  int
		action  Action
	}{
		{name: "the identical document is left alone", writes: 0, action: ActionUnchanged,
			current: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "the same lock reformatted and reordered by IAM is left alone", writes: 0, action: ActionUnchanged,
			current: func(t *testing.T) string {
				doc := render(t, []string{"203.0.113.10"}, []string{vpcA})
				doc = strings.ReplaceAll(doc, `"Action":"*"`, `"Action":["*"]`)
				doc = strings.ReplaceAll(doc, `,"`, ",\n  \"")
				return doc
			}},
		{name: "a lock for an old address is replaced", writes: 1, action: ActionWritten,
			current: func(t *testing.T) string { return render(t, []string{"203.0.113.77"}, []string{vpcA}) }},
		{name: "an unreadable lock is replaced", writes: 1, action: ActionWritten,
			current: func(t *testing.T) string { return "{not json" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
			c.roles["web"].policies[PolicyName] = tt.current(t)
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
			if err != nil {
				t.Fatal(err)
			}
			if res := onlyResult(t, rep); res.Action != tt.action {
				t.Errorf("action = %s, want %s", res.Action, tt.action)
			}
			if len(c.puts) != tt.writes {
				t.Errorf("%d writes, want %d", len(c.puts), tt.writes)
			}
			if tt.writes == 0 && rep.Calls["iam:PutRolePolicy"] != 0 {
				t.Errorf("PutRolePolicy was called %d times", rep.Calls["iam:PutRolePolicy"])
			}
		})
	}
}

// manyAddresses returns n public IPv4 addresses: spread over 3 /24s, or
// (spread) each in its own /16.
func manyAddresses(n int, spread bool) []string {
	out := make([]string, n)
	for i := range out {
		if spread {
			out[i] = fmt.Sprintf("%d.%d.7.9", 11+i/250, i%250)
		} else {
			out[i] = fmt.Sprintf("3.5.%d.%d", 10+i%3, 1+i/3)
		}
	}
	return out
}

func TestSizeLimitFallsBackToACoarserLock(t *testing.T) {
	bigOther := `{"Version":"2012-10-17","Statement":[{"Sid":"Pad","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::` +
		strings.Repeat("x", 8500) + `/*"}]}`
	tests := []struct {
		name      string
		addrs     []string
		other     string
		limitOnce bool // IAM answers LimitExceeded to the first write
		wantMode  Mode
		wantIPs   []string
	}{
		{name: "600 addresses in three networks are aggregated into /24s",
			addrs: manyAddresses(600, false), wantMode: ModeAggregated,
			wantIPs: []string{"3.5.10.0/24", "3.5.11.0/24", "3.5.12.0/24"}},
		{name: "600 addresses each in its own /16 fall back to VPC endpoints only",
			addrs: manyAddresses(600, true), wantMode: ModeVPCEndpointsOnly},
		{name: "another large inline policy shrinks the budget so that a few addresses fall back",
			addrs: manyAddresses(60, true), other: bigOther, wantMode: ModeVPCEndpointsOnly},
		{name: "a LimitExceeded answer from IAM moves on to the next coarser lock",
			addrs: []string{"3.5.10.1", "3.5.10.2", "3.5.11.1"}, limitOnce: true, wantMode: ModeAggregated,
			wantIPs: []string{"3.5.10.0/24", "3.5.11.1/32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("asg", "/defenders/")
			for i, a := range tt.addrs {
				c.addInstance(instance(fmt.Sprintf("i-%017x", i+1), "running", p, vpcA, publicIP(a)))
			}
			if tt.other != "" {
				c.roles["asg"].policies["app"] = tt.other
			}
			if tt.limitOnce {
				c.failNext("PutRolePolicy", limitExceeded)
			}
			c.ec2.SetPageSize(250) // exercise DescribeInstances pagination
			l, _ := newTestLocker(t, c)
			rep, err := l.Reconcile(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			res := onlyResult(t, rep)
			if res.Action != ActionFallback || res.Mode != tt.wantMode {
				t.Fatalf("action %s mode %s, want fallback %s (reason %q)", res.Action, res.Mode, tt.wantMode, res.Reason)
			}
			if tt.wantIPs != nil && !slices.Equal(res.SourceIPs, tt.wantIPs) {
				t.Errorf("source IPs = %q, want %q", res.SourceIPs, tt.wantIPs)
			}
			if len(res.Addresses) != len(tt.addrs) {
				t.Errorf("found %d addresses, want %d", len(res.Addresses), len(tt.addrs))
			}
			if res.Size > res.Budget || res.Reason == "" {
				t.Errorf("size %d budget %d reason %q", res.Size, res.Budget, res.Reason)
			}
			want := render(t, res.SourceIPs, []string{vpcA})
			if got := c.lock("asg"); got != want {
				t.Errorf("written lock = %s, want %s", got, want)
			}
			if tt.limitOnce {
				return // the quota was only refused once; the next run may write the exact lock
			}
			// A second run finds the fallback in place: still reported as a
			// fallback (for the alarm), but nothing is written.
			c.puts = nil
			rep, err = l.Reconcile(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res := onlyResult(t, rep); res.Action != ActionFallback || res.Written || len(c.puts) != 0 {
				t.Errorf("second run: action %s written %v puts %d", res.Action, res.Written, len(c.puts))
			}
		})
	}
}

var limitExceeded = &iamtypes.LimitExceededException{Message: aws.String("Maximum policy size exceeded (injected)")}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(c *fakeCloud)
		event     []byte
		wantMode  Mode
		wantDoc   func(t *testing.T) string
		wantSkip  bool
		wantNoPut bool
	}{
		{name: "a role whose only instance is stopped keeps VPC endpoints of its VPC only",
			setup: func(c *fakeCloud) {
				p := c.addRole("web", "/defenders/")
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "stopped", p, vpcA, publicIP("203.0.113.10")))
				c.roles["web"].policies[PolicyName] = render(t, []string{"203.0.113.10"}, []string{vpcA})
			},
			event: stateChange("i-0aaaaaaaaaaaaaaa1", "stopped"), wantMode: ModeVPCEndpointsOnly,
			wantDoc: func(t *testing.T) string { return render(t, nil, []string{vpcA}) }},
		{name: "a role whose last instance terminated keeps the VPCs of its current lock",
			setup: func(c *fakeCloud) {
				p := c.addRole("web", "/defenders/")
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "terminated", p, vpcA))
				c.roles["web"].policies[PolicyName] = render(t, []string{"203.0.113.10"}, []string{vpcA, vpcB})
			},
			event: stateChange("i-0aaaaaaaaaaaaaaa1", "terminated"), wantMode: ModeVPCEndpointsOnly,
			wantDoc: func(t *testing.T) string { return render(t, nil, []string{vpcA, vpcB}) }},
		{name: "a role with no instance and no lock gets the deny-all lock",
			setup: func(c *fakeCloud) {
				p := c.addRole("web", "/defenders/")
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "terminated", p, vpcA))
			},
			event: stateChange("i-0aaaaaaaaaaaaaaa1", "terminated"), wantMode: ModeDenyAll,
			wantDoc: denyAllJSON},
		{name: "a role whose instances have no public address gets VPC endpoints only",
			setup: func(c *fakeCloud) {
				p := c.addRole("web", "/defenders/")
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA))
			},
			event: stateChange("i-0aaaaaaaaaaaaaaa1", "running"), wantMode: ModeVPCEndpointsOnly,
			wantDoc: func(t *testing.T) string { return render(t, nil, []string{vpcA}) }},
		{name: "an unmanaged role is left untouched",
			setup: func(c *fakeCloud) {
				p := c.addRole("other", "/")
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
				c.roles["other"].policies["app"] = `{"Version":"2012-10-17","Statement":[]}`
			},
			event: stateChange("i-0aaaaaaaaaaaaaaa1", "running"), wantSkip: true, wantNoPut: true},
		{name: "an instance without an instance profile is ignored",
			setup: func(c *fakeCloud) {
				c.addRole("web", "/defenders/")
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", "", vpcA, publicIP("203.0.113.10")))
			},
			event: stateChange("i-0aaaaaaaaaaaaaaa1", "running"), wantNoPut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			tt.setup(c)
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), tt.event)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNoPut {
				if len(c.puts) != 0 || len(rep.Results) != 0 {
					t.Errorf("puts %d results %+v, want none", len(c.puts), rep.Results)
				}
				if tt.wantSkip && len(rep.Skipped) != 1 {
					t.Errorf("skipped = %+v, want one role", rep.Skipped)
				}
				for _, r := range c.roles {
					if _, ok := r.policies[PolicyName]; ok {
						t.Errorf("role %s got a lock", r.name)
					}
				}
				return
			}
			var role string
			for name := range c.roles {
				role = name
			}
			res := onlyResult(t, rep)
			if res.Mode != tt.wantMode || res.Action == ActionError || res.Action == ActionFallback {
				t.Fatalf("action %s mode %s, want %s (reason %q, err %v)", res.Action, res.Mode, tt.wantMode, res.Reason, res.Err)
			}
			if got, want := c.lock(role), tt.wantDoc(t); got != want {
				t.Errorf("lock = %s\nwant %s", got, want)
			}
			if res.Mode != ModeExact && res.Reason == "" {
				t.Error("a fail-closed lock must say why")
			}
		})
	}
}

func TestRetries(t *testing.T) {
	throttle := apiError("Throttling")
	tests := []struct {
		name       string
		op         string
		errs       []error
		mod        func(*Config)
		wantAction Action
		wantErr    bool
		wantSleeps int
	}{
		{name: "IAM throttling is retried and then succeeds",
			op: "PutRolePolicy", errs: []error{throttle, apiError("ThrottlingException")},
			wantAction: ActionWritten, wantSleeps: 2},
		{name: "EC2 RequestLimitExceeded is retried and then succeeds",
			op: "DescribeInstances", errs: []error{nil, apiError("RequestLimitExceeded")},
			wantAction: ActionWritten, wantSleeps: 1},
		{name: "an HTTP 503 is retried and then succeeds",
			op: "ListRolePolicies", errs: []error{&smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}}, Err: errors.New("service unavailable")}},
			wantAction: ActionWritten, wantSleeps: 1},
		{name: "a role profile not yet visible (NoSuchEntity) is retried and then found",
			op: "GetInstanceProfile", errs: []error{noSuchEntity("instance profile web"), noSuchEntity("instance profile web")},
			wantAction: ActionWritten, wantSleeps: 2},
		{name: "a brand-new instance not yet visible is retried and then found",
			op: "DescribeInstances", errs: []error{apiError("InvalidInstanceID.NotFound")},
			wantAction: ActionWritten, wantSleeps: 1},
		{name: "throttling that never stops ends in an error result and no write",
			op: "PutRolePolicy", errs: []error{throttle, throttle, throttle, throttle},
			mod:        func(c *Config) { c.MaxAttempts = 3 },
			wantAction: ActionError, wantErr: true, wantSleeps: 2},
		{name: "throttling while listing instances ends in an error result and no write",
			op: "DescribeInstances", errs: []error{nil, throttle, throttle, throttle},
			mod:        func(c *Config) { c.MaxAttempts = 3 },
			wantAction: ActionError, wantErr: true, wantSleeps: 2},
		{name: "an access denied is not retried",
			op: "PutRolePolicy", errs: []error{apiError("AccessDenied")},
			wantAction: ActionError, wantErr: true, wantSleeps: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
			old := render(t, []string{"203.0.113.77"}, []string{vpcA})
			c.roles["web"].policies[PolicyName] = old
			// A nil entry lets one call through before the errors start.
			c.errs[tt.op] = tt.errs
			mods := []func(*Config){}
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			l, s := newTestLocker(t, c, mods...)
			rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			res := onlyResult(t, rep)
			if res.Action != tt.wantAction {
				t.Fatalf("action = %s, want %s (%v)", res.Action, tt.wantAction, res.Err)
			}
			if len(s.d) != tt.wantSleeps || rep.Retries != tt.wantSleeps {
				t.Errorf("slept %v, retries %d, want %d", s.d, rep.Retries, tt.wantSleeps)
			}
			for i := 1; i < len(s.d); i++ {
				if s.d[i] < s.d[i-1] {
					t.Errorf("backoff shrank: %v", s.d)
				}
			}
			if tt.wantErr {
				if got := c.lock("web"); got != old {
					t.Errorf("the lock changed after a failure: %s", got)
				}
				if res.Error == "" || !strings.Contains(res.Error, "locker:") {
					t.Errorf("error %q lacks context", res.Error)
				}
			} else if got, want := c.lock("web"), render(t, []string{"203.0.113.10"}, []string{vpcA}); got != want {
				t.Errorf("lock = %s, want %s", got, want)
			}
		})
	}
}

// TestConcurrentChangeIsCaughtByVerification simulates the race: the
// instance gets a new address right after the locker wrote the lock (as if
// another invocation had written a newer view first). The re-describe
// after the write notices and writes again.
func TestConcurrentChangeIsCaughtByVerification(t *testing.T) {
	c := newFakeCloud()
	p := c.addRole("web", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
	c.afterPut = func(c *fakeCloud, n int) {
		if n == 1 {
			c.mu.Lock()
			c.ec2.PutInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.11")))
			c.mu.Unlock()
		}
	}
	l, _ := newTestLocker(t, c)
	rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
	if err != nil {
		t.Fatal(err)
	}
	res := onlyResult(t, rep)
	if res.Passes != 2 || len(c.puts) != 2 || res.Action != ActionWritten {
		t.Errorf("passes %d puts %d action %s, want 2 2 written", res.Passes, len(c.puts), res.Action)
	}
	if got, want := c.lock("web"), render(t, []string{"203.0.113.11"}, []string{vpcA}); got != want {
		t.Errorf("lock = %s, want %s", got, want)
	}
}

func TestReconcileVisitsEveryManagedRoleAndCountsCalls(t *testing.T) {
	c := newFakeCloud()
	web := c.addRole("web", "/defenders/")
	team := c.addRole("batch", "/defenders/team-a/")
	legacy := c.addRole("legacy", "/")
	plain := c.addRole("plain", "/")
	c.addRole("idle", "/defenders/") // no instance at all
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", web, vpcA, publicIP("203.0.113.10")))
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa2", "running", team, vpcA, publicIP("203.0.113.20")))
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa3", "running", legacy, vpcB, publicIP("198.51.100.30")))
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa4", "running", plain, vpcB, publicIP("198.51.100.40")))

	tests := []struct {
		name      string
		wantRoles []string
	}{
		{name: "only the roles under the path are managed", wantRoles: []string{"batch", "idle", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), []byte(scheduled))
			if err != nil {
				t.Fatal(err)
			}
			var roles []string
			for _, r := range rep.Results {
				roles = append(roles, r.Role)
				if r.Action == ActionError {
					t.Errorf("role %s: %v", r.Role, r.Err)
				}
			}
			if !slices.Equal(roles, tt.wantRoles) {
				t.Errorf("roles = %q, want %q", roles, tt.wantRoles)
			}
			if _, ok := c.roles["plain"].policies[PolicyName]; ok {
				t.Error("the unmanaged role got a lock")
			}
			sum := 0
			for _, n := range rep.Calls {
				sum += n
			}
			if sum != rep.TotalCalls || rep.TotalCalls == 0 || rep.Calls["iam:ListRoles"] != 1 {
				t.Errorf("calls %v total %d", rep.Calls, rep.TotalCalls)
			}
			if rep.Calls["iam:GetRole"] != 0 || rep.Calls["iam:GetInstanceProfile"] != 0 {
				t.Errorf("the schedule made role discovery calls beyond ListRoles: %v", rep.Calls)
			}
		})
	}
}

func TestEventForAnUnknownInstanceReconcilesEverything(t *testing.T) {
	c := newFakeCloud()
	p := c.addRole("web", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
	l, _ := newTestLocker(t, c, func(cfg *Config) { cfg.NotFoundAttempts = 2 })
	rep, err := l.Handle(context.Background(), stateChange("i-0bbbbbbbbbbbbbbb9", "terminated"))
	if err != nil {
		t.Fatal(err)
	}
	if res := onlyResult(t, rep); res.Role != "web" || res.Action != ActionWritten {
		t.Errorf("result %+v", res)
	}
	if len(rep.Notes) == 0 {
		t.Error("the fallback to a full reconcile is not noted")
	}
}

func TestGarbageEventIsAnError(t *testing.T) {
	c := newFakeCloud()
	l, _ := newTestLocker(t, c)
	rep, err := l.Handle(context.Background(), []byte(`{"hello":"world"}`))
	if !errors.Is(err, ErrMalformedEvent) {
		t.Fatalf("err = %v, want ErrMalformedEvent", err)
	}
	if rep.TotalCalls != 0 {
		t.Errorf("garbage made %d API calls", rep.TotalCalls)
	}
}

func TestAStaleSecondLockIsReported(t *testing.T) {
	c := newFakeCloud()
	p := c.addRole("web", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
	c.roles["web"].policies["LukeLockcallerBasedPolicy1A2B3C"] = render(t, []string{"203.0.113.77"}, []string{vpcA})
	l, _ := newTestLocker(t, c)
	rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
	if err != nil {
		t.Fatal(err)
	}
	res := onlyResult(t, rep)
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "LukeLockcallerBasedPolicy1A2B3C") {
		t.Errorf("notes = %q", res.Notes)
	}
	if res.Budget >= lockpolicy.MaxRolePolicySize {
		t.Errorf("budget %d ignores the other inline policy", res.Budget)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	c := newFakeCloud()
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "a config without clients is rejected", cfg: Config{}},
		{name: "a config without IAM is rejected", cfg: Config{EC2: c, CloudFormation: c}},
		{name: "a config without CloudFormation is rejected", cfg: Config{EC2: c, IAM: c}},
		{name: "negative attempts are rejected", cfg: Config{EC2: c, IAM: c, CloudFormation: c, MaxAttempts: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

// TestAPICallsPerEvent pins the cost of a state-change event for one
// path-managed role with one instance profile and no other inline policy
// (the README's "API calls per event"). A write costs one CloudFormation
// call more for a role that no stack owns, two for a role in a stack;
// reading the lock mode tag one per role; a role without a lock one more
// (is AWSDenyAll attached?).
func TestAPICallsPerEvent(t *testing.T) {
	tests := []struct {
		name    string
		current func(t *testing.T) string
		inStack bool
		want    map[string]int
		total   int
	}{
		{name: "an event that changes nothing costs seven calls",
			current: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) },
			want: map[string]int{"ec2:DescribeInstances": 2, "iam:GetInstanceProfile": 1, "iam:ListRoleTags": 1, "iam:ListInstanceProfilesForRole": 1,
				"iam:ListRolePolicies": 1, "iam:GetRolePolicy": 1},
			total: 7},
		{name: "an event that changes nothing on a role in a stack costs seven calls too, none of them CloudFormation",
			current: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }, inStack: true,
			want: map[string]int{"ec2:DescribeInstances": 2, "iam:GetInstanceProfile": 1, "iam:ListRoleTags": 1, "iam:ListInstanceProfilesForRole": 1,
				"iam:ListRolePolicies": 1, "iam:GetRolePolicy": 1},
			total: 7},
		{name: "an event that rewrites a stale lock costs eleven calls including the verification and the stack look-up",
			current: func(t *testing.T) string { return render(t, []string{"203.0.113.77"}, []string{vpcA}) },
			want: map[string]int{"ec2:DescribeInstances": 3, "iam:GetInstanceProfile": 1, "iam:ListRoleTags": 1, "iam:ListInstanceProfilesForRole": 2,
				"iam:ListRolePolicies": 1, "iam:GetRolePolicy": 1, "iam:PutRolePolicy": 1, "cloudformation:DescribeStackResources": 1},
			total: 11},
		{name: "an event that rewrites a stale lock on a role in a stack costs twelve calls",
			current: func(t *testing.T) string { return render(t, []string{"203.0.113.77"}, []string{vpcA}) }, inStack: true,
			want: map[string]int{"ec2:DescribeInstances": 3, "iam:GetInstanceProfile": 1, "iam:ListRoleTags": 1, "iam:ListInstanceProfilesForRole": 2,
				"iam:ListRolePolicies": 1, "iam:GetRolePolicy": 1, "iam:PutRolePolicy": 1,
				"cloudformation:DescribeStackResources": 1, "cloudformation:DescribeStacks": 1},
			total: 12},
		{name: "an event that writes the first lock costs eleven calls",
			want: map[string]int{"ec2:DescribeInstances": 3, "iam:GetInstanceProfile": 1, "iam:ListRoleTags": 1, "iam:ListAttachedRolePolicies": 1,
				"iam:ListInstanceProfilesForRole": 2, "iam:ListRolePolicies": 1, "iam:PutRolePolicy": 1, "cloudformation:DescribeStackResources": 1},
			total: 11},
		{name: "an event that writes the first lock on a role in a stack costs twelve calls",
			inStack: true,
			want: map[string]int{"ec2:DescribeInstances": 3, "iam:GetInstanceProfile": 1, "iam:ListRoleTags": 1, "iam:ListAttachedRolePolicies": 1,
				"iam:ListInstanceProfilesForRole": 2, "iam:ListRolePolicies": 1, "iam:PutRolePolicy": 1,
				"cloudformation:DescribeStackResources": 1, "cloudformation:DescribeStacks": 1},
			total: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			if tt.inStack {
				c.addStack("Luke", cfntypes.StackStatusCreateComplete, nil, "web")
			}
			c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
			if tt.current != nil {
				c.roles["web"].policies[PolicyName] = tt.current(t)
			}
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(rep.Calls, tt.want) || rep.TotalCalls != tt.total {
				t.Errorf("calls = %v (total %d), want %v (total %d)", rep.Calls, rep.TotalCalls, tt.want, tt.total)
			}
		})
	}
}

func TestNewFromConfigBuildsSDKClients(t *testing.T) {
	l, err := NewFromConfig(aws.Config{Region: "us-east-1"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l.cfg.EC2 == nil || l.cfg.IAM == nil || l.cfg.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("config = %+v", l.cfg)
	}
}
