package main

// Shipped-binary tests of the locks the locker writes, and of those it
// must not write.

import (
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

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
