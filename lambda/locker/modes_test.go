package main

// Shipped-binary tests of lock modes, the app's trust, address-change
// events and the AWSDenyAll last resort.

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

const (
	natRole       = "worker-role"
	natProfile    = "worker-profile"
	natInst       = "i-0eeeeeeeeeeeeeee1"
	natID         = "nat-0a1b2c3d4e5f60718"
	natPublicIP   = "52.1.2.3"
	privateSubnet = "subnet-0bbbbbbbbbbbbbbb1"
	apiRole       = "api-role"
	apiProfile    = "api-profile"
	apiInst       = "i-0fffffffffffffff1"
)

// withModes adds, to newCloud's account, a private subnet routed through a
// NAT gateway, a NAT-egress role whose instance runs there, and an
// endpoints-only role whose instance has a public address, each with the
// lock its construct deployed.
func withModes(t *testing.T, c *lambdatest.Cloud) {
	t.Helper()
	c.Network.PutRouteTable(ec2types.RouteTable{RouteTableId: aws.String("rtb-0a1b2c3d4e5f60718"), VpcId: aws.String(vpcID),
		Routes: []ec2types.Route{{DestinationCidrBlock: aws.String("0.0.0.0/0"), NatGatewayId: aws.String(natID), State: ec2types.RouteStateActive}},
		Associations: []ec2types.RouteTableAssociation{{SubnetId: aws.String(privateSubnet), Main: aws.Bool(false),
			RouteTableAssociationId: aws.String("rtbassoc-0a1b2c3d4e5f60718"), RouteTableId: aws.String("rtb-0a1b2c3d4e5f60718")}}})
	c.Network.AddNatGateway(ec2types.NatGateway{NatGatewayId: aws.String(natID), VpcId: aws.String(vpcID), State: ec2types.NatGatewayStateAvailable,
		NatGatewayAddresses: []ec2types.NatGatewayAddress{{PublicIp: aws.String(natPublicIP), PrivateIp: aws.String("10.0.0.5")}}})
	c.AddRole(natRole, "/defenders/")
	c.TagRole(natRole, contract.LockModeTagKey, string(lockpolicy.ModeNATEgress))
	c.AddInstanceProfile(natProfile, "/", natRole)
	c.PutInstance(lambdatest.Instance{ID: natInst, State: "running", VPC: vpcID, Subnet: privateSubnet, PrivateIP: "10.0.2.10", Profile: natProfile})
	c.SetRolePolicy(natRole, lockName, deployedLock(t, []string{natPublicIP}))
	c.AddRole(apiRole, "/defenders/")
	c.TagRole(apiRole, contract.LockModeTagKey, string(lockpolicy.ModeVPCEndpointsOnly))
	c.AddInstanceProfile(apiProfile, "/", apiRole)
	c.PutInstance(lambdatest.Instance{ID: apiInst, State: "running", VPC: vpcID, PrivateIP: "10.0.1.50", PublicIP: "54.10.20.60", Profile: apiProfile})
	c.SetRolePolicy(apiRole, lockName, deployedLock(t, nil))
}

// deployedLock is the lock a construct deploys for ips in vpcID.
func deployedLock(t *testing.T, ips []string) string {
	t.Helper()
	d, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: ips, VPCs: []string{vpcID}}, lockpolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLockModesSurviveTheShippedLocker(t *testing.T) {
	c := newCloud(t)
	withModes(t, c)
	f := startLocker(t, c, nil)
	for _, ev := range [][]byte{stateChange(t, natInst, "running"), stateChange(t, apiInst, "running"), scheduled(t)} {
		mustSucceed(t, f, ev)
	}
	for _, role := range []string{natRole, apiRole} {
		if n := len(puts(c, role)); n != 0 {
			t.Errorf("%d PutRolePolicy calls on %s: its deployed lock was rewritten", n, role)
		}
	}
	if doc, _ := c.RolePolicy(natRole, lockName); !strings.Contains(doc, natPublicIP) {
		t.Errorf("the NAT-egress lock lost the NAT gateway's address: %s", doc)
	}
	if doc, _ := c.RolePolicy(apiRole, lockName); strings.Contains(doc, "54.10.20.60") {
		t.Errorf("the endpoints-only lock lists the instance's public address: %s", doc)
	}
	lg, _ := last(t, f)
	for _, r := range lg.Results {
		if r.Action != "unchanged" && r.Action != "written" {
			t.Errorf("%s: %s", r.Role, r.Action)
		}
	}
}

func TestTheTrustReachesTheLocks(t *testing.T) {
	c := newCloud(t)
	f := startLocker(t, c, map[string]string{contract.EnvTrustedEgressPrefixes: "198.51.100.0/24"})
	mustSucceed(t, f, stateChange(t, web1, "running"))
	ips, _ := lastLock(t, c, webRole)
	wantList(t, "aws:SourceIp", ips, "198.51.100.0/24", "54.10.20.30/32")
}

// addressEvent is the CloudTrail event of AssociateAddress naming the web
// instance.
func addressEvent(t *testing.T) []byte {
	return event(t, "AWS API Call via CloudTrail", "aws.ec2", map[string]any{
		"eventSource": "ec2.amazonaws.com", "eventName": "AssociateAddress", "awsRegion": lambdatest.Region,
		"requestParameters": map[string]any{"instanceId": web1, "allocationId": "eipalloc-0a1b2c3d4e5f60718"},
		"responseElements":  map[string]any{"associationId": "eipassoc-0a1b2c3d4e5f60718", "_return": true},
	})
}

func TestAnElasticIPAssociationReachesOnlyItsRole(t *testing.T) {
	c := newCloud(t)
	withModes(t, c)
	f := startLocker(t, c, nil)
	c.UpdateInstance(web1, func(in *lambdatest.Instance) { in.PublicIP = "3.90.7.7" })
	s := mustSucceed(t, f, addressEvent(t))
	if s.Event != "api-call" || s.Roles != 1 || s.Written != 1 {
		t.Errorf("summary %+v, want the web role alone written", s)
	}
	ips, _ := lastLock(t, c, webRole)
	wantList(t, "aws:SourceIp", ips, "3.90.7.7/32")
	if n := c.IAM.Count("ListRoles"); n != 0 {
		t.Errorf("%d ListRoles calls: every role was reconciled", n)
	}
}

func TestAWSDenyAllIsTheLastResort(t *testing.T) {
	c := newCloud(t)
	// An inline policy that leaves no room for even the deny-all lock.
	c.DeleteRolePolicy(webRole, lockName)
	room := lockpolicy.MaxRolePolicySize - lockpolicy.DenyAll().Size() + 1
	head, tail := `{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/`, `"}]}`
	c.SetRolePolicy(webRole, "app", head+strings.Repeat("k", room-len(head)-len(tail))+tail)
	f := startLocker(t, c, nil)
	s := mustSucceed(t, f, stateChange(t, web1, "running"))
	if s.Fallback != 1 || s.Written != 1 {
		t.Errorf("summary %+v, want one fallback put in place", s)
	}
	if got := c.AttachedPolicies(webRole); !slices.Equal(got, []string{denyAllArn}) {
		t.Errorf("attached %q, want AWSDenyAll", got)
	}
	lg, m := last(t, f)
	if m.FallbackLocks != 1 || lg.Level != "WARN" || len(lg.Results) != 1 || !strings.Contains(lg.Results[0].Reason, "AWSDenyAll") {
		t.Errorf("FallbackLocks %v, level %s, results %+v", m.FallbackLocks, lg.Level, lg.Results)
	}
}
