package lambdatest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// richInstance has every address an instance can have: two interfaces,
// an Elastic IP on a secondary private address, a carrier IP, IPv6
// addresses and delegated prefixes.
func richInstance(id string) ec2types.Instance {
	return ec2types.Instance{
		InstanceId:         aws.String(id),
		State:              &ec2types.InstanceState{Code: aws.Int32(16), Name: ec2types.InstanceStateNameRunning},
		InstanceType:       ec2types.InstanceTypeT4gMicro,
		LaunchTime:         aws.Time(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		VpcId:              aws.String("vpc-0a"),
		SubnetId:           aws.String("subnet-0a"),
		PrivateIpAddress:   aws.String("10.0.1.10"),
		PublicIpAddress:    aws.String("198.51.100.10"),
		Ipv6Address:        aws.String("2001:db8::10"),
		IamInstanceProfile: &ec2types.IamInstanceProfile{Arn: aws.String(InstanceProfileARN("/", "web")), Id: aws.String("AIPAWEB")},
		NetworkInterfaces: []ec2types.InstanceNetworkInterface{
			{
				NetworkInterfaceId: aws.String("eni-1"), VpcId: aws.String("vpc-0a"), Status: ec2types.NetworkInterfaceStatusInUse,
				Association:      &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("198.51.100.10"), IpOwnerId: aws.String("amazon")},
				PrivateIpAddress: aws.String("10.0.1.10"),
				PrivateIpAddresses: []ec2types.InstancePrivateIpAddress{{PrivateIpAddress: aws.String("10.0.1.10"), Primary: aws.Bool(true),
					Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("198.51.100.10"), IpOwnerId: aws.String("amazon")}}},
				Ipv6Addresses: []ec2types.InstanceIpv6Address{{Ipv6Address: aws.String("2001:db8::10")}},
			},
			{
				NetworkInterfaceId: aws.String("eni-2"), VpcId: aws.String("vpc-0a"),
				Association: &ec2types.InstanceNetworkInterfaceAssociation{CarrierIp: aws.String("155.146.0.1"), CustomerOwnedIp: aws.String("100.64.0.1")},
				PrivateIpAddresses: []ec2types.InstancePrivateIpAddress{
					{PrivateIpAddress: aws.String("10.0.1.11"), Primary: aws.Bool(true)},
					{PrivateIpAddress: aws.String("10.0.1.12"), Primary: aws.Bool(false),
						Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String("198.51.100.20"), IpOwnerId: aws.String(Account)}},
				},
				Ipv4Prefixes: []ec2types.InstanceIpv4Prefix{{Ipv4Prefix: aws.String("10.0.1.48/28")}},
				Ipv6Prefixes: []ec2types.InstanceIpv6Prefix{{Ipv6Prefix: aws.String("2001:db8:1::/80")}},
			},
		},
	}
}

// wireEC2 serves f over HTTP and returns an SDK client of it.
func wireEC2(t *testing.T, f *EC2) *ec2.Client {
	svc := NewService(t, "ec2", ProtocolEC2, NamespaceEC2)
	svc.Handle("DescribeInstances", f.HandleDescribeInstances)
	return wireEC2With(t, svc)
}

// wireEC2With returns an SDK client of an EC2 Service.
func wireEC2With(t *testing.T, svc *Service) *ec2.Client {
	cfg := aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider(FakeAccessKeyID, FakeSecretAccessKey, FakeSessionToken)}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(svc.URL), 1 })
}

// TestEC2AnswersTheSameInProcessAndOverTheWire checks that both front ends
// of the one EC2 fake answer the same instances, pages and errors.
func TestEC2AnswersTheSameInProcessAndOverTheWire(t *testing.T) {
	f := &EC2{}
	for _, id := range []string{"i-01", "i-02", "i-03"} {
		f.PutInstance(richInstance(id))
	}
	f.SetPageSize(2)
	type describer interface {
		DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	}
	for name, api := range map[string]describer{"in process": f, "over the wire": wireEC2(t, f)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var got []ec2types.Instance
			pages := 0
			p := ec2.NewDescribeInstancesPaginator(api, &ec2.DescribeInstancesInput{
				Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}},
			})
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, r := range out.Reservations {
					got = append(got, r.Instances...)
				}
			}
			if pages != 2 || len(got) != 3 {
				t.Fatalf("%d instances in %d pages, want 3 in 2", len(got), pages)
			}
			if want := richInstance("i-02"); !reflect.DeepEqual(got[1], want) {
				t.Errorf("instance\n got %+v\nwant %+v", got[1], want)
			}
			for _, tt := range []struct {
				in   *ec2.DescribeInstancesInput
				code string
			}{
				{&ec2.DescribeInstancesInput{InstanceIds: []string{"i-01", "i-09"}}, "InvalidInstanceID.NotFound"},
				{&ec2.DescribeInstancesInput{InstanceIds: []string{"i-01"}, MaxResults: aws.Int32(5)}, "InvalidParameterCombination"},
				{&ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:Name"), Values: []string{"x"}}}}, "InvalidParameterValue"},
			} {
				_, err := api.DescribeInstances(ctx, tt.in)
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
					t.Errorf("DescribeInstances(%+v): %v, want %s", tt.in, err, tt.code)
				}
			}
		})
	}
	if n := f.Calls("DescribeInstances"); n != 10 {
		t.Errorf("%d calls recorded, want 10", n)
	}
}
