package lambdatest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// regionalEC2 is an SDK EC2 client for region, pointed at the Cloud as
// AWS_ENDPOINT_URL_EC2 would point it, with SDK retries off.
func regionalEC2(c *Cloud, region string) *ec2.Client {
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(FakeAccessKeyID, FakeSecretAccessKey, FakeSessionToken),
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(c.EC2.URL), 1 })
}

func TestCloudAnswersPerRegion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := NewCloud(t)
	c.PutInstance(Instance{ID: "i-0aaaaaaaaaaaaaaa1", State: "running", VPC: "vpc-0a", PrivateIP: "10.0.0.1", PublicIP: "198.51.100.1"})
	c.PutInstance(Instance{ID: "i-0bbbbbbbbbbbbbbb2", State: "running", VPC: "vpc-0b", PrivateIP: "10.1.0.1", PublicIP: "198.51.100.2", Region: "eu-west-1"})
	byFilter := func(region, id string) []string {
		t.Helper()
		out, err := regionalEC2(c, region).DescribeInstances(ctx, &ec2.DescribeInstancesInput{
			Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}},
		})
		if err != nil {
			t.Fatalf("DescribeInstances in %s: %v", region, err)
		}
		var ids []string
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
		return ids
	}

	tests := []struct {
		name   string
		region string
		id     string
		want   []string
	}{
		{"an instance of the default region is found there", Region, "i-0aaaaaaaaaaaaaaa1", []string{"i-0aaaaaaaaaaaaaaa1"}},
		{"an instance of the default region is unknown in another region", "eu-west-1", "i-0aaaaaaaaaaaaaaa1", nil},
		{"an instance of eu-west-1 is found there", "eu-west-1", "i-0bbbbbbbbbbbbbbb2", []string{"i-0bbbbbbbbbbbbbbb2"}},
		{"an instance of eu-west-1 is unknown in the default region", Region, "i-0bbbbbbbbbbbbbbb2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := byFilter(tt.region, tt.id); !slices.Equal(got, tt.want) {
				t.Errorf("instances %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("InstanceIds of another region's instance is InvalidInstanceID.NotFound", func(t *testing.T) {
		_, err := regionalEC2(c, Region).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0bbbbbbbbbbbbbbb2"}})
		if apiCode(err) != "InvalidInstanceID.NotFound" {
			t.Errorf("error %v, want InvalidInstanceID.NotFound", err)
		}
		out, err := regionalEC2(c, "eu-west-1").DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0bbbbbbbbbbbbbbb2"}})
		if err != nil || len(out.Reservations) != 1 {
			t.Errorf("in its own region: %v, %v", out, err)
		}
	})
	t.Run("a region the account has not enabled refuses the call", func(t *testing.T) {
		_, err := regionalEC2(c, "me-south-1").DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if apiCode(err) != "AuthFailure" {
			t.Errorf("error %v, want AuthFailure", err)
		}
	})
	t.Run("a failed region answers its error while the others answer", func(t *testing.T) {
		c.FailRegion("eu-west-1", c.EC2.Throttle())
		defer c.FailRegion("eu-west-1", nil)
		_, err := regionalEC2(c, "eu-west-1").DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if apiCode(err) != "RequestLimitExceeded" {
			t.Errorf("error %v, want RequestLimitExceeded", err)
		}
		if got := byFilter(Region, "i-0aaaaaaaaaaaaaaa1"); len(got) != 1 {
			t.Errorf("the default region answered %v", got)
		}
	})
	t.Run("every call records the region it was signed for", func(t *testing.T) {
		var regions []string
		for _, call := range c.EC2.Calls("DescribeInstances") {
			regions = append(regions, call.Region)
		}
		for _, want := range []string{Region, "eu-west-1", "me-south-1"} {
			if !slices.Contains(regions, want) {
				t.Errorf("call regions %v lack %s", regions, want)
			}
		}
	})
}

func TestCloudDescribeRegions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := func(out *ec2.DescribeRegionsOutput) (enabled, notOptedIn []string) {
		for _, r := range out.Regions {
			if aws.ToString(r.OptInStatus) == "not-opted-in" {
				notOptedIn = append(notOptedIn, aws.ToString(r.RegionName))
			} else {
				enabled = append(enabled, aws.ToString(r.RegionName))
			}
			if aws.ToString(r.Endpoint) != "ec2."+aws.ToString(r.RegionName)+".amazonaws.com" {
				t.Errorf("endpoint %q of %s", aws.ToString(r.Endpoint), aws.ToString(r.RegionName))
			}
		}
		return enabled, notOptedIn
	}
	tests := []struct {
		name           string
		set            []string // SetRegions; nil: the default
		in             ec2.DescribeRegionsInput
		wantEnabled    []string
		wantNotOptedIn int
	}{
		{"the default regions are listed", nil, ec2.DescribeRegionsInput{}, DefaultRegions, 0},
		{"AllRegions adds the opt-in regions not opted in", nil, ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)}, DefaultRegions, len(OptInRegions)},
		{"SetRegions decides which regions are enabled", []string{"us-east-1", "eu-west-1", "af-south-1"}, ec2.DescribeRegionsInput{},
			[]string{"af-south-1", "eu-west-1", "us-east-1"}, 0},
		{"RegionNames narrows the answer", nil, ec2.DescribeRegionsInput{RegionNames: []string{"eu-west-1"}}, []string{"eu-west-1"}, 0},
		{"a region-name filter narrows the answer", nil, ec2.DescribeRegionsInput{
			Filters: []ec2types.Filter{{Name: aws.String("region-name"), Values: []string{"us-west-2", "sa-east-1"}}}},
			[]string{"sa-east-1", "us-west-2"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCloud(t)
			if tt.set != nil {
				c.SetRegions(tt.set...)
			}
			began := time.Now()
			out, err := regionalEC2(c, Region).DescribeRegions(ctx, &tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(began); d < DefaultAnswerDelay {
				t.Errorf("answered in %v, before the answer delay", d)
			}
			enabled, notOptedIn := names(out)
			want := slices.Sorted(slices.Values(tt.wantEnabled))
			if !slices.Equal(enabled, want) || len(notOptedIn) != tt.wantNotOptedIn {
				t.Errorf("enabled %v and %d not opted in, want %v and %d", enabled, len(notOptedIn), want, tt.wantNotOptedIn)
			}
		})
	}
	t.Run("an unknown region name is an error", func(t *testing.T) {
		_, err := regionalEC2(NewCloud(t), Region).DescribeRegions(ctx, &ec2.DescribeRegionsInput{RegionNames: []string{"xx-nowhere-1"}})
		if apiCode(err) != "InvalidParameterValue" {
			t.Errorf("error %v, want InvalidParameterValue", err)
		}
	})
}

func TestSigningRegion(t *testing.T) {
	tests := []struct {
		name, auth, want string
	}{
		{"the region of a SigV4 credential scope",
			"AWS4-HMAC-SHA256 Credential=ASIALAMBDATEST000001/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
			"eu-west-1"},
		{"no credential", "Bearer token", ""},
		{"a truncated scope", "AWS4-HMAC-SHA256 Credential=AKID/20260101", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := signingRegion(tt.auth); got != tt.want {
				t.Errorf("signingRegion = %q, want %q", got, tt.want)
			}
		})
	}
}
