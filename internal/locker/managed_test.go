package locker

import (
	"context"
	"slices"
	"strings"
	"testing"

	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// filler returns an inline policy of exactly n IAM characters.
func filler(t *testing.T, n int) string {
	t.Helper()
	head, tail := `{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/`, `"}]}`
	doc := head + strings.Repeat("k", n-len(head)-len(tail)) + tail
	if got := lockpolicy.SizeOf([]byte(doc)); got != n {
		t.Fatalf("filler of %d characters counts %d", n, got)
	}
	return doc
}

// noRoom is the size of another inline policy that leaves one character
// less than the deny-all lock needs.
func noRoom() int { return lockpolicy.MaxRolePolicySize - lockpolicy.DenyAll().Size() + 1 }

func TestARoleWithoutRoomForAnyInlineLockGetsAWSDenyAll(t *testing.T) {
	const denyAll = "arn:aws:iam::aws:policy/AWSDenyAll"
	c := newFakeCloud()
	p := c.addRole("web", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
	c.roles["web"].policies["app"] = filler(t, noRoom())
	l, _ := newTestLocker(t, c)
	run := func(t *testing.T) Result {
		t.Helper()
		rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
		if err != nil {
			t.Fatal(err)
		}
		return onlyResult(t, rep)
	}

	t.Run("the role is locked with AWSDenyAll, reported as a fallback that names it", func(t *testing.T) {
		res := run(t)
		if res.Action != ActionFallback || res.Mode != ModeManagedDenyAll || !res.Attached || !strings.Contains(res.Reason, denyAll) {
			t.Fatalf("result %s %s attached %v reason %q err %v", res.Action, res.Mode, res.Attached, res.Reason, res.Err)
		}
		if got := c.attached("web"); !slices.Equal(got, []string{denyAll}) {
			t.Errorf("attached %q, want AWSDenyAll", got)
		}
		if _, ok := c.roles["web"].policies[PolicyName]; ok {
			t.Error("an inline lock was written beyond the quota")
		}
	})
	t.Run("the next run finds it in place: still a fallback, nothing attached again", func(t *testing.T) {
		before := c.calls["AttachRolePolicy"]
		res := run(t)
		if res.Action != ActionFallback || res.Mode != ModeManagedDenyAll || res.Attached || c.calls["AttachRolePolicy"] != before {
			t.Errorf("result %s %s attached %v, AttachRolePolicy calls %d -> %d", res.Action, res.Mode, res.Attached, before, c.calls["AttachRolePolicy"])
		}
	})
	t.Run("once the other policy shrinks, the inline lock is written and AWSDenyAll detached", func(t *testing.T) {
		c.roles["web"].policies["app"] = filler(t, 2000)
		res := run(t)
		if res.Action != ActionWritten || res.Mode != ModeExact || !res.Detached {
			t.Fatalf("result %s %s detached %v (%v)", res.Action, res.Mode, res.Detached, res.Err)
		}
		if got := c.attached("web"); len(got) != 0 {
			t.Errorf("still attached: %q", got)
		}
		if got, want := c.lock("web"), render(t, []string{"203.0.113.10"}, []string{vpcA}); got != want {
			t.Errorf("lock = %s", got)
		}
	})
	t.Run("a locked role is not asked about managed policies any more", func(t *testing.T) {
		before := c.calls["ListAttachedRolePolicies"]
		if res := run(t); res.Action != ActionUnchanged || c.calls["ListAttachedRolePolicies"] != before {
			t.Errorf("result %s, ListAttachedRolePolicies %d -> %d", res.Action, before, c.calls["ListAttachedRolePolicies"])
		}
	})
}

func TestAWSDenyAllFallback(t *testing.T) {
	tests := []struct {
		name         string
		partition    string
		setup        func(t *testing.T, c *fakeCloud)
		wantAction   Action
		wantAttached []string
		wantErr      string
	}{
		{name: "in aws-cn the policy of the China partition is attached",
			partition: "aws-cn", wantAction: ActionFallback, wantAttached: []string{"arn:aws-cn:iam::aws:policy/AWSDenyAll"}},
		{name: "in aws-us-gov the policy of the GovCloud partition is attached",
			partition: "aws-us-gov", wantAction: ActionFallback, wantAttached: []string{"arn:aws-us-gov:iam::aws:policy/AWSDenyAll"}},
		{name: "IAM refusing every inline lock as too large (another policy grew) also ends in AWSDenyAll",
			setup: func(t *testing.T, c *fakeCloud) {
				c.roles["web"].policies["app"] = filler(t, 2000)
				c.failNext("PutRolePolicy", limitExceeded, limitExceeded, limitExceeded)
			},
			wantAction: ActionFallback, wantAttached: []string{"arn:aws:iam::aws:policy/AWSDenyAll"}},
		{name: "a role whose stack is being deleted gets nothing attached (DeleteRole would fail)",
			setup: func(t *testing.T, c *fakeCloud) {
				c.addStack("Luke", cfntypes.StackStatusDeleteInProgress, nil, "web")
			},
			wantAction: ActionSkipped},
		{name: "a role whose managed-policy quota is full is an error, never silently unlocked",
			setup: func(t *testing.T, c *fakeCloud) {
				for range maxManagedPolicies {
					c.roles["web"].attached = append(c.roles["web"].attached, "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")
				}
			},
			wantAction: ActionError, wantErr: "LimitExceeded",
			wantAttached: slices.Repeat([]string{"arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"}, maxManagedPolicies)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			c.roles["web"].partition = tt.partition
			c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
			c.roles["web"].policies["app"] = filler(t, noRoom())
			if tt.setup != nil {
				tt.setup(t, c)
			}
			l, _ := newTestLocker(t, c)
			rep, _ := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
			res := onlyResult(t, rep)
			if res.Action != tt.wantAction {
				t.Fatalf("action %s, want %s (%s; %v)", res.Action, tt.wantAction, res.Reason, res.Err)
			}
			if got := c.attached("web"); !slices.Equal(got, tt.wantAttached) {
				t.Errorf("attached %q, want %q", got, tt.wantAttached)
			}
			if tt.wantErr != "" && (res.Err == nil || !strings.Contains(res.Error, tt.wantErr) || !strings.Contains(res.Error, "has no lock")) {
				t.Errorf("error %q, want one that says the role has no lock and %s", res.Error, tt.wantErr)
			}
		})
	}
}

// TestAnAdministratorsAWSDenyAllIsLeftAlone: AWSDenyAll attached to a
// locked role (a quarantine) is not the locker's: it never detaches it.
func TestAnAdministratorsAWSDenyAllIsLeftAlone(t *testing.T) {
	c := newFakeCloud()
	p := c.addRole("web", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.11")))
	c.roles["web"].policies[PolicyName] = render(t, []string{"203.0.113.10"}, []string{vpcA})
	c.roles["web"].attached = []string{"arn:aws:iam::aws:policy/AWSDenyAll"}
	l, _ := newTestLocker(t, c)
	rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
	if err != nil {
		t.Fatal(err)
	}
	if res := onlyResult(t, rep); res.Action != ActionWritten || res.Detached {
		t.Errorf("result %s detached %v", res.Action, res.Detached)
	}
	if got := c.attached("web"); len(got) != 1 || c.calls["DetachRolePolicy"] != 0 {
		t.Errorf("attached %q, DetachRolePolicy called %d times", got, c.calls["DetachRolePolicy"])
	}
}

func TestDenyAllPolicyARN(t *testing.T) {
	tests := []struct {
		role, want string
	}{
		{"arn:aws:iam::111122223333:role/defenders/web", "arn:aws:iam::aws:policy/AWSDenyAll"},
		{"arn:aws-cn:iam::111122223333:role/defenders/web", "arn:aws-cn:iam::aws:policy/AWSDenyAll"},
		{"arn:aws-us-gov:iam::111122223333:role/web", "arn:aws-us-gov:iam::aws:policy/AWSDenyAll"},
		{"arn:aws:iam::111122223333:user/alice", ""},
		{"arn:evil:iam::111122223333:role/x", ""},
		{"web", ""},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			got, err := DenyAllPolicyARN(tt.role)
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Errorf("DenyAllPolicyARN = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
