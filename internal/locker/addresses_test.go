package locker

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, ok := lockpolicy.PublicPrefix(s)
		if !ok {
			t.Fatalf("test address %q is not public", s)
		}
		out = append(out, p)
	}
	return out
}

func TestInstanceFromEC2(t *testing.T) {
	profile := profileARN("/defenders/", "web")
	tests := []struct {
		name      string
		in        ec2types.Instance
		wantAddrs []string
		wantVPC   string
	}{
		{name: "a running instance contributes its public IPv4",
			in:        instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA, publicIP("203.0.113.10")),
			wantAddrs: []string{"203.0.113.10/32"}, wantVPC: vpcA},
		{name: "an Elastic IP on a secondary interface is collected",
			in:        instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA, publicIP("203.0.113.10"), eni("198.51.100.5", "")),
			wantAddrs: []string{"198.51.100.5/32", "203.0.113.10/32"}, wantVPC: vpcA},
		{name: "an Elastic IP on a secondary private address is collected",
			in:        instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA, eni("", "198.51.100.6")),
			wantAddrs: []string{"198.51.100.6/32"}, wantVPC: vpcA},
		{name: "IPv6 addresses and delegated prefixes of every interface are collected",
			in: instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA,
				eni("", "", "2001:db8:1234::10", "2001:db8:1234:0:1::/80")),
			wantAddrs: []string{"2001:db8:1234::10/128", "2001:db8:1234:0:1::/80"}, wantVPC: vpcA},
		{name: "the primary IPv6 address field is collected",
			in: func() ec2types.Instance {
				in := instance("i-0aaaaaaaaaaaaaaa1", "pending", profile, vpcA)
				in.Ipv6Address = aws.String("2001:db8:1234::11")
				return in
			}(),
			wantAddrs: []string{"2001:db8:1234::11/128"}, wantVPC: vpcA},
		{name: "a stopped instance contributes its VPC but no address",
			in:      instance("i-0aaaaaaaaaaaaaaa1", "stopped", profile, vpcB, publicIP("203.0.113.10"), eni("198.51.100.5", "", "2001:db8::5")),
			wantVPC: vpcB},
		{name: "a stopping instance still contributes its addresses",
			in:        instance("i-0aaaaaaaaaaaaaaa1", "stopping", profile, vpcA, publicIP("203.0.113.10")),
			wantAddrs: []string{"203.0.113.10/32"}, wantVPC: vpcA},
		{name: "private, unique local, link-local and malformed addresses are dropped",
			in: instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA,
				eni("10.0.0.5", "not-an-ip", "fd00::1", "fe80::1", "2001:db8::7")),
			wantAddrs: []string{"2001:db8::7/128"}, wantVPC: vpcA},
		{name: "an address reported in several places is listed once",
			in:        instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA, publicIP("203.0.113.10"), eni("203.0.113.10", "203.0.113.10")),
			wantAddrs: []string{"203.0.113.10/32"}, wantVPC: vpcA},
		{name: "the VPC comes from an interface when the instance has none",
			in: func() ec2types.Instance {
				in := instance("i-0aaaaaaaaaaaaaaa1", "running", profile, vpcA, publicIP("203.0.113.10"))
				in.VpcId = nil
				return in
			}(),
			wantAddrs: []string{"203.0.113.10/32"}, wantVPC: vpcA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InstanceFromEC2(tt.in)
			if s := prefixStrings(got.Addresses); !slices.Equal(s, tt.wantAddrs) && (len(s) > 0 || len(tt.wantAddrs) > 0) {
				t.Errorf("addresses = %q, want %q", s, tt.wantAddrs)
			}
			if got.VPC != tt.wantVPC {
				t.Errorf("VPC = %q, want %q", got.VPC, tt.wantVPC)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	tests := []struct {
		name  string
		in    []string
		level AggregationLevel
		want  []string
	}{
		{name: "addresses sharing a /24 merge into it",
			in: []string{"203.0.113.1", "203.0.113.77", "203.0.113.200"}, level: AggregationLevel{24, 64},
			want: []string{"203.0.113.0/24"}},
		{name: "an address alone in its network is not widened",
			in: []string{"203.0.113.1", "203.0.113.2", "198.51.100.9"}, level: AggregationLevel{24, 64},
			want: []string{"198.51.100.9/32", "203.0.113.0/24"}},
		{name: "IPv6 addresses sharing a /64 merge into it",
			in: []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:9::1"}, level: AggregationLevel{24, 64},
			want: []string{"2001:db8:1:2::/64", "2001:db8:9::1/128"}},
		{name: "no level is coarser than /16 and /48 even when asked",
			in: []string{"3.1.0.1", "3.2.0.1", "2001:db8:1::1", "2001:db8:2::1"}, level: AggregationLevel{8, 32},
			want: []string{"3.1.0.1/32", "3.2.0.1/32", "2001:db8:1::1/128", "2001:db8:2::1/128"}},
		{name: "a prefix already covering others absorbs them",
			in: []string{"2001:db8:1:2::/64", "2001:db8:1:2::5"}, level: AggregationLevel{24, 64},
			want: []string{"2001:db8:1:2::/64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := prefixStrings(Aggregate(prefixes(t, tt.in...), tt.level))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Aggregate = %q, want %q", got, tt.want)
			}
		})
	}
}
