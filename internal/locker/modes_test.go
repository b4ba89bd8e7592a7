package locker

import (
	"context"
	"fmt"
	"strings"
	"testing"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestTheLockKeepsTheRolesMode checks that the locker renders the mode the
// role's defenders:lock-mode tag names, not one guessed from the
// instances' addresses.
func TestTheLockKeepsTheRolesMode(t *testing.T) {
	const id = "i-0aaaaaaaaaaaaaaa1"
	tests := []struct {
		name       string
		tag        string // "" untagged
		network    func(c *fakeCloud)
		instance   func(profile string) ec2types.Instance
		wantIPs    []string
		wantAction Action
		wantMode   Mode
		wantReason string
	}{
		{name: "a NAT-egress role whose instance has no public address is locked to its NAT gateway's address",
			tag: "nat-egress", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate))
			},
			wantIPs: []string{natAddr}, wantAction: ActionWritten, wantMode: ModeExact},
		{name: "a NAT-egress role routed by the VPC's main route table gets that table's NAT gateway",
			tag: "nat-egress",
			network: func(c *fakeCloud) {
				c.ec2.PutRouteTable(routeTable("rtb-0aaaaaaaaaaaa0001", vpcA, natA, true))
				c.ec2.AddNatGateway(natGateway(natA, vpcA, ec2types.NatGatewayStateAvailable, natAddr, "198.51.100.78"))
			},
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate))
			},
			wantIPs: []string{natAddr, "198.51.100.78"}, wantAction: ActionWritten, wantMode: ModeExact},
		{name: "a NAT-egress instance's own IPv6 address (egress-only internet gateway) is admitted next to the NAT gateway's",
			tag: "nat-egress", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate), eni("", "", "2001:db8:1234::10"))
			},
			wantIPs: []string{natAddr, "2001:db8:1234::10/128"}, wantAction: ActionWritten, wantMode: ModeExact},
		{name: "a NAT-egress role whose default route is a blackhole gets no NAT address and says why",
			tag: "nat-egress",
			network: func(c *fakeCloud) {
				rt := routeTable("rtb-0aaaaaaaaaaaa0002", vpcA, natA, false, subnetPrivate)
				rt.Routes[1].State = ec2types.RouteStateBlackhole
				c.ec2.PutRouteTable(rt)
				c.ec2.AddNatGateway(natGateway(natA, vpcA, ec2types.NatGatewayStateDeleted, natAddr))
			},
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate))
			},
			wantAction: ActionWritten, wantMode: ModeVPCEndpointsOnly, wantReason: "no NAT gateway"},
		{name: "a NAT gateway that is being deleted counts for nothing",
			tag: "nat-egress",
			network: func(c *fakeCloud) {
				c.ec2.PutRouteTable(routeTable("rtb-0aaaaaaaaaaaa0002", vpcA, natA, false, subnetPrivate))
				c.ec2.AddNatGateway(natGateway(natA, vpcA, ec2types.NatGatewayStateDeleting, natAddr))
			},
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate))
			},
			wantAction: ActionWritten, wantMode: ModeVPCEndpointsOnly},
		{name: "an endpoints-only role whose instance has a public address stays endpoints-only",
			tag: "vpc-endpoints-only", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPublic), publicIP("203.0.113.10"))
			},
			wantAction: ActionWritten, wantMode: ModeVPCEndpointsOnly, wantReason: "vpc-endpoints-only"},
		{name: "an instance-public-ip role is locked to its instance's public address, not its NAT gateway's",
			tag: "instance-public-ip", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate), publicIP("203.0.113.10"))
			},
			wantIPs: []string{"203.0.113.10"}, wantAction: ActionWritten, wantMode: ModeExact},
		{name: "an elastic-ip role is locked to the Elastic IPs of its instance",
			tag: "elastic-ip", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPublic), eni("198.51.100.5", ""))
			},
			wantIPs: []string{"198.51.100.5"}, wantAction: ActionWritten, wantMode: ModeExact},
		{name: "an untagged role keeps the reading of before: its instances' own addresses, no NAT gateway",
			network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPrivate))
			},
			wantAction: ActionWritten, wantMode: ModeVPCEndpointsOnly, wantReason: "no public address"},
		{name: "an unknown mode tag writes the endpoints-only lock and reports a fallback naming the value",
			tag: "nat_egress", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPublic), publicIP("203.0.113.10"))
			},
			wantAction: ActionFallback, wantMode: ModeVPCEndpointsOnly, wantReason: `"nat_egress"`},
		{name: "an empty mode tag is an unknown mode too",
			tag: " ", network: (*fakeCloud).privateNetwork,
			instance: func(p string) ec2types.Instance {
				return instance(id, "running", p, vpcA, inSubnet(subnetPublic), publicIP("203.0.113.10"))
			},
			wantAction: ActionFallback, wantMode: ModeVPCEndpointsOnly, wantReason: `" "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			if tt.tag != "" {
				c.tagRole("web", tt.tag)
			}
			tt.network(c)
			c.addInstance(tt.instance(p))
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), stateChange(id, "running"))
			if err != nil {
				t.Fatal(err)
			}
			res := onlyResult(t, rep)
			if res.Action != tt.wantAction || res.Mode != tt.wantMode {
				t.Fatalf("action %s mode %s, want %s %s (reason %q)", res.Action, res.Mode, tt.wantAction, tt.wantMode, res.Reason)
			}
			if got, want := c.lock("web"), render(t, tt.wantIPs, []string{vpcA}); got != want {
				t.Errorf("lock = %s\nwant %s", got, want)
			}
			if !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("reason %q does not say %q", res.Reason, tt.wantReason)
			}
			if string(res.LockMode) != tt.tag {
				t.Errorf("LockMode = %q, want the tag %q", res.LockMode, tt.tag)
			}
		})
	}
}

// TestLockModesSurviveTheLocker is the scenario of the lock modes: the
// locks the CDK construct deployed (a NAT-egress role locked to its NAT
// gateway's address, an endpoints-only role whose instance has a public
// address) go through state changes, a stop and start, and the schedule,
// and come out as they went in, without a write.
func TestLockModesSurviveTheLocker(t *testing.T) {
	c := newFakeCloud()
	c.privateNetwork()
	nat := c.addRole("worker", "/defenders/")
	c.tagRole("worker", "nat-egress")
	api := c.addRole("api", "/defenders/")
	c.tagRole("api", "vpc-endpoints-only")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", nat, vpcA, inSubnet(subnetPrivate)))
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa2", "running", api, vpcA, inSubnet(subnetPublic), publicIP("203.0.113.20")))
	deployed := map[string]string{
		"worker": render(t, []string{natAddr}, []string{vpcA}),
		"api":    render(t, nil, []string{vpcA}),
	}
	for role, doc := range deployed {
		c.roles[role].policies[PolicyName] = doc
	}
	l, _ := newTestLocker(t, c)
	steps := []struct {
		name  string
		event []byte
		setup func()
	}{
		{"the worker's state change", stateChange("i-0aaaaaaaaaaaaaaa1", "running"), nil},
		{"the api's state change", stateChange("i-0aaaaaaaaaaaaaaa2", "running"), nil},
		{"the schedule", []byte(scheduled), nil},
		{"the api instance restarted with a new public address", stateChange("i-0aaaaaaaaaaaaaaa2", "running"), func() {
			c.addInstance(instance("i-0aaaaaaaaaaaaaaa2", "running", api, vpcA, inSubnet(subnetPublic), publicIP("203.0.113.21")))
		}},
		{"the schedule again", []byte(scheduled), nil},
	}
	for _, st := range steps {
		t.Run(st.name+" leaves both locks as deployed", func(t *testing.T) {
			if st.setup != nil {
				st.setup()
			}
			rep, err := l.Handle(context.Background(), st.event)
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range rep.Results {
				if res.Action != ActionUnchanged {
					t.Errorf("%s: %s (%s): %s", res.Role, res.Action, res.Mode, res.Reason)
				}
			}
			for role, doc := range deployed {
				if got := c.lock(role); got != doc {
					t.Errorf("%s's lock became %s\nwant %s", role, got, doc)
				}
			}
			if len(c.puts) != 0 {
				t.Errorf("%d writes", len(c.puts))
			}
		})
	}
}

// TestRoutesAndNatGatewaysAreAskedOncePerInvocation: a scheduled run over
// many NAT-egress roles of one VPC costs one DescribeRouteTables and one
// DescribeNatGateways, not one of each per role.
func TestRoutesAndNatGatewaysAreAskedOncePerInvocation(t *testing.T) {
	c := newFakeCloud()
	c.privateNetwork()
	for i, name := range []string{"a", "b", "c", "d"} {
		p := c.addRole(name, "/defenders/")
		c.tagRole(name, "nat-egress")
		c.addInstance(instance(fmt.Sprintf("i-%017x", i+1), "running", p, vpcA, inSubnet(subnetPrivate)))
	}
	l, _ := newTestLocker(t, c)
	rep, err := l.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls["ec2:DescribeRouteTables"] != 1 || rep.Calls["ec2:DescribeNatGateways"] != 1 {
		t.Errorf("calls %v, want one DescribeRouteTables and one DescribeNatGateways", rep.Calls)
	}
	for _, res := range rep.Results {
		if res.Action != ActionWritten || !strings.Contains(c.lock(res.Role), natAddr) {
			t.Errorf("%s: %s, lock %s", res.Role, res.Action, c.lock(res.Role))
		}
	}
}
