package lambdatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// EC2 is the one EC2 fake of the tests: an in-memory EC2 of one region
// and account, holding instances, NAT gateways, VPC endpoints and regions
// as the SDK's own types, that answers DescribeInstances,
// DescribeNatGateways, DescribeVpcEndpoints and DescribeRegions with EC2's
// rules (filters, InstanceIds, MaxResults, paging) and EC2's errors
// (InvalidInstanceID.NotFound, InvalidParameterValue,
// InvalidParameterCombination) as the SDK returns them (smithy.APIError).
// It counts and records every call and can fail calls on request.
//
// It has two front ends, so that there is one place where the tests say
// what EC2 answers:
//
//   - in process, its methods implement the EC2 interfaces of the packages
//     (locker.EC2API, ec2inventory.API and RegionsAPI): unit tests use it
//     directly, because they run thousands of calls (paging, retries,
//     fault injection) and a loopback HTTP round trip and SigV4 signing per
//     call would make them slow without testing more of the code under test;
//   - over the wire, Cloud serves its EC2 endpoint (the query protocol, per
//     signed region) from it, for the tests that run a shipped binary.
//
// Package tests add what only they assert (for example that a caller
// never passes InstanceIds) by wrapping it, not by copying it. The zero
// value is an empty EC2; it is safe for concurrent use.
type EC2 struct {
	mu        sync.Mutex
	instances []ec2types.Instance
	nats      []ec2types.NatGateway
	endpoints []ec2types.VpcEndpoint
	regions   []ec2types.Region
	pageSize  int
	fail      map[string]error   // SetError: every call fails
	next      map[string][]error // FailNext: the next calls fail (nil: succeeds)
	calls     map[string][]any   // inputs per operation
}

// MaxEC2FilterValues is the number of values EC2 accepts in one filter.
const MaxEC2FilterValues = 200

// PutInstance adds an instance, or replaces the instance with its id.
func (f *EC2) PutInstance(in ec2types.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.instances {
		if aws.ToString(f.instances[i].InstanceId) == aws.ToString(in.InstanceId) {
			f.instances[i] = in
			return
		}
	}
	f.instances = append(f.instances, in)
}

// AddNatGateway adds NAT gateways.
func (f *EC2) AddNatGateway(nats ...ec2types.NatGateway) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nats = append(f.nats, nats...)
}

// AddVpcEndpoint adds VPC endpoints.
func (f *EC2) AddVpcEndpoint(eps ...ec2types.VpcEndpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endpoints = append(f.endpoints, eps...)
}

// SetRegions sets what DescribeRegions answers.
func (f *EC2) SetRegions(regions ...ec2types.Region) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regions = slices.Clone(regions)
}

// SetPageSize makes DescribeInstances answer at most n instances per page
// when it is not asked for InstanceIds (0: one page), as EC2 may.
func (f *EC2) SetPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageSize = n
}

// SetError makes every call of op ("DescribeInstances", ...) fail with err
// (nil: succeed again).
func (f *EC2) SetError(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[op] = err
}

// FailNext makes the next calls of op answer errs in turn, a nil error
// being a call that succeeds.
func (f *EC2) FailNext(op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = map[string][]error{}
	}
	f.next[op] = append(f.next[op], errs...)
}

// Calls returns the number of calls of op.
func (f *EC2) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[op])
}

// DescribeInstancesInputs returns the inputs of the DescribeInstances calls.
func (f *EC2) DescribeInstancesInputs() []*ec2.DescribeInstancesInput {
	return inputs[*ec2.DescribeInstancesInput](f, "DescribeInstances")
}

// DescribeNatGatewaysInputs returns the inputs of the DescribeNatGateways calls.
func (f *EC2) DescribeNatGatewaysInputs() []*ec2.DescribeNatGatewaysInput {
	return inputs[*ec2.DescribeNatGatewaysInput](f, "DescribeNatGateways")
}

// DescribeRegionsInputs returns the inputs of the DescribeRegions calls.
func (f *EC2) DescribeRegionsInputs() []*ec2.DescribeRegionsInput {
	return inputs[*ec2.DescribeRegionsInput](f, "DescribeRegions")
}

func inputs[T any](f *EC2, op string) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]T, 0, len(f.calls[op]))
	for _, in := range f.calls[op] {
		out = append(out, in.(T))
	}
	return out
}

// begin records a call of op, with f.mu held, and returns the error it
// must answer, if any.
func (f *EC2) begin(op string, in any) error {
	if f.calls == nil {
		f.calls = map[string][]any{}
	}
	f.calls[op] = append(f.calls[op], in)
	if q := f.next[op]; len(q) > 0 {
		f.next[op] = q[1:]
		if q[0] != nil {
			return q[0]
		}
	}
	return f.fail[op]
}

// ec2Error is an EC2 error answer as the SDK returns it.
func ec2Error(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

// instanceFilterValue returns the value of an EC2 filter for an instance, and
// whether the filter is one EC2 knows for DescribeInstances (of those
// the fake implements).
func instanceFilterValue(in ec2types.Instance, name string) (string, bool) {
	switch name {
	case "instance-id":
		return aws.ToString(in.InstanceId), true
	case "instance-state-name":
		if in.State == nil {
			return "", true
		}
		return string(in.State.Name), true
	case "iam-instance-profile.arn":
		if in.IamInstanceProfile == nil {
			return "", true
		}
		return aws.ToString(in.IamInstanceProfile.Arn), true
	case "vpc-id":
		return aws.ToString(in.VpcId), true
	}
	return "", false
}

// checkFilters refuses filters EC2 would: too many values, or a name the
// fake does not know (EC2 knows more; a test that needs one adds it here).
func checkFilters(fs []ec2types.Filter, known func(string) bool) error {
	for _, flt := range fs {
		name := aws.ToString(flt.Name)
		if !known(name) {
			return ec2Error("InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		if len(flt.Values) > MaxEC2FilterValues {
			return ec2Error("InvalidParameterValue", "The filter '%s' has more than %d values", name, MaxEC2FilterValues)
		}
	}
	return nil
}

// matches applies filters: every filter must match one of its values.
func matches(fs []ec2types.Filter, value func(string) string) bool {
	for _, flt := range fs {
		if !slices.Contains(flt.Values, value(aws.ToString(flt.Name))) {
			return false
		}
	}
	return true
}

// DescribeInstances is ec2.Client.DescribeInstances: InstanceIds (every id
// must exist), the filters instance-id, instance-state-name,
// iam-instance-profile.arn and vpc-id, MaxResults (5 to 1000, not with
// InstanceIds) and paging, one reservation per instance.
func (f *EC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in == nil {
		in = &ec2.DescribeInstancesInput{}
	}
	if err := f.begin("DescribeInstances", in); err != nil {
		return nil, err
	}
	if len(in.InstanceIds) > 0 && in.MaxResults != nil {
		return nil, ec2Error("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	if n := aws.ToInt32(in.MaxResults); in.MaxResults != nil && (n < 5 || n > 1000) {
		return nil, ec2Error("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", n)
	}
	if err := checkFilters(in.Filters, func(name string) bool {
		_, ok := instanceFilterValue(ec2types.Instance{}, name)
		return ok
	}); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		if !slices.ContainsFunc(f.instances, func(i ec2types.Instance) bool { return aws.ToString(i.InstanceId) == id }) {
			return nil, ec2Error("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	var match []ec2types.Instance
	for _, inst := range f.instances {
		if len(in.InstanceIds) > 0 && !slices.Contains(in.InstanceIds, aws.ToString(inst.InstanceId)) {
			continue
		}
		if matches(in.Filters, func(name string) string { v, _ := instanceFilterValue(inst, name); return v }) {
			match = append(match, inst)
		}
	}
	start := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil || !strings.HasPrefix(tok, "page-") || n < 0 || n > len(match) {
			return nil, ec2Error("InvalidParameterValue", "Invalid NextToken %q", tok)
		}
		start = n
	}
	size := 0
	if len(in.InstanceIds) == 0 {
		size = f.pageSize
	}
	if n := int(aws.ToInt32(in.MaxResults)); n > 0 && (size == 0 || n < size) {
		size = n
	}
	end := len(match)
	if size > 0 && start+size < end {
		end = start + size
	}
	out := &ec2.DescribeInstancesOutput{}
	for _, inst := range match[start:end] {
		out.Reservations = append(out.Reservations, ec2types.Reservation{
			ReservationId: aws.String("r-" + strings.TrimPrefix(aws.ToString(inst.InstanceId), "i-")),
			OwnerId:       aws.String(Account),
			Instances:     []ec2types.Instance{inst},
		})
	}
	if end < len(match) {
		out.NextToken = aws.String("page-" + strconv.Itoa(end))
	}
	return out, nil
}

// DescribeNatGateways is ec2.Client.DescribeNatGateways with the filters
// vpc-id, state and nat-gateway-id, in one page.
func (f *EC2) DescribeNatGateways(_ context.Context, in *ec2.DescribeNatGatewaysInput, _ ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in == nil {
		in = &ec2.DescribeNatGatewaysInput{}
	}
	if err := f.begin("DescribeNatGateways", in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filter, func(name string) bool {
		return slices.Contains([]string{"vpc-id", "state", "nat-gateway-id"}, name)
	}); err != nil {
		return nil, err
	}
	out := &ec2.DescribeNatGatewaysOutput{}
	for _, n := range f.nats {
		ok := matches(in.Filter, func(name string) string {
			switch name {
			case "vpc-id":
				return aws.ToString(n.VpcId)
			case "state":
				return string(n.State)
			}
			return aws.ToString(n.NatGatewayId)
		})
		if ok && (len(in.NatGatewayIds) == 0 || slices.Contains(in.NatGatewayIds, aws.ToString(n.NatGatewayId))) {
			out.NatGateways = append(out.NatGateways, n)
		}
	}
	return out, nil
}

// DescribeVpcEndpoints is ec2.Client.DescribeVpcEndpoints with the filters
// vpc-id, vpc-endpoint-id and vpc-endpoint-state, in one page.
func (f *EC2) DescribeVpcEndpoints(_ context.Context, in *ec2.DescribeVpcEndpointsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in == nil {
		in = &ec2.DescribeVpcEndpointsInput{}
	}
	if err := f.begin("DescribeVpcEndpoints", in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(name string) bool {
		return slices.Contains([]string{"vpc-id", "vpc-endpoint-id", "vpc-endpoint-state"}, name)
	}); err != nil {
		return nil, err
	}
	out := &ec2.DescribeVpcEndpointsOutput{}
	for _, e := range f.endpoints {
		ok := matches(in.Filters, func(name string) string {
			switch name {
			case "vpc-id":
				return aws.ToString(e.VpcId)
			case "vpc-endpoint-state":
				return strings.ToLower(string(e.State))
			}
			return aws.ToString(e.VpcEndpointId)
		})
		if ok && (len(in.VpcEndpointIds) == 0 || slices.Contains(in.VpcEndpointIds, aws.ToString(e.VpcEndpointId))) {
			out.VpcEndpoints = append(out.VpcEndpoints, e)
		}
	}
	return out, nil
}

// DescribeRegions is ec2.Client.DescribeRegions: the regions of SetRegions
// as they are, narrowed by RegionNames. EC2 answers the enabled regions
// unless asked for AllRegions; a test that sets a "not-opted-in" region
// checks that its caller does not trust that.
func (f *EC2) DescribeRegions(_ context.Context, in *ec2.DescribeRegionsInput, _ ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in == nil {
		in = &ec2.DescribeRegionsInput{}
	}
	if err := f.begin("DescribeRegions", in); err != nil {
		return nil, err
	}
	out := &ec2.DescribeRegionsOutput{}
	for _, r := range f.regions {
		if len(in.RegionNames) == 0 || slices.Contains(in.RegionNames, aws.ToString(r.RegionName)) {
			out.Regions = append(out.Regions, r)
		}
	}
	return out, nil
}

// asAPIError turns an error of EC2 into the answer of an HTTP front end.
func asAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var se smithy.APIError
	if errors.As(err, &se) {
		return &APIError{Status: 400, Code: se.ErrorCode(), Message: se.ErrorMessage()}
	}
	return &APIError{Status: 500, Code: "InternalError", Message: err.Error()}
}
