package ec2inventory_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// fakeEC2 is the tests' one EC2 fake, lambdatest.EC2, with what these
// tests assert of every DescribeInstances call: the inventory filters by
// instance-id, at most MaxFilterValues ids a call, instead of passing
// InstanceIds (which EC2 refuses as a whole when one id is unknown).
// nilOutput makes DescribeInstances and DescribeRegions answer neither
// output nor error.
type fakeEC2 struct {
	*lambdatest.EC2
	nilOutput bool
}

func newFakeEC2() *fakeEC2 { return &fakeEC2{EC2: &lambdatest.EC2{}} }

func filterValues(fs []types.Filter, name string) ([]string, bool) {
	for _, f := range fs {
		if aws.ToString(f.Name) == name {
			return f.Values, true
		}
	}
	return nil, false
}

func (f *fakeEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	out, err := f.EC2.DescribeInstances(ctx, in, optFns...)
	if len(in.InstanceIds) > 0 {
		return nil, errors.New("InvalidInstanceID.NotFound: the inventory must filter, not pass InstanceIds")
	}
	if ids, ok := filterValues(in.Filters, "instance-id"); !ok || len(ids) > ec2inventory.MaxFilterValues {
		return nil, fmt.Errorf("bad instance-id filter: %v", in.Filters)
	}
	if err != nil || f.nilOutput {
		return nil, err
	}
	return out, nil
}

func (f *fakeEC2) DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	out, err := f.EC2.DescribeRegions(ctx, in, optFns...)
	if err != nil || f.nilOutput {
		return nil, err
	}
	return out, nil
}

func (f *fakeEC2) calls() (instances, nats, endpoints int) {
	return f.Calls("DescribeInstances"), f.Calls("DescribeNatGateways"), f.Calls("DescribeVpcEndpoints")
}

func (f *fakeEC2) setErrors(inst, nat, ep error) {
	f.SetError("DescribeInstances", inst)
	f.SetError("DescribeNatGateways", nat)
	f.SetError("DescribeVpcEndpoints", ep)
}

// theInstance is the fixture instance as EC2 describes it: a primary ENI
// with an auto-assigned public IPv4 and an IPv6 address, and a secondary
// ENI whose secondary private address carries an Elastic IP and which has
// a delegated prefix.
func theInstance() types.Instance {
	return types.Instance{
		InstanceId:       aws.String(ctt.InstanceID),
		VpcId:            aws.String(ctt.VpcID),
		PublicIpAddress:  aws.String(ctt.PublicIP),
		PrivateIpAddress: aws.String(ctt.PrivateIP),
		Ipv6Address:      aws.String(ctt.PublicIPv6),
		State:            &types.InstanceState{Name: types.InstanceStateNameRunning},
		NetworkInterfaces: []types.InstanceNetworkInterface{
			{
				VpcId:            aws.String(ctt.VpcID),
				PrivateIpAddress: aws.String(ctt.PrivateIP),
				Association:      &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ctt.PublicIP)},
				PrivateIpAddresses: []types.InstancePrivateIpAddress{{
					PrivateIpAddress: aws.String(ctt.PrivateIP),
					Primary:          aws.Bool(true),
					Association:      &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ctt.PublicIP)},
				}},
				Ipv6Addresses: []types.InstanceIpv6Address{{Ipv6Address: aws.String(ctt.PublicIPv6)}},
			},
			{
				VpcId:            aws.String(ctt.VpcID),
				PrivateIpAddress: aws.String("10.0.1.11"),
				PrivateIpAddresses: []types.InstancePrivateIpAddress{
					{PrivateIpAddress: aws.String("10.0.1.11"), Primary: aws.Bool(true)},
					{
						PrivateIpAddress: aws.String("10.0.1.12"),
						Association:      &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ctt.ElasticIP), IpOwnerId: aws.String(ctt.Account)},
					},
				},
				Ipv4Prefixes: []types.InstanceIpv4Prefix{{Ipv4Prefix: aws.String("10.0.1.48/28")}},
				Ipv6Prefixes: []types.InstanceIpv6Prefix{{Ipv6Prefix: aws.String("2001:db8:1:2:a::/80")}},
			},
		},
	}
}

func world() *fakeEC2 {
	f := newFakeEC2()
	for _, in := range []types.Instance{
		theInstance(),
		{
			InstanceId:       aws.String(ctt.OldInstanceID),
			VpcId:            aws.String("vpc-0ld00000"),
			PublicIpAddress:  aws.String("198.51.100.77"),
			PrivateIpAddress: aws.String("10.0.2.44"),
			State:            &types.InstanceState{Name: types.InstanceStateNameStopping},
		},
		{
			InstanceId:      aws.String("i-0dead0000000000001"),
			VpcId:           aws.String(ctt.VpcID),
			PublicIpAddress: aws.String("198.51.100.200"),
			State:           &types.InstanceState{Name: types.InstanceStateNameTerminated},
		},
	} {
		f.PutInstance(in)
	}
	f.AddNatGateway([]types.NatGateway{
		{VpcId: aws.String(ctt.VpcID), State: types.NatGatewayStateAvailable,
			NatGatewayAddresses: []types.NatGatewayAddress{{PublicIp: aws.String(ctt.NATIP), PrivateIp: aws.String("10.0.0.5")}}},
		{VpcId: aws.String(ctt.VpcID), State: types.NatGatewayStateAvailable, // a private NAT gateway
			NatGatewayAddresses: []types.NatGatewayAddress{{PrivateIp: aws.String("10.0.0.6")}}},
		{VpcId: aws.String(ctt.VpcID), State: types.NatGatewayStateDeleted,
			NatGatewayAddresses: []types.NatGatewayAddress{{PublicIp: aws.String("192.0.2.99")}}},
		{VpcId: aws.String("vpc-0other000000000"), State: types.NatGatewayStateAvailable,
			NatGatewayAddresses: []types.NatGatewayAddress{{PublicIp: aws.String("192.0.2.77")}}},
	}...)
	f.AddVpcEndpoint([]types.VpcEndpoint{
		{VpcId: aws.String(ctt.VpcID), VpcEndpointId: aws.String(ctt.OwnEndpoint), State: types.StateAvailable},
		{VpcId: aws.String(ctt.VpcID), VpcEndpointId: aws.String("vpce-0s3gateway0000001"), State: types.StateAvailable},
		{VpcId: aws.String("vpc-0other000000000"), VpcEndpointId: aws.String(ctt.ForeignEndpoint)},
	}...)
	return f
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		found bool
		want  detect.Instance
	}{
		{
			name:  "every address of every ENI, NAT gateways and endpoints of the VPC",
			id:    ctt.InstanceID,
			found: true,
			want: detect.Instance{
				ID:               ctt.InstanceID,
				VpcID:            ctt.VpcID,
				PublicIPs:        addrs(ctt.PublicIP, ctt.PublicIPv6, ctt.ElasticIP),
				PublicPrefixes:   []netip.Prefix{netip.MustParsePrefix("2001:db8:1:2:a::/80")},
				NATIPs:           addrs(ctt.NATIP),
				PrivateIPs:       addrs(ctt.PrivateIP, "10.0.1.11", "10.0.1.12"),
				PrimaryPrivateIP: netip.MustParseAddr(ctt.PrivateIP),
				PrivatePrefixes:  []netip.Prefix{netip.MustParsePrefix("10.0.1.48/28"), netip.MustParsePrefix("2001:db8:1:2:a::/80")},
				VPCEndpointIDs:   []string{ctt.OwnEndpoint, "vpce-0s3gateway0000001"},
			},
		},
		{
			name:  "instance without ENI details or NAT",
			id:    ctt.OldInstanceID,
			found: true,
			want: detect.Instance{
				ID:         ctt.OldInstanceID,
				VpcID:      "vpc-0ld00000",
				PublicIPs:  addrs("198.51.100.77"),
				PrivateIPs: addrs("10.0.2.44"),
				// The primary private IPv4, which a lock compares through
				// VPC endpoints.
				PrimaryPrivateIP: netip.MustParseAddr("10.0.2.44"),
			},
		},
		{name: "unknown instance", id: ctt.UnknownInstance},
		{name: "terminated instance", id: "i-0dead0000000000001"},
		{name: "empty id", id: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := world()
			inv := ec2inventory.New(api, ec2inventory.Options{})
			got, found, err := inv.Lookup(t.Context(), tt.id)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if found != tt.found {
				t.Fatalf("found = %v, want %v", found, tt.found)
			}
			if found && fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("instance\n got %+v\nwant %+v", got, tt.want)
			}
			for _, in := range api.DescribeInstancesInputs() {
				if len(in.InstanceIds) != 0 {
					t.Errorf("DescribeInstances used InstanceIds %v", in.InstanceIds)
				}
			}
			for _, in := range api.DescribeNatGatewaysInputs() {
				if st, _ := filterValues(in.Filter, "state"); !slices.Equal(st, []string{"available"}) {
					t.Errorf("DescribeNatGateways state filter = %v", st)
				}
			}
		})
	}
}

func TestLookupMany(t *testing.T) {
	tests := []struct {
		name          string
		ids           int // fixture instances asked for, plus this many unknown ids
		pageSize      int
		wantInstCalls int
	}{
		{name: "one call for a few ids", ids: 3, wantInstCalls: 1},
		{name: "chunks of 200 ids", ids: 450, wantInstCalls: 3},
		{name: "pages are followed", ids: 3, pageSize: 1, wantInstCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := world()
			api.SetPageSize(tt.pageSize)
			inv := ec2inventory.New(api, ec2inventory.Options{})
			ids := []string{ctt.InstanceID, ctt.OldInstanceID, ctt.InstanceID} // a duplicate
			for i := range tt.ids - 2 {
				ids = append(ids, fmt.Sprintf("i-0%016x", 0xbad000+i))
			}
			got, err := inv.LookupMany(t.Context(), ids)
			if err != nil {
				t.Fatalf("LookupMany: %v", err)
			}
			if len(got) != 2 || got[ctt.InstanceID].ID != ctt.InstanceID || got[ctt.OldInstanceID].ID != ctt.OldInstanceID {
				t.Errorf("found %v, want the two fixture instances", slices.Collect(maps.Keys(got)))
			}
			inst, nats, eps := api.calls()
			if inst != tt.wantInstCalls || nats != 1 || eps != 1 {
				t.Errorf("calls: DescribeInstances %d (want %d), DescribeNatGateways %d, DescribeVpcEndpoints %d (want 1 each: VPCs are described together)",
					inst, tt.wantInstCalls, nats, eps)
			}
			if vpcs, _ := filterValues(api.DescribeNatGatewaysInputs()[0].Filter, "vpc-id"); len(vpcs) != 2 {
				t.Errorf("NAT vpc-id filter = %v, want both VPCs", vpcs)
			}
		})
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var errThrottled = errors.New("api error RequestLimitExceeded: Request limit exceeded")

func TestVPCCache(t *testing.T) {
	type step struct {
		advance       time.Duration
		natErr        error
		wantErr       bool
		wantVPCCalls  int // cumulative DescribeNatGateways calls
		wantStaleSeen int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "fresh VPC data is reused", steps: []step{
			{wantVPCCalls: 1},
			{advance: 9 * time.Minute, wantVPCCalls: 1},
		}},
		{name: "expired VPC data is refreshed", steps: []step{
			{wantVPCCalls: 1},
			{advance: 11 * time.Minute, wantVPCCalls: 2},
		}},
		{name: "stale VPC data is served while EC2 fails", steps: []step{
			{wantVPCCalls: 1},
			{advance: 11 * time.Minute, natErr: errThrottled, wantVPCCalls: 2, wantStaleSeen: 1},
			{advance: 40 * time.Minute, natErr: errThrottled, wantVPCCalls: 3, wantStaleSeen: 2},
		}},
		{name: "too stale VPC data is an error", steps: []step{
			{wantVPCCalls: 1},
			{advance: 2 * time.Hour, natErr: errThrottled, wantErr: true, wantVPCCalls: 2},
		}},
		{name: "no VPC data at all is an error", steps: []step{
			{natErr: errThrottled, wantErr: true, wantVPCCalls: 1},
			{wantVPCCalls: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := world()
			clk := &clock{t: time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)}
			inv := ec2inventory.New(api, ec2inventory.Options{VPCTTL: 10 * time.Minute, MaxStale: time.Hour, Now: clk.Now})
			for i, s := range tt.steps {
				clk.advance(s.advance)
				api.setErrors(nil, s.natErr, nil)
				got, found, err := inv.Lookup(t.Context(), ctt.InstanceID)
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: err = %v, want error %v", i, err, s.wantErr)
				}
				if err != nil {
					if !errors.Is(err, errThrottled) {
						t.Errorf("step %d: error %v does not wrap the EC2 error", i, err)
					}
				} else if !found || !slices.Equal(got.NATIPs, addrs(ctt.NATIP)) {
					t.Errorf("step %d: found %v NAT %v", i, found, got.NATIPs)
				}
				if _, nats, _ := api.calls(); nats != s.wantVPCCalls {
					t.Errorf("step %d: DescribeNatGateways calls = %d, want %d", i, nats, s.wantVPCCalls)
				}
				if st := inv.Stats(); st.VPCStaleServed != s.wantStaleSeen {
					t.Errorf("step %d: VPCStaleServed = %d, want %d", i, st.VPCStaleServed, s.wantStaleSeen)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*fakeEC2)
		wantInErr string
	}{
		{name: "DescribeInstances fails", setup: func(f *fakeEC2) { f.SetError("DescribeInstances", errThrottled) }, wantInErr: "DescribeInstances"},
		{name: "DescribeNatGateways fails", setup: func(f *fakeEC2) { f.SetError("DescribeNatGateways", errThrottled) }, wantInErr: "DescribeNatGateways"},
		{name: "DescribeVpcEndpoints fails", setup: func(f *fakeEC2) { f.SetError("DescribeVpcEndpoints", errThrottled) }, wantInErr: "DescribeVpcEndpoints"},
		{name: "no output", setup: func(f *fakeEC2) { f.nilOutput = true }, wantInErr: "no output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := world()
			tt.setup(api)
			inv := ec2inventory.New(api, ec2inventory.Options{})
			_, found, err := inv.Lookup(t.Context(), ctt.InstanceID)
			if err == nil || found {
				t.Fatalf("Lookup = found %v, err %v; want an error", found, err)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) || !strings.Contains(err.Error(), "ec2inventory:") {
				t.Errorf("error %q does not say %q with context", err, tt.wantInErr)
			}
			if inv.Stats().Errors != 1 {
				t.Errorf("Stats.Errors = %d, want 1", inv.Stats().Errors)
			}
		})
	}
}

// TestDecisions runs the canonical scenarios through detect with this
// inventory behind the cache, as the Lambda wires them.
func TestDecisions(t *testing.T) {
	tests := []struct {
		scenario ctt.Scenario
		want     detect.VerdictKind
	}{
		{ctt.InstanceFromPublicIP, detect.OK},
		{ctt.InstanceFromElasticIP, detect.OK},
		{ctt.InstanceFromIPv6, detect.OK},
		{ctt.InstanceViaNAT, detect.OK},
		{ctt.InstanceViaOwnEndpoint, detect.OK},
		{ctt.InstanceViaForeignVPCE, detect.BadSource},
		{ctt.StolenFromForeignIP, detect.BadSource},
		{ctt.UnknownInstanceCall, detect.InstanceMissing},
	}
	api := world()
	inv := detect.NewCachedInventory(ec2inventory.New(api, ec2inventory.Options{}), detect.CacheOptions{})
	for _, tt := range tests {
		t.Run(string(tt.scenario), func(t *testing.T) {
			rec, err := cloudtrail.ParseRecord(tt.scenario.JSON())
			if err != nil {
				t.Fatal(err)
			}
			id, _ := detect.IsInstanceSession(&rec)
			inst, found, err := inv.Lookup(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if v := detect.Decide(&rec, inst, found); v.Kind != tt.want {
				t.Errorf("verdict %v (%s), want %v", v.Kind, v.Reason, tt.want)
			}
		})
	}
}

// TestPrefetch checks that a cold cache is filled with one bulk call.
func TestPrefetch(t *testing.T) {
	api := world()
	inv := detect.NewCachedInventory(ec2inventory.New(api, ec2inventory.Options{}), detect.CacheOptions{})
	inv.Prefetch(t.Context(), []string{ctt.InstanceID, ctt.OldInstanceID, ctt.UnknownInstance})
	for _, id := range []string{ctt.InstanceID, ctt.OldInstanceID, ctt.UnknownInstance} {
		if _, _, err := inv.Lookup(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if inst, nats, eps := api.calls(); inst != 1 || nats != 1 || eps != 1 {
		t.Errorf("calls = %d/%d/%d, want 1/1/1", inst, nats, eps)
	}
}

func BenchmarkLookupMany200(b *testing.B) {
	api := newFakeEC2()
	for i := range 200 {
		in := theInstance()
		in.InstanceId = aws.String(fmt.Sprintf("i-0%016x", i))
		api.PutInstance(in)
	}
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-0%016x", i)
	}
	inv := ec2inventory.New(api, ec2inventory.Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inv.LookupMany(context.Background(), ids); err != nil {
			b.Fatal(err)
		}
	}
}
