package ec2inventory

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/locker"
)

// Instances whose addresses the detector and the locker must read alike.
var addressCases = []struct {
	name string
	in   types.Instance
}{
	{name: "a public IPv4 and an Elastic IP on a secondary interface", in: running(
		func(in *types.Instance) { in.PublicIpAddress = aws.String("203.0.113.10") },
		eni(types.InstanceNetworkInterface{Association: &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("198.51.100.5")}}))},
	{name: "an Elastic IP on a secondary private address", in: running(eni(types.InstanceNetworkInterface{
		PrivateIpAddresses: []types.InstancePrivateIpAddress{{PrivateIpAddress: aws.String("10.0.1.41"),
			Association: &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("198.51.100.6")}}}}))},
	{name: "IPv6 addresses and a delegated IPv6 prefix", in: running(
		func(in *types.Instance) { in.Ipv6Address = aws.String("2001:db8:1234::11") },
		eni(types.InstanceNetworkInterface{
			Ipv6Addresses: []types.InstanceIpv6Address{{Ipv6Address: aws.String("2001:db8:1234::10")}},
			Ipv6Prefixes:  []types.InstanceIpv6Prefix{{Ipv6Prefix: aws.String("2001:db8:1234:0:1::/80")}},
			Ipv4Prefixes:  []types.InstanceIpv4Prefix{{Ipv4Prefix: aws.String("10.0.1.48/28")}},
		}))},
	{name: "a carrier (Wavelength) address", in: running(eni(types.InstanceNetworkInterface{
		Association: &types.InstanceNetworkInterfaceAssociation{CarrierIp: aws.String("155.146.1.10")}}))},
	{name: "a customer-owned (Outposts) address", in: running(eni(types.InstanceNetworkInterface{
		PrivateIpAddresses: []types.InstancePrivateIpAddress{{PrivateIpAddress: aws.String("10.0.1.42"),
			Association: &types.InstanceNetworkInterfaceAssociation{CustomerOwnedIp: aws.String("192.0.2.44")}}}}))},
	{name: "private, shared-space and link-local values in public fields", in: running(
		func(in *types.Instance) { in.PublicIpAddress = aws.String("100.64.0.7") },
		eni(types.InstanceNetworkInterface{
			Association:   &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("10.0.0.5")},
			Ipv6Addresses: []types.InstanceIpv6Address{{Ipv6Address: aws.String("fe80::1")}, {Ipv6Address: aws.String("2001:db8::7")}},
		}))},
}

func running(opts ...func(*types.Instance)) types.Instance {
	in := types.Instance{
		InstanceId:       aws.String("i-0aaaaaaaaaaaaaaa1"),
		VpcId:            aws.String("vpc-0123456789abcdef0"),
		PrivateIpAddress: aws.String("10.0.1.23"),
		State:            &types.InstanceState{Name: types.InstanceStateNameRunning},
	}
	for _, o := range opts {
		o(&in)
	}
	return in
}

func eni(ni types.InstanceNetworkInterface) func(*types.Instance) {
	return func(in *types.Instance) { in.NetworkInterfaces = append(in.NetworkInterfaces, ni) }
}

// TestDetectorAcceptsWhatTheLockAdmits checks that the detector's inventory
// and the locker read the same public addresses out of an instance: the
// detector accepts a call over the internet from exactly the addresses the
// instance role's lock lets through.
func TestDetectorAcceptsWhatTheLockAdmits(t *testing.T) {
	for _, tt := range addressCases {
		t.Run(tt.name, func(t *testing.T) {
			lock := locker.InstanceFromEC2(tt.in).Addresses
			got := convert(&tt.in)
			var seen []netip.Prefix
			for _, a := range got.PublicIPs {
				seen = append(seen, netip.PrefixFrom(a, a.BitLen()))
			}
			seen = append(seen, got.PublicPrefixes...)
			slices.SortFunc(seen, func(a, b netip.Prefix) int {
				if c := a.Addr().Compare(b.Addr()); c != 0 {
					return c
				}
				return a.Bits() - b.Bits()
			})
			if !slices.Equal(seen, lock) {
				t.Errorf("detector's public addresses %v, the lock's %v", seen, lock)
			}
		})
	}
}

// TestCarrierAndCustomerOwnedAddressesAreNotTheInstances checks the
// decision above end to end: a call from an instance's carrier or
// customer-owned address is denied by its lock, so the detector reports
// it instead of accepting it.
func TestCarrierAndCustomerOwnedAddressesAreNotTheInstances(t *testing.T) {
	for _, src := range []string{"155.146.1.10", "192.0.2.44"} {
		in := running(eni(types.InstanceNetworkInterface{Association: &types.InstanceNetworkInterfaceAssociation{
			CarrierIp: aws.String("155.146.1.10"), CustomerOwnedIp: aws.String("192.0.2.44")}}))
		inst := convert(&in)
		if slices.Contains(inst.PublicIPs, netip.MustParseAddr(src)) {
			t.Errorf("%s is listed as a public address of the instance: %v", src, inst.PublicIPs)
		}
		rec := &cloudtrail.Record{SourceIPAddress: src}
		if v := detect.Decide(rec, inst, true); v.Kind != detect.BadSource {
			t.Errorf("a call from %s: verdict %v (%s), want BadSource", src, v.Kind, v.Reason)
		}
	}
}

// TestPublicDelegatedPrefixIsTheInstances checks that a call from inside a
// public IPv6 prefix delegated to the instance, which the lock admits, is
// accepted, while the prefix still counts as the instance's own behind a
// VPC endpoint.
func TestPublicDelegatedPrefixIsTheInstances(t *testing.T) {
	in := addressCases[2].in
	inst := convert(&in)
	src := "2001:db8:1234:0:1::42"
	if v := detect.Decide(&cloudtrail.Record{SourceIPAddress: src}, inst, true); v.Kind != detect.OK {
		t.Errorf("a call from %s: verdict %v (%s), want OK", src, v.Kind, v.Reason)
	}
	if !inst.HasPrivateIP(netip.MustParseAddr(src)) || !inst.HasPrivateIP(netip.MustParseAddr("10.0.1.50")) {
		t.Errorf("delegated prefixes are not the instance's private addresses: %v", inst.PrivatePrefixes)
	}
}
