package lambdatest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// network is an EC2 with three route tables of one VPC (the main one, and
// two associated with a subnet each), two NAT gateways and two Elastic
// IPs, one of them associated.
func network() *EC2 {
	f := &EC2{}
	rt := func(id string, main bool, subnet, nat string) ec2types.RouteTable {
		t := ec2types.RouteTable{RouteTableId: aws.String(id), VpcId: aws.String("vpc-0a"), OwnerId: aws.String(Account),
			Routes: []ec2types.Route{{DestinationCidrBlock: aws.String("10.0.0.0/16"), GatewayId: aws.String("local"), State: ec2types.RouteStateActive, Origin: ec2types.RouteOriginCreateRouteTable}}}
		if nat != "" {
			t.Routes = append(t.Routes, ec2types.Route{DestinationCidrBlock: aws.String("0.0.0.0/0"), NatGatewayId: aws.String(nat), State: ec2types.RouteStateActive, Origin: ec2types.RouteOriginCreateRoute})
		}
		a := ec2types.RouteTableAssociation{Main: aws.Bool(main), RouteTableId: aws.String(id), RouteTableAssociationId: aws.String("rtbassoc-" + id[4:]),
			AssociationState: &ec2types.RouteTableAssociationState{State: ec2types.RouteTableAssociationStateCodeAssociated}}
		if subnet != "" {
			a.SubnetId = aws.String(subnet)
		}
		t.Associations = []ec2types.RouteTableAssociation{a}
		return t
	}
	f.PutRouteTable(rt("rtb-01", true, "", ""))
	f.PutRouteTable(rt("rtb-02", false, "subnet-0a", "nat-01"))
	f.PutRouteTable(rt("rtb-03", false, "subnet-0b", "nat-02"))
	for _, n := range []struct{ id, ip string }{{"nat-01", "198.51.100.1"}, {"nat-02", "198.51.100.2"}} {
		f.AddNatGateway(ec2types.NatGateway{NatGatewayId: aws.String(n.id), VpcId: aws.String("vpc-0a"), SubnetId: aws.String("subnet-0p"),
			State: ec2types.NatGatewayStateAvailable, ConnectivityType: ec2types.ConnectivityTypePublic,
			NatGatewayAddresses: []ec2types.NatGatewayAddress{{AllocationId: aws.String("eipalloc-" + n.id[4:]), PublicIp: aws.String(n.ip),
				PrivateIp: aws.String("10.0.0.1"), NetworkInterfaceId: aws.String("eni-" + n.id[4:]), Status: ec2types.NatGatewayAddressStatusSucceeded}}})
	}
	f.PutAddress(ec2types.Address{AllocationId: aws.String("eipalloc-0a"), AssociationId: aws.String("eipassoc-0a"), PublicIp: aws.String("203.0.113.5"),
		InstanceId: aws.String("i-01"), NetworkInterfaceId: aws.String("eni-1"), PrivateIpAddress: aws.String("10.0.1.10"), Domain: ec2types.DomainTypeVpc})
	f.PutAddress(ec2types.Address{AllocationId: aws.String("eipalloc-0b"), PublicIp: aws.String("203.0.113.6"), Domain: ec2types.DomainTypeVpc})
	return f
}

type networkAPI interface {
	DescribeRouteTables(context.Context, *ec2.DescribeRouteTablesInput, ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
	DescribeNatGateways(context.Context, *ec2.DescribeNatGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error)
	DescribeAddresses(context.Context, *ec2.DescribeAddressesInput, ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
}

func wireNetwork(t *testing.T, f *EC2) *ec2.Client {
	svc := NewService(t, "ec2", ProtocolEC2, NamespaceEC2)
	svc.Handle("DescribeRouteTables", f.HandleDescribeRouteTables)
	svc.Handle("DescribeNatGateways", f.HandleDescribeNatGateways)
	svc.Handle("DescribeAddresses", f.HandleDescribeAddresses)
	return wireEC2With(t, svc)
}

func filter(name string, values ...string) []ec2types.Filter {
	return []ec2types.Filter{{Name: aws.String(name), Values: values}}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// TestEC2NetworkAnswersLikeEC2 checks both front ends of route tables, NAT
// gateways and Elastic IPs: the filters the locker uses, paging, and EC2's
// errors for unknown ids.
func TestEC2NetworkAnswersLikeEC2(t *testing.T) {
	f := network()
	f.SetOperationPageSize("DescribeRouteTables", 2)
	for name, api := range map[string]networkAPI{"in process": f, "over the wire": wireNetwork(t, f)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("route tables page through a VPC's tables", func(t *testing.T) {
				var got []ec2types.RouteTable
				pages := 0
				p := ec2.NewDescribeRouteTablesPaginator(api, &ec2.DescribeRouteTablesInput{Filters: filter("vpc-id", "vpc-0a"), MaxResults: aws.Int32(100)})
				for p.HasMorePages() {
					out, err := p.NextPage(ctx)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					got = append(got, out.RouteTables...)
				}
				if pages != 2 || len(got) != 3 {
					t.Fatalf("%d tables in %d pages, want 3 in 2", len(got), pages)
				}
				if want := network().routes[1]; !reflect.DeepEqual(got[1], want) {
					t.Errorf("table\n got %+v\nwant %+v", got[1], want)
				}
			})
			t.Run("route tables filter by subnet association and by main", func(t *testing.T) {
				for _, tt := range []struct {
					f    []ec2types.Filter
					want string
				}{{filter("association.subnet-id", "subnet-0b"), "rtb-03"}, {filter("association.main", "true"), "rtb-01"}} {
					out, err := api.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: tt.f})
					if err != nil || len(out.RouteTables) != 1 || aws.ToString(out.RouteTables[0].RouteTableId) != tt.want {
						t.Errorf("%v: %+v, %v; want %s", tt.f, out, err, tt.want)
					}
				}
			})
			t.Run("route tables refuse unknown ids, bad page sizes and unknown filters", func(t *testing.T) {
				_, err := api.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-09"}})
				wantCode(t, "unknown id", err, "InvalidRouteTableID.NotFound")
				_, err = api.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{MaxResults: aws.Int32(101)})
				wantCode(t, "MaxResults 101", err, "InvalidParameterValue")
				_, err = api.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: filter("tag:Name", "x")})
				wantCode(t, "unknown filter", err, "InvalidParameterValue")
			})
			t.Run("NAT gateways answer their public addresses; an unknown id is an error by id and nothing by filter", func(t *testing.T) {
				out, err := api.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{Filter: filter("nat-gateway-id", "nat-02", "nat-09"), MaxResults: aws.Int32(1000)})
				if err != nil || len(out.NatGateways) != 1 || aws.ToString(out.NatGateways[0].NatGatewayAddresses[0].PublicIp) != "198.51.100.2" {
					t.Errorf("%+v, %v", out, err)
				}
				_, err = api.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{NatGatewayIds: []string{"nat-09"}})
				wantCode(t, "unknown id", err, "NatGatewayNotFound")
			})
			t.Run("Elastic IPs are found by allocation, association and address; unknown ids are errors, filters answer nothing", func(t *testing.T) {
				for _, in := range []*ec2.DescribeAddressesInput{
					{Filters: filter("allocation-id", "eipalloc-0a")},
					{Filters: filter("association-id", "eipassoc-0a")},
					{Filters: filter("public-ip", "203.0.113.5")},
					{AllocationIds: []string{"eipalloc-0a"}},
				} {
					out, err := api.DescribeAddresses(ctx, in)
					if err != nil || len(out.Addresses) != 1 || aws.ToString(out.Addresses[0].InstanceId) != "i-01" {
						t.Errorf("%+v: %+v, %v", in, out, err)
					}
				}
				out, err := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: filter("association-id", "eipassoc-09")})
				if err != nil || len(out.Addresses) != 0 {
					t.Errorf("a gone association: %+v, %v", out, err)
				}
				_, err = api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{"eipalloc-09"}})
				wantCode(t, "unknown allocation", err, "InvalidAllocationID.NotFound")
				_, err = api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{"192.0.2.1"}})
				wantCode(t, "unknown address", err, "InvalidAddress.NotFound")
			})
		})
	}
}

func TestDescribeInstancesFindsAnInstanceByItsNetworkInterface(t *testing.T) {
	f := &EC2{}
	in := richInstance("i-01")
	in.NetworkInterfaces[0].Attachment = &ec2types.InstanceNetworkInterfaceAttachment{AttachmentId: aws.String("eni-attach-1"), DeviceIndex: aws.Int32(0)}
	f.PutInstance(in)
	f.PutInstance(richInstance("i-02"))
	for name, api := range map[string]interface {
		DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	}{"in process": f, "over the wire": wireEC2(t, f)} {
		t.Run(name, func(t *testing.T) {
			for _, flt := range [][]ec2types.Filter{filter("network-interface.network-interface-id", "eni-2"), filter("network-interface.attachment.attachment-id", "eni-attach-1")} {
				out, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: flt})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, r := range out.Reservations {
					n += len(r.Instances)
				}
				if want := map[string]int{"eni-2": 2, "eni-attach-1": 1}[flt[0].Values[0]]; n != want {
					t.Errorf("%v: %d instances, want %d", flt, n, want)
				}
			}
		})
	}
}
