package locker

import (
	"context"
	"strings"
	"testing"

	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// TestCloudFormationDeletingARoleStopsTheLocker replays `cdk destroy` of a
// stack that owns a managed role: CloudFormation deletes the lock (an
// AWS::IAM::Policy), terminates the instance, then deletes the instance
// profile and the role. A lock written in between would make DeleteRole
// fail with DeleteConflict, so while the stack is being deleted the locker
// writes nothing; in every other state it locks as before.
func TestCloudFormationDeletingARoleStopsTheLocker(t *testing.T) {
	const (
		inst = "i-0aaaaaaaaaaaaaaa1"
		old  = "203.0.113.77"
	)
	tests := []struct {
		name string
		// stack is the status of the stack that owns the role ("" for a
		// role that no stack owns); root, if set, makes it a nested stack
		// of a root in that status.
		stack, root cfntypes.StackStatus
		state       string // the instance's state ("" for no instance at all)
		lock        bool   // the role has a lock (for an old address) before the event
		event       string // "terminated", "running" or "scheduled"
		wantAction  Action
		wantDoc     func(t *testing.T) string // the lock afterwards when written
	}{
		{name: "a DELETE_IN_PROGRESS stack's role gets no lock on its instance's terminate event",
			stack: cfntypes.StackStatusDeleteInProgress, state: "terminated", event: "terminated", wantAction: ActionSkipped},
		{name: "a DELETE_IN_PROGRESS stack's role gets no lock on a scheduled run",
			stack: cfntypes.StackStatusDeleteInProgress, state: "terminated", event: "scheduled", wantAction: ActionSkipped},
		{name: "a DELETE_IN_PROGRESS stack's role with no instance left gets no lock on a scheduled run",
			stack: cfntypes.StackStatusDeleteInProgress, event: "scheduled", wantAction: ActionSkipped},
		{name: "a DELETE_IN_PROGRESS stack's existing lock is not rewritten either",
			stack: cfntypes.StackStatusDeleteInProgress, state: "running", lock: true, event: "running", wantAction: ActionSkipped},
		{name: "a role in a stack rolling back its creation gets no lock",
			stack: cfntypes.StackStatusRollbackInProgress, state: "terminated", event: "terminated", wantAction: ActionSkipped},
		{name: "a role in a nested stack whose root is DELETE_IN_PROGRESS gets no lock",
			stack: cfntypes.StackStatusCreateComplete, root: cfntypes.StackStatusDeleteInProgress, state: "terminated", event: "terminated",
			wantAction: ActionSkipped},
		{name: "a DELETE_FAILED stack's role without instances and without a lock does not get one",
			stack: cfntypes.StackStatusDeleteFailed, state: "terminated", event: "scheduled", wantAction: ActionSkipped},

		{name: "a role that no stack owns is locked as before on a terminate event",
			state: "terminated", event: "terminated", wantAction: ActionWritten, wantDoc: denyAllJSON},
		{name: "a role that no stack owns is locked as before on a scheduled run",
			state: "running", event: "scheduled", wantAction: ActionWritten,
			wantDoc: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "a CREATE_COMPLETE stack's role is locked as before",
			stack: cfntypes.StackStatusCreateComplete, state: "running", event: "running", wantAction: ActionWritten,
			wantDoc: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "an UPDATE_COMPLETE stack's role gets its stale lock rewritten as before",
			stack: cfntypes.StackStatusUpdateComplete, state: "running", lock: true, event: "scheduled", wantAction: ActionWritten,
			wantDoc: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "an UPDATE_COMPLETE stack's role whose last instance terminated keeps a fail-closed lock",
			stack: cfntypes.StackStatusUpdateComplete, state: "terminated", event: "terminated", wantAction: ActionWritten, wantDoc: denyAllJSON},
		{name: "a role in a nested stack whose root is UPDATE_COMPLETE is locked as before",
			stack: cfntypes.StackStatusCreateComplete, root: cfntypes.StackStatusUpdateComplete, state: "running", event: "running",
			wantAction: ActionWritten, wantDoc: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "a role retained by a DELETE_COMPLETE stack is locked as before",
			stack: cfntypes.StackStatusDeleteComplete, state: "terminated", event: "scheduled", wantAction: ActionWritten, wantDoc: denyAllJSON},
		{name: "a DELETE_FAILED stack's role with a running instance is locked: live credentials come first",
			stack: cfntypes.StackStatusDeleteFailed, state: "running", event: "running", wantAction: ActionWritten,
			wantDoc: func(t *testing.T) string { return render(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "a DELETE_FAILED stack's role keeps its lock up to date",
			stack: cfntypes.StackStatusDeleteFailed, state: "terminated", lock: true, event: "scheduled", wantAction: ActionWritten,
			wantDoc: func(t *testing.T) string { return render(t, nil, []string{vpcA}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			if tt.state != "" {
				var opts []instOpt
				if tt.state == "running" {
					opts = append(opts, publicIP("203.0.113.10"))
				}
				c.addInstance(instance(inst, tt.state, p, vpcA, opts...))
			}
			var before string
			if tt.lock {
				before = render(t, []string{old}, []string{vpcA})
				c.roles["web"].policies[PolicyName] = before
			}
			if tt.stack != "" {
				var root *fakeStack
				if tt.root != "" {
					root = c.addStack("Root", tt.root, nil)
				}
				c.addStack("Luke", tt.stack, root, "web")
			}
			l, _ := newTestLocker(t, c)
			ev := []byte(scheduled)
			if tt.event != "scheduled" {
				ev = stateChange(inst, tt.event)
			}
			rep, err := l.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			res := onlyResult(t, rep)
			if res.Action != tt.wantAction {
				t.Fatalf("action %s, want %s (reason %q, err %v)", res.Action, tt.wantAction, res.Reason, res.Err)
			}
			if tt.wantAction == ActionSkipped {
				if len(c.puts) != 0 || rep.Calls["iam:PutRolePolicy"] != 0 {
					t.Errorf("%d writes while CloudFormation deletes the role", len(c.puts))
				}
				if got := c.roles["web"].policies[PolicyName]; got != before {
					t.Errorf("the lock changed to %q", got)
				}
				if res.Stack != "Luke" || !strings.Contains(res.Reason, "Luke") || res.StackStatus != string(tt.stack) {
					t.Errorf("stack %q (%s), reason %q: want the stack named", res.Stack, res.StackStatus, res.Reason)
				}
				if rep.Count(ActionSkipped) != 1 || rep.Count(ActionError) != 0 {
					t.Errorf("skipped %d errors %d, want 1 and 0", rep.Count(ActionSkipped), rep.Count(ActionError))
				}
				return
			}
			if got, want := c.lock("web"), tt.wantDoc(t); got != want {
				t.Errorf("lock = %s\nwant %s", got, want)
			}
			if tt.stack != "" && (res.Stack != "Luke" || res.StackStatus != string(tt.stack)) {
				t.Errorf("stack %q (%s), want Luke (%s)", res.Stack, res.StackStatus, tt.stack)
			}
		})
	}
}

// TestTheStackIsCheckedBeforeEveryPass covers the write-then-verify loop:
// CloudFormation starts deleting the stack (and its instance) right after
// the locker's first write; the second pass must not write again, since
// CloudFormation may already have deleted the lock.
func TestTheStackIsCheckedBeforeEveryPass(t *testing.T) {
	c := newFakeCloud()
	p := c.addRole("web", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
	st := c.addStack("Luke", cfntypes.StackStatusCreateComplete, nil, "web")
	c.afterPut = func(c *fakeCloud, n int) {
		if n == 1 {
			c.setStackStatus(st, cfntypes.StackStatusDeleteInProgress)
			c.mu.Lock()
			delete(c.roles["web"].policies, PolicyName)
			c.ec2.PutInstance(instance("i-0aaaaaaaaaaaaaaa1", "shutting-down", p, vpcA))
			c.mu.Unlock()
		}
	}
	l, _ := newTestLocker(t, c)
	rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "running"))
	if err != nil {
		t.Fatal(err)
	}
	res := onlyResult(t, rep)
	if res.Passes != 2 || len(c.puts) != 1 || res.Action != ActionSkipped || !res.Written {
		t.Errorf("passes %d puts %d action %s written %v, want 2 passes, 1 write, then skipped", res.Passes, len(c.puts), res.Action, res.Written)
	}
	if _, ok := c.roles["web"].policies[PolicyName]; ok {
		t.Error("the lock CloudFormation deleted was written again")
	}
	if n := rep.Calls["cloudformation:DescribeStackResources"]; n != 2 {
		t.Errorf("%d stack look-ups, want one per pass", n)
	}
}

// TestCloudFormationErrorsFailTheRoleAndWriteNothing: when the locker
// cannot tell whether CloudFormation is deleting a role, it neither writes
// (that could break the deletion for good) nor skips silently (that could
// leave a live role unlocked): the role fails, the invocation returns an
// error, the schedule retries.
func TestCloudFormationErrorsFailTheRoleAndWriteNothing(t *testing.T) {
	throttle := apiError("Throttling")
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform: cloudformation:DescribeStackResources (fake)"}
	tests := []struct {
		name       string
		op         string
		errs       []error
		inStack    bool
		wantAction Action
		wantSleeps int
	}{
		{name: "an access denied on the stack look-up is an error and no write",
			op: "DescribeStackResources", errs: []error{denied}, wantAction: ActionError},
		{name: "a ValidationError that does not say the stack does not exist is an error and no write",
			op: "DescribeStackResources", errs: []error{&smithy.GenericAPIError{Code: "ValidationError", Message: "1 validation error detected (fake)"}},
			wantAction: ActionError},
		{name: "an access denied on the stack status is an error and no write",
			op: "DescribeStacks", errs: []error{denied}, inStack: true, wantAction: ActionError},
		{name: "CloudFormation throttling that never stops is an error and no write",
			op: "DescribeStackResources", errs: []error{throttle, throttle, throttle, throttle, throttle, throttle}, inStack: true,
			wantAction: ActionError, wantSleeps: 5},
		{name: "CloudFormation throttling is retried and then the lock is written",
			op: "DescribeStacks", errs: []error{throttle, throttle}, inStack: true, wantAction: ActionWritten, wantSleeps: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "terminated", p, vpcA))
			if tt.inStack {
				c.addStack("Luke", cfntypes.StackStatusCreateComplete, nil, "web")
			}
			c.errs[tt.op] = tt.errs
			l, s := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), stateChange("i-0aaaaaaaaaaaaaaa1", "terminated"))
			res := onlyResult(t, rep)
			if res.Action != tt.wantAction {
				t.Fatalf("action %s, want %s (%v)", res.Action, tt.wantAction, res.Err)
			}
			if len(s.d) != tt.wantSleeps {
				t.Errorf("slept %v, want %d retries", s.d, tt.wantSleeps)
			}
			if tt.wantAction == ActionWritten {
				if err != nil || c.lock("web") != denyAllJSON(t) {
					t.Errorf("err %v, lock %q", err, c.lock("web"))
				}
				return
			}
			if err == nil || res.Err == nil || !strings.Contains(res.Error, "locker:") || !strings.Contains(res.Error, "CloudFormation") {
				t.Errorf("err %v, result error %q: want the invocation to fail with context", err, res.Error)
			}
			if len(c.puts) != 0 {
				t.Errorf("%d writes after a CloudFormation error", len(c.puts))
			}
		})
	}
}
