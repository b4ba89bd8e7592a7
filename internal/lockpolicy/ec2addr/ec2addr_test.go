package ec2addr

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestOf(t *testing.T) {
	in := ec2types.Instance{
		VpcId:            nil,
		PublicIpAddress:  aws.String("203.0.113.10"),
		Ipv6Address:      aws.String("2001:db8::11"),
		PrivateIpAddress: aws.String("10.0.1.23"),
		State:            &ec2types.InstanceState{Name: ec2types.InstanceStateNameStopped},
		NetworkInterfaces: []ec2types.InstanceNetworkInterface{{
			VpcId:            aws.String("vpc-0123456789abcdef0"),
			PrivateIpAddress: aws.String("10.0.1.23"),
			Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("203.0.113.10"),
				CarrierIp: aws.String("155.146.1.10"), CustomerOwnedIp: aws.String("192.0.2.44")},
			PrivateIpAddresses: []ec2types.InstancePrivateIpAddress{
				{PrivateIpAddress: aws.String("10.0.1.23")},
				{PrivateIpAddress: aws.String("10.0.1.41"), Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("198.51.100.6")}},
			},
			Ipv6Addresses: []ec2types.InstanceIpv6Address{{Ipv6Address: aws.String("fd00::1")}, {Ipv6Address: aws.String("not-an-ip")}},
			Ipv4Prefixes:  []ec2types.InstanceIpv4Prefix{{Ipv4Prefix: aws.String("10.0.1.48/28")}},
			Ipv6Prefixes:  []ec2types.InstanceIpv6Prefix{{Ipv6Prefix: aws.String("2001:db8:1:2:a::/80")}, {Ipv6Prefix: aws.String("fd00:1::/80")}},
		}},
	}
	got := Of(in)
	want := "{VPC:vpc-0123456789abcdef0 Public:[203.0.113.10 2001:db8::11 198.51.100.6] PublicPrefixes:[2001:db8:1:2:a::/80] " +
		"Private:[10.0.1.23 10.0.1.41] DelegatedPrefixes:[10.0.1.48/28 2001:db8:1:2:a::/80 fd00:1::/80]}"
	if s := fmt.Sprintf("%+v", got); s != want {
		t.Errorf("Of =\n%s\nwant\n%s", s, want)
	}
	if s := fmt.Sprint(got.SourcePrefixes()); s != "[203.0.113.10/32 2001:db8::11/128 198.51.100.6/32 2001:db8:1:2:a::/80]" {
		t.Errorf("SourcePrefixes = %s", s)
	}
}
