package locker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fleet is n managed roles role00..role{n-1}, all in the CloudFormation
// stack App and tagged instance-public-ip as the lock constructs tag them,
// each with one running instance (i-...01, i-...02, ...) whose address
// is in its deployed lock.
func fleet(t *testing.T, n int) *fakeCloud {
	c := newFakeCloud()
	var roles []string
	for i := range n {
		role := fmt.Sprintf("role%02d", i)
		roles = append(roles, role)
		p := c.addRole(role, "/defenders/")
		c.tagRole(role, "instance-public-ip")
		c.addInstance(instance(fleetInstance(i), "running", p, vpcA, publicIP(fleetAddr(i))))
		c.roles[role].policies[PolicyName] = render(t, []string{fleetAddr(i)}, []string{vpcA})
	}
	c.addStack("App", cfntypes.StackStatusCreateComplete, nil, roles...)
	return c
}

func fleetInstance(i int) string { return fmt.Sprintf("i-%017x", i+1) }
func fleetAddr(i int) string     { return fmt.Sprintf("3.80.%d.%d", i/200, 10+i%200) }

func resultRoles(rep Report) []string {
	var out []string
	for _, r := range rep.Results {
		out = append(out, r.Role)
	}
	slices.Sort(out)
	return out
}

func TestATerminationReconcilesOnlyTheInstancesRoles(t *testing.T) {
	const roles = 51
	tests := []struct {
		name      string
		setup     func(c *fakeCloud)
		state     string
		wantRoles []string
		wantCalls int // 0: not checked
	}{
		{name: "at shutting-down, while EC2 still shows the profile, only that role is reconciled and the address leaves its lock",
			setup: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "shutting-down", profileARN("/defenders/", "role07"), vpcA, publicIP(fleetAddr(7))))
			},
			state: "shutting-down", wantRoles: []string{"role07"}},
		{name: "at shutting-down, an instance that EC2 still shows running is left out of the lock all the same",
			state: "shutting-down", wantRoles: []string{"role07"}},
		{name: "at terminated, an instance that shows neither a profile nor an address reconciles nothing: one call",
			setup: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "terminated", "", ""))
			},
			state: "terminated", wantRoles: nil, wantCalls: 1},
		{name: "at terminated, an instance that shows no profile but still an address reconciles only the roles whose lock lists it",
			setup: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "terminated", "", vpcA, publicIP(fleetAddr(7))))
			},
			state: "terminated", wantRoles: []string{"role07"}},
		{name: "at terminated, an instance that still shows its profile reconciles that role",
			setup: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "terminated", profileARN("/defenders/", "role07"), vpcA))
			},
			state: "terminated", wantRoles: []string{"role07"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fleet(t, roles)
			if tt.setup != nil {
				tt.setup(c)
			}
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), stateChange(fleetInstance(7), tt.state))
			if err != nil {
				t.Fatal(err)
			}
			if got := resultRoles(rep); !slices.Equal(got, tt.wantRoles) {
				t.Fatalf("reconciled %d roles %q, want %q (calls %d)", len(got), got, tt.wantRoles, rep.TotalCalls)
			}
			if tt.wantCalls != 0 && rep.TotalCalls != tt.wantCalls {
				t.Errorf("%d calls %v, want %d", rep.TotalCalls, rep.Calls, tt.wantCalls)
			}
			if strings.Contains(c.lock("role07"), fleetAddr(7)) && len(tt.wantRoles) > 0 {
				t.Errorf("role07's lock still lists the leaving instance's address: %s", c.lock("role07"))
			}
			for i := range roles {
				if i == 7 {
					continue
				}
				role := fmt.Sprintf("role%02d", i)
				if got, want := c.lock(role), render(t, []string{fleetAddr(i)}, []string{vpcA}); got != want {
					t.Errorf("%s's lock changed", role)
				}
			}
		})
	}
}

func TestAnInstanceUnknownToEC2ReconcilesEveryRole(t *testing.T) {
	c := fleet(t, 3)
	l, _ := newTestLocker(t, c, func(cfg *Config) { cfg.NotFoundAttempts = 1 })
	rep, err := l.Handle(context.Background(), stateChange("i-0fffffffffffffff9", "terminated"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resultRoles(rep); len(got) != 3 {
		t.Errorf("reconciled %q, want every role", got)
	}
}

// TestAPICallsPerEventKind measures Report.Calls, the README's "API calls
// per event", for an account of 51 managed roles in one CloudFormation
// stack, each with one running instance and its lock in place: a state
// change that moves an address, a termination (its shutting-down and its
// terminated event), an Elastic IP association, and a scheduled run.
func TestAPICallsPerEventKind(t *testing.T) {
	const roles = 51
	tests := []struct {
		name   string
		change func(c *fakeCloud)
		event  func(t *testing.T) []byte
		roles  int
		total  int
	}{
		{name: "a state change (a start with a new address)",
			change: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "running", profileARN("/defenders/", "role07"), vpcA, publicIP("3.90.0.7")))
			},
			event: func(t *testing.T) []byte { return stateChange(fleetInstance(7), "running") },
			roles: 1, total: 12},
		{name: "a state change that changes nothing",
			event: func(t *testing.T) []byte { return stateChange(fleetInstance(7), "running") },
			roles: 1, total: 7},
		{name: "a termination's shutting-down event",
			change: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "shutting-down", profileARN("/defenders/", "role07"), vpcA, publicIP(fleetAddr(7))))
			},
			event: func(t *testing.T) []byte { return stateChange(fleetInstance(7), "shutting-down") },
			roles: 1, total: 12},
		{name: "a termination's terminated event",
			change: func(c *fakeCloud) { c.addInstance(instance(fleetInstance(7), "terminated", "", "")) },
			event:  func(t *testing.T) []byte { return stateChange(fleetInstance(7), "terminated") },
			roles:  0, total: 1},
		{name: "an address change event (AssociateAddress naming the instance)",
			change: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "running", profileARN("/defenders/", "role07"), vpcA, publicIP("198.51.100.5")))
			},
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"instanceId": fleetInstance(7), "allocationId": "eipalloc-0aaaaaaaaaaaaaaa1"}, nil, "")
			},
			roles: 1, total: 12},
		{name: "an address change event that names only the Elastic IP's allocation",
			change: func(c *fakeCloud) {
				c.addInstance(instance(fleetInstance(7), "running", profileARN("/defenders/", "role07"), vpcA, publicIP("198.51.100.5")))
				c.ec2.PutAddress(ec2types.Address{AllocationId: aws.String("eipalloc-0aaaaaaaaaaaaaaa1"), PublicIp: aws.String("198.51.100.5"),
					AssociationId: aws.String("eipassoc-0aaaaaaaaaaaaaaa1"), InstanceId: aws.String(fleetInstance(7)), Domain: ec2types.DomainTypeVpc})
			},
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"allocationId": "eipalloc-0aaaaaaaaaaaaaaa1"}, nil, "")
			},
			roles: 1, total: 13},
		{name: "an Elastic IP disassociation (its association is gone: every role)",
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "DisassociateAddress", map[string]any{"associationId": "eipassoc-0aaaaaaaaaaaaaaa1"}, nil, "")
			},
			roles: roles, total: 2 + 5*roles},
		{name: "a scheduled run with 51 roles",
			event: func(t *testing.T) []byte { return []byte(scheduled) },
			roles: roles, total: 1 + 5*roles},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fleet(t, roles)
			if tt.change != nil {
				tt.change(c)
			}
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), tt.event(t))
			if err != nil {
				t.Fatal(err)
			}
			calls := slices.Sorted(maps.Keys(rep.Calls))
			var b strings.Builder
			for _, op := range calls {
				fmt.Fprintf(&b, " %s=%d", op, rep.Calls[op])
			}
			t.Logf("%s: %d roles, %d calls:%s", tt.name, len(rep.Results), rep.TotalCalls, b.String())
			if len(rep.Results) != tt.roles || rep.TotalCalls != tt.total {
				t.Errorf("%d roles and %d calls, want %d and %d", len(rep.Results), rep.TotalCalls, tt.roles, tt.total)
			}
		})
	}
}
