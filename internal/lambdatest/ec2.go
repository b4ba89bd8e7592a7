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
// and account, holding instances, route tables, NAT gateways, Elastic IPs,
// VPC endpoints and regions as the SDK's own types, that answers
// DescribeInstances, DescribeRouteTables, DescribeNatGateways,
// DescribeAddresses, DescribeVpcEndpoints and DescribeRegions with EC2's
// rules (filters, ids, MaxResults, paging) and EC2's errors
// (InvalidInstanceID.NotFound, InvalidRouteTableID.NotFound,
// NatGatewayNotFound, InvalidAllocationID.NotFound, InvalidAddress.NotFound,
// InvalidParameterValue, InvalidParameterCombination) as the SDK returns
// them (smithy.APIError).
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
	routes    []ec2types.RouteTable
	nats      []ec2types.NatGateway
	addresses []ec2types.Address
	endpoints []ec2types.VpcEndpoint
	regions   []ec2types.Region
	pageSize  int
	pageSizes map[string]int     // SetOperationPageSize
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

// PutRouteTable adds a route table, or replaces the one with its id.
func (f *EC2) PutRouteTable(t ec2types.RouteTable) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.routes {
		if aws.ToString(f.routes[i].RouteTableId) == aws.ToString(t.RouteTableId) {
			f.routes[i] = t
			return
		}
	}
	f.routes = append(f.routes, t)
}

// PutAddress adds an Elastic IP, or replaces the one with its allocation
// id (an association or disassociation).
func (f *EC2) PutAddress(a ec2types.Address) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.addresses {
		if aws.ToString(f.addresses[i].AllocationId) == aws.ToString(a.AllocationId) {
			f.addresses[i] = a
			return
		}
	}
	f.addresses = append(f.addresses, a)
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

// SetOperationPageSize makes op (DescribeRouteTables, DescribeNatGateways)
// answer at most n items per page (0: one page unless MaxResults says
// less), as EC2 may.
func (f *EC2) SetOperationPageSize(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pageSizes == nil {
		f.pageSizes = map[string]int{}
	}
	f.pageSizes[op] = n
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

// DescribeRouteTablesInputs returns the inputs of the DescribeRouteTables calls.
func (f *EC2) DescribeRouteTablesInputs() []*ec2.DescribeRouteTablesInput {
	return inputs[*ec2.DescribeRouteTablesInput](f, "DescribeRouteTables")
}

// DescribeAddressesInputs returns the inputs of the DescribeAddresses calls.
func (f *EC2) DescribeAddressesInputs() []*ec2.DescribeAddressesInput {
	return inputs[*ec2.DescribeAddressesInput](f, "DescribeAddresses")
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

// instanceFilterValues returns the values of an EC2 filter for an
// instance (a filter matches if one of them is one of its values), and
// whether the filter is one EC2 knows for DescribeInstances (of those the
// fake implements).
func instanceFilterValues(in ec2types.Instance, name string) ([]string, bool) {
	one := func(s string) ([]string, bool) { return []string{s}, true }
	switch name {
	case "instance-id":
		return one(aws.ToString(in.InstanceId))
	case "instance-state-name":
		if in.State == nil {
			return one("")
		}
		return one(string(in.State.Name))
	case "iam-instance-profile.arn":
		if in.IamInstanceProfile == nil {
			return one("")
		}
		return one(aws.ToString(in.IamInstanceProfile.Arn))
	case "vpc-id":
		return one(aws.ToString(in.VpcId))
	case "subnet-id":
		return one(aws.ToString(in.SubnetId))
	case "network-interface.network-interface-id":
		var out []string
		for _, ni := range in.NetworkInterfaces {
			out = append(out, aws.ToString(ni.NetworkInterfaceId))
		}
		return out, true
	case "network-interface.attachment.attachment-id":
		var out []string
		for _, ni := range in.NetworkInterfaces {
			if ni.Attachment != nil {
				out = append(out, aws.ToString(ni.Attachment.AttachmentId))
			}
		}
		return out, true
	}
	return nil, false
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
	return matchesAny(fs, func(name string) []string { return []string{value(name)} })
}

// matchesAny applies filters to a resource with several values per
// filter: every filter must have one of its values among them.
func matchesAny(fs []ec2types.Filter, values func(string) []string) bool {
	for _, flt := range fs {
		have := values(aws.ToString(flt.Name))
		if !slices.ContainsFunc(flt.Values, func(v string) bool { return slices.Contains(have, v) }) {
			return false
		}
	}
	return true
}

// page returns the page of items that token and maxResults (which EC2
// accepts between lo and hi) ask for, at most pageSize long (0: no bound),
// and the token of the next page.
func page[T any](items []T, token *string, maxResults *int32, lo, hi int32, pageSize int) ([]T, *string, error) {
	if n := aws.ToInt32(maxResults); maxResults != nil && (n < lo || n > hi) {
		return nil, nil, ec2Error("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", n, lo, hi)
	}
	start := 0
	if tok := aws.ToString(token); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil || !strings.HasPrefix(tok, "page-") || n < 0 || n > len(items) {
			return nil, nil, ec2Error("InvalidParameterValue", "Invalid NextToken %q", tok)
		}
		start = n
	}
	size := pageSize
	if n := int(aws.ToInt32(maxResults)); n > 0 && (size == 0 || n < size) {
		size = n
	}
	end := len(items)
	if size > 0 && start+size < end {
		end = start + size
	}
	var next *string
	if end < len(items) {
		next = aws.String("page-" + strconv.Itoa(end))
	}
	return items[start:end], next, nil
}

// DescribeInstances is ec2.Client.DescribeInstances: InstanceIds (every id
// must exist), the filters instance-id, instance-state-name,
// iam-instance-profile.arn, vpc-id, subnet-id,
// network-interface.network-interface-id and
// network-interface.attachment.attachment-id, MaxResults (5 to 1000, not with
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
		_, ok := instanceFilterValues(ec2types.Instance{}, name)
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
		if matchesAny(in.Filters, func(name string) []string { v, _ := instanceFilterValues(inst, name); return v }) {
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

// DescribeNatGateways is ec2.Client.DescribeNatGateways: NatGatewayIds
// (every id must exist: NatGatewayNotFound), the filters vpc-id, state and
// nat-gateway-id (which, unlike the ids, answer nothing for an unknown
// gateway), MaxResults (5 to 1000) and paging (see SetOperationPageSize).
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
	for _, id := range in.NatGatewayIds {
		if !slices.ContainsFunc(f.nats, func(n ec2types.NatGateway) bool { return aws.ToString(n.NatGatewayId) == id }) {
			return nil, ec2Error("NatGatewayNotFound", "The Nat Gateway %s was not found", id)
		}
	}
	var match []ec2types.NatGateway
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
			match = append(match, n)
		}
	}
	items, next, err := page(match, in.NextToken, in.MaxResults, 5, 1000, f.pageSizes["DescribeNatGateways"])
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeNatGatewaysOutput{NatGateways: items, NextToken: next}, nil
}

// routeTableFilterValues returns the values of an EC2 filter for a route
// table, and whether DescribeRouteTables knows the filter (of those the
// fake implements).
func routeTableFilterValues(t ec2types.RouteTable, name string) ([]string, bool) {
	var out []string
	switch name {
	case "vpc-id":
		return []string{aws.ToString(t.VpcId)}, true
	case "route-table-id":
		return []string{aws.ToString(t.RouteTableId)}, true
	case "association.subnet-id":
		for _, a := range t.Associations {
			out = append(out, aws.ToString(a.SubnetId))
		}
		return out, true
	case "association.main":
		for _, a := range t.Associations {
			out = append(out, strconv.FormatBool(aws.ToBool(a.Main)))
		}
		return out, true
	case "route.nat-gateway-id":
		for _, r := range t.Routes {
			out = append(out, aws.ToString(r.NatGatewayId))
		}
		return out, true
	}
	return nil, false
}

// DescribeRouteTables is ec2.Client.DescribeRouteTables: RouteTableIds
// (every id must exist: InvalidRouteTableID.NotFound), the filters vpc-id,
// route-table-id, association.subnet-id, association.main and
// route.nat-gateway-id, MaxResults (5 to 100) and paging (see
// SetOperationPageSize).
func (f *EC2) DescribeRouteTables(_ context.Context, in *ec2.DescribeRouteTablesInput, _ ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in == nil {
		in = &ec2.DescribeRouteTablesInput{}
	}
	if err := f.begin("DescribeRouteTables", in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(name string) bool {
		_, ok := routeTableFilterValues(ec2types.RouteTable{}, name)
		return ok
	}); err != nil {
		return nil, err
	}
	for _, id := range in.RouteTableIds {
		if !slices.ContainsFunc(f.routes, func(t ec2types.RouteTable) bool { return aws.ToString(t.RouteTableId) == id }) {
			return nil, ec2Error("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", id)
		}
	}
	var match []ec2types.RouteTable
	for _, t := range f.routes {
		if len(in.RouteTableIds) > 0 && !slices.Contains(in.RouteTableIds, aws.ToString(t.RouteTableId)) {
			continue
		}
		if matchesAny(in.Filters, func(name string) []string { v, _ := routeTableFilterValues(t, name); return v }) {
			match = append(match, t)
		}
	}
	items, next, err := page(match, in.NextToken, in.MaxResults, 5, 100, f.pageSizes["DescribeRouteTables"])
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeRouteTablesOutput{RouteTables: items, NextToken: next}, nil
}

// addressFilterValue returns the value of an EC2 filter for an Elastic IP,
// and whether DescribeAddresses knows the filter (of those the fake
// implements).
func addressFilterValue(a ec2types.Address, name string) (string, bool) {
	switch name {
	case "allocation-id":
		return aws.ToString(a.AllocationId), true
	case "association-id":
		return aws.ToString(a.AssociationId), true
	case "instance-id":
		return aws.ToString(a.InstanceId), true
	case "network-interface-id":
		return aws.ToString(a.NetworkInterfaceId), true
	case "public-ip":
		return aws.ToString(a.PublicIp), true
	case "private-ip-address":
		return aws.ToString(a.PrivateIpAddress), true
	case "domain":
		return string(a.Domain), true
	}
	return "", false
}

// DescribeAddresses is ec2.Client.DescribeAddresses: AllocationIds (every
// id must exist: InvalidAllocationID.NotFound), PublicIps (every address
// must be allocated: InvalidAddress.NotFound), the filters allocation-id,
// association-id, instance-id, network-interface-id, public-ip,
// private-ip-address and domain (which answer nothing, not an error, for
// what does not exist: an association just removed). It has no paging, like
// EC2's.
func (f *EC2) DescribeAddresses(_ context.Context, in *ec2.DescribeAddressesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in == nil {
		in = &ec2.DescribeAddressesInput{}
	}
	if err := f.begin("DescribeAddresses", in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(name string) bool {
		_, ok := addressFilterValue(ec2types.Address{}, name)
		return ok
	}); err != nil {
		return nil, err
	}
	has := func(field func(ec2types.Address) *string, v string) bool {
		return slices.ContainsFunc(f.addresses, func(a ec2types.Address) bool { return aws.ToString(field(a)) == v })
	}
	for _, id := range in.AllocationIds {
		if !has(func(a ec2types.Address) *string { return a.AllocationId }, id) {
			return nil, ec2Error("InvalidAllocationID.NotFound", "The allocation IDs '%s' do not exist", id)
		}
	}
	for _, ip := range in.PublicIps {
		if !has(func(a ec2types.Address) *string { return a.PublicIp }, ip) {
			return nil, ec2Error("InvalidAddress.NotFound", "Address '%s' not found.", ip)
		}
	}
	out := &ec2.DescribeAddressesOutput{}
	for _, a := range f.addresses {
		if len(in.AllocationIds) > 0 && !slices.Contains(in.AllocationIds, aws.ToString(a.AllocationId)) {
			continue
		}
		if len(in.PublicIps) > 0 && !slices.Contains(in.PublicIps, aws.ToString(a.PublicIp)) {
			continue
		}
		if matches(in.Filters, func(name string) string { v, _ := addressFilterValue(a, name); return v }) {
			out.Addresses = append(out.Addresses, a)
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
