package ec2inventory_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// regionsAPI is an EC2 whose DescribeRegions answers regions.
func regionsAPI(regions ...types.Region) *fakeEC2 {
	f := newFakeEC2()
	f.SetRegions(regions...)
	return f
}

func region(name, optIn string) types.Region {
	return types.Region{RegionName: aws.String(name), Endpoint: aws.String("ec2." + name + ".amazonaws.com"), OptInStatus: aws.String(optIn)}
}

func TestEnabledRegions(t *testing.T) {
	errThrottled := errors.New("RequestLimitExceeded: Request limit exceeded.")
	tests := []struct {
		name    string
		api     *fakeEC2
		want    []string
		wantErr error
	}{
		{"the enabled regions are listed sorted", regionsAPI([]types.Region{
			region("us-west-2", "opt-in-not-required"), region("eu-west-1", "opt-in-not-required"),
			region("af-south-1", "opted-in"), region("us-east-1", "opt-in-not-required"),
		}...), []string{"af-south-1", "eu-west-1", "us-east-1", "us-west-2"}, nil},
		{"regions that are not opted in are left out", regionsAPI([]types.Region{
			region("eu-west-1", "opt-in-not-required"), region("me-south-1", "not-opted-in"),
		}...), []string{"eu-west-1"}, nil},
		{"a failed call is an error", func() *fakeEC2 { f := newFakeEC2(); f.SetError("DescribeRegions", errThrottled); return f }(), nil, errThrottled},
		{"an answer without regions is an error", newFakeEC2(), nil, nil},
		{"a call without output is an error", &fakeEC2{EC2: &lambdatest.EC2{}, nilOutput: true}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ec2inventory.EnabledRegions(t.Context(), tt.api, 0)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("regions %v, want an error", got)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v does not wrap %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("regions %v, %v; want %v", got, err, tt.want)
			}
			if calls := tt.api.DescribeRegionsInputs(); len(calls) != 1 || calls[0].AllRegions != nil {
				t.Errorf("calls %+v, want one without AllRegions", calls)
			}
		})
	}
}

// TestInventoryReportsItsRegion checks that instances carry the region of
// the inventory that found them.
func TestInventoryReportsItsRegion(t *testing.T) {
	inv := ec2inventory.New(world(), ec2inventory.Options{Region: "eu-west-1"})
	inst, found, err := inv.Lookup(t.Context(), ctt.InstanceID)
	if err != nil || !found || inst.Region != "eu-west-1" {
		t.Errorf("Lookup = %+v, %v, %v; want the instance in eu-west-1", inst, found, err)
	}
}

// TestCrossRegionDecisions wires the inventories as the detector does, one
// EC2 API per region, and checks that an instance that lives in another
// region than the detector is judged against that region's addresses, NAT
// gateways and endpoints.
func TestCrossRegionDecisions(t *testing.T) {
	const home, away = "us-east-1", "eu-west-1"
	apis := map[string]*fakeEC2{
		home:         newFakeEC2(),
		away:         world(),
		"us-west-2":  newFakeEC2(),
		"ap-south-1": newFakeEC2(),
	}
	regions := regionsAPI([]types.Region{
		region(home, "opt-in-not-required"), region(away, "opt-in-not-required"),
		region("us-west-2", "opt-in-not-required"), region("ap-south-1", "opt-in-not-required"),
	}...)
	inventory := func(r string) detect.Inventory {
		return detect.NewCachedInventory(ec2inventory.New(apis[r], ec2inventory.Options{Region: r}), detect.CacheOptions{})
	}
	inv := detect.NewMultiRegionInventory(inventory(home), detect.RegionOptions{
		HomeRegion: home,
		Regions:    func(ctx context.Context) ([]string, error) { return ec2inventory.EnabledRegions(ctx, regions, 0) },
		Inventory:  inventory,
	})
	tests := []struct {
		scenario ctt.Scenario
		want     detect.VerdictKind
	}{
		{ctt.InstanceFromPublicIP, detect.OK},
		{ctt.InstanceViaNAT, detect.OK},
		{ctt.InstanceViaOwnEndpoint, detect.OK},
		{ctt.InstanceViaForeignVPCE, detect.BadSource},
		{ctt.StolenFromForeignIP, detect.BadSource},
		{ctt.StolenFailedCall, detect.BadSource}, // an IAM call: awsRegion us-east-1
		{ctt.UnknownInstanceCall, detect.InstanceMissing},
	}
	for _, tt := range tests {
		t.Run(string(tt.scenario), func(t *testing.T) {
			rec, err := cloudtrail.ParseRecord(tt.scenario.JSON())
			if err != nil {
				t.Fatal(err)
			}
			id, _ := detect.IsInstanceSession(&rec)
			inst, found, err := inv.LookupHint(t.Context(), id, rec.AWSRegion)
			if err != nil {
				t.Fatal(err)
			}
			if found && inst.Region != away {
				t.Errorf("instance found in %q, want %s", inst.Region, away)
			}
			if v := detect.Decide(&rec, inst, found); v.Kind != tt.want {
				t.Errorf("verdict %v (%s), want %v", v.Kind, v.Reason, tt.want)
			}
		})
	}
	if n := regions.Calls("DescribeRegions"); n != 1 {
		t.Errorf("%d DescribeRegions calls, want 1", n)
	}
	if inst, nats, eps := apis[home].calls(); nats != 0 || eps != 0 || inst == 0 {
		t.Errorf("home region calls %d/%d/%d, want instance lookups only", inst, nats, eps)
	}
	if _, nats, eps := apis[away].calls(); nats != 1 || eps != 1 {
		t.Errorf("eu-west-1 VPC calls %d/%d, want the VPC described once", nats, eps)
	}
}
