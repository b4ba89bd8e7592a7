package locker

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

const account = "111122223333"

// fakeCloud is an in-memory EC2, IAM and CloudFormation that implements
// EC2API, IAMAPI and CloudFormationAPI with the real SDK types. Its EC2 is
// the tests' one EC2 fake, lambdatest.EC2 (the same that answers the
// shipped binaries' tests over HTTP), in process: the locker's tests make
// thousands of calls, and failNext reaches every operation, EC2's too. Its
// IAM enforces the inline policy size quota (10,240 characters over all of
// a role's inline policies) on PutRolePolicy, URL-encodes GetRolePolicy
// answers, keeps role tags, and attaches and detaches managed policies with
// IAM's rules (only AWS managed policies it knows, at most
// maxManagedPolicies per role, NoSuchEntity to detach one that is not
// attached); CloudFormation answers a physical id that no stack owns, and
// an unknown stack, with ValidationError "... does not exist" like
// CloudFormation.
type fakeCloud struct {
	mu       sync.Mutex
	ec2      *lambdatest.EC2
	roles    map[string]*fakeRole
	profiles map[string]*fakeProfile
	stacks   []*fakeStack
	// errs holds, per operation ("DescribeInstances", "PutRolePolicy",
	// ...), errors to return before the operation succeeds.
	errs map[string][]error
	// afterPut runs (unlocked) after every successful PutRolePolicy.
	afterPut func(c *fakeCloud, n int)
	puts     []fakePut
	calls    map[string]int
}

type fakeRole struct {
	name, path string
	partition  string            // "" is "aws"
	policies   map[string]string // name -> JSON
	tags       map[string]string
	attached   []string // managed policy ARNs
}

// maxManagedPolicies is IAM's default quota of managed policies per role.
const maxManagedPolicies = 10

// knownManagedPolicies are the AWS managed policies the fake IAM knows, by
// name (in every partition).
var knownManagedPolicies = []string{"AWSDenyAll", "AmazonEC2ReadOnlyAccess"}

type fakeProfile struct {
	name, path, role string
}

type fakePut struct {
	role, name, doc string
}

// fakeStack is a CloudFormation stack that owns roles (by name).
type fakeStack struct {
	name, id string
	status   cfntypes.StackStatus
	root     *fakeStack // nil unless nested
	roles    []string
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{ec2: &lambdatest.EC2{}, roles: map[string]*fakeRole{}, profiles: map[string]*fakeProfile{}, errs: map[string][]error{}, calls: map[string]int{}}
}

func profileARN(path, name string) string {
	return "arn:aws:iam::" + account + ":instance-profile" + path + name
}

// addRole adds a role and one instance profile of the same name and path,
// and returns the profile's ARN.
func (c *fakeCloud) addRole(name, path string) string {
	c.roles[name] = &fakeRole{name: name, path: path, policies: map[string]string{}, tags: map[string]string{}}
	c.profiles[name] = &fakeProfile{name: name, path: path, role: name}
	return profileARN(path, name)
}

// addInstance adds an instance, or replaces the instance with its id.
func (c *fakeCloud) addInstance(in ec2types.Instance) { c.ec2.PutInstance(in) }

// addStack adds a stack that owns roles, nested in root if root is not nil.
func (c *fakeCloud) addStack(name string, status cfntypes.StackStatus, root *fakeStack, roles ...string) *fakeStack {
	s := &fakeStack{name: name, status: status, root: root, roles: roles,
		id: fmt.Sprintf("arn:aws:cloudformation:us-east-1:%s:stack/%s/%08d-0000-4000-8000-000000000000", account, name, len(c.stacks)+1)}
	c.stacks = append(c.stacks, s)
	return s
}

// setStackStatus changes a stack's status, as a stack operation would.
func (c *fakeCloud) setStackStatus(s *fakeStack, status cfntypes.StackStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.status = status
}

func (c *fakeCloud) failNext(op string, errs ...error) { c.errs[op] = append(c.errs[op], errs...) }

// begin counts a call and pops an injected error.
func (c *fakeCloud) begin(op string) error {
	c.calls[op]++
	if q := c.errs[op]; len(q) > 0 {
		c.errs[op] = q[1:]
		return q[0]
	}
	return nil
}

func (c *fakeCloud) lock(role string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roles[role].policies[PolicyName]
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " (fake)"}
}

func noSuchEntity(what string) error {
	return &iamtypes.NoSuchEntityException{Message: aws.String(what + " cannot be found (fake)")}
}

// DescribeInstances answers an injected error (failNext), or what EC2
// answers.
func (c *fakeCloud) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c.mu.Lock()
	err := c.begin("DescribeInstances")
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.ec2.DescribeInstances(ctx, in, optFns...)
}

func (r *fakeRole) arn() string {
	partition := r.partition
	if partition == "" {
		partition = "aws"
	}
	return "arn:" + partition + ":iam::" + account + ":role" + r.path + r.name
}

func (r *fakeRole) sdk() iamtypes.Role {
	return iamtypes.Role{RoleName: aws.String(r.name), Path: aws.String(r.path), Arn: aws.String(r.arn())}
}

// ec2Call passes an EC2 call through failNext to the EC2 fake.
func ec2Call[In, Out any](c *fakeCloud, op string, in In, call func(context.Context, In, ...func(*ec2.Options)) (Out, error)) (Out, error) {
	c.mu.Lock()
	err := c.begin(op)
	c.mu.Unlock()
	if err != nil {
		var zero Out
		return zero, err
	}
	return call(context.Background(), in)
}

func (c *fakeCloud) DescribeRouteTables(_ context.Context, in *ec2.DescribeRouteTablesInput, _ ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error) {
	return ec2Call(c, "DescribeRouteTables", in, c.ec2.DescribeRouteTables)
}

func (c *fakeCloud) DescribeNatGateways(_ context.Context, in *ec2.DescribeNatGatewaysInput, _ ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error) {
	return ec2Call(c, "DescribeNatGateways", in, c.ec2.DescribeNatGateways)
}

func (c *fakeCloud) DescribeAddresses(_ context.Context, in *ec2.DescribeAddressesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error) {
	return ec2Call(c, "DescribeAddresses", in, c.ec2.DescribeAddresses)
}

// role returns a role or NoSuchEntity; called with c.mu held.
func (c *fakeCloud) role(name *string) (*fakeRole, error) {
	r, ok := c.roles[aws.ToString(name)]
	if !ok {
		return nil, noSuchEntity("role " + aws.ToString(name))
	}
	return r, nil
}

// ListRoleTags answers the role's tags in one page, sorted by key.
func (c *fakeCloud) ListRoleTags(_ context.Context, in *iam.ListRoleTagsInput, _ ...func(*iam.Options)) (*iam.ListRoleTagsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("ListRoleTags"); err != nil {
		return nil, err
	}
	r, err := c.role(in.RoleName)
	if err != nil {
		return nil, err
	}
	out := &iam.ListRoleTagsOutput{Tags: []iamtypes.Tag{}}
	for _, k := range slices.Sorted(maps.Keys(r.tags)) {
		out.Tags = append(out.Tags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(r.tags[k])})
	}
	return out, nil
}

func (c *fakeCloud) ListAttachedRolePolicies(_ context.Context, in *iam.ListAttachedRolePoliciesInput, _ ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("ListAttachedRolePolicies"); err != nil {
		return nil, err
	}
	r, err := c.role(in.RoleName)
	if err != nil {
		return nil, err
	}
	out := &iam.ListAttachedRolePoliciesOutput{AttachedPolicies: []iamtypes.AttachedPolicy{}}
	for _, arn := range r.attached {
		out.AttachedPolicies = append(out.AttachedPolicies, iamtypes.AttachedPolicy{PolicyArn: aws.String(arn), PolicyName: aws.String(arn[strings.LastIndex(arn, "/")+1:])})
	}
	return out, nil
}

// AttachRolePolicy attaches an AWS managed policy the fake knows, in the
// role's partition, within the quota; attaching it again changes nothing.
func (c *fakeCloud) AttachRolePolicy(_ context.Context, in *iam.AttachRolePolicyInput, _ ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("AttachRolePolicy"); err != nil {
		return nil, err
	}
	r, err := c.role(in.RoleName)
	if err != nil {
		return nil, err
	}
	arn := aws.ToString(in.PolicyArn)
	partition := r.partition
	if partition == "" {
		partition = "aws"
	}
	if !slices.ContainsFunc(knownManagedPolicies, func(n string) bool { return arn == "arn:"+partition+":iam::aws:policy/"+n }) {
		return nil, noSuchEntity("Policy " + arn + " does not exist or is not attachable.")
	}
	if slices.Contains(r.attached, arn) {
		return &iam.AttachRolePolicyOutput{}, nil
	}
	if len(r.attached) >= maxManagedPolicies {
		return nil, &iamtypes.LimitExceededException{Message: aws.String(fmt.Sprintf("Cannot exceed quota for PoliciesPerRole: %d", maxManagedPolicies))}
	}
	r.attached = append(r.attached, arn)
	return &iam.AttachRolePolicyOutput{}, nil
}

func (c *fakeCloud) DetachRolePolicy(_ context.Context, in *iam.DetachRolePolicyInput, _ ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("DetachRolePolicy"); err != nil {
		return nil, err
	}
	r, err := c.role(in.RoleName)
	if err != nil {
		return nil, err
	}
	i := slices.Index(r.attached, aws.ToString(in.PolicyArn))
	if i < 0 {
		return nil, noSuchEntity("Policy " + aws.ToString(in.PolicyArn) + " was not found.")
	}
	r.attached = slices.Delete(r.attached, i, i+1)
	return &iam.DetachRolePolicyOutput{}, nil
}

func (c *fakeCloud) GetInstanceProfile(_ context.Context, in *iam.GetInstanceProfileInput, _ ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("GetInstanceProfile"); err != nil {
		return nil, err
	}
	p, ok := c.profiles[aws.ToString(in.InstanceProfileName)]
	if !ok {
		return nil, noSuchEntity("instance profile " + aws.ToString(in.InstanceProfileName))
	}
	ip := &iamtypes.InstanceProfile{InstanceProfileName: aws.String(p.name), Path: aws.String(p.path), Arn: aws.String(profileARN(p.path, p.name))}
	if r, ok := c.roles[p.role]; ok {
		ip.Roles = []iamtypes.Role{r.sdk()}
	}
	return &iam.GetInstanceProfileOutput{InstanceProfile: ip}, nil
}

func (c *fakeCloud) ListRoles(_ context.Context, in *iam.ListRolesInput, _ ...func(*iam.Options)) (*iam.ListRolesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("ListRoles"); err != nil {
		return nil, err
	}
	var names []string
	for name, r := range c.roles {
		if strings.HasPrefix(r.path, aws.ToString(in.PathPrefix)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := &iam.ListRolesOutput{}
	for _, n := range names {
		out.Roles = append(out.Roles, c.roles[n].sdk())
	}
	return out, nil
}

func (c *fakeCloud) ListInstanceProfilesForRole(_ context.Context, in *iam.ListInstanceProfilesForRoleInput, _ ...func(*iam.Options)) (*iam.ListInstanceProfilesForRoleOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("ListInstanceProfilesForRole"); err != nil {
		return nil, err
	}
	name := aws.ToString(in.RoleName)
	if _, ok := c.roles[name]; !ok {
		return nil, noSuchEntity("role " + name)
	}
	out := &iam.ListInstanceProfilesForRoleOutput{}
	for _, p := range c.profiles {
		if p.role == name {
			out.InstanceProfiles = append(out.InstanceProfiles, iamtypes.InstanceProfile{Arn: aws.String(profileARN(p.path, p.name))})
		}
	}
	return out, nil
}

func (c *fakeCloud) ListRolePolicies(_ context.Context, in *iam.ListRolePoliciesInput, _ ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("ListRolePolicies"); err != nil {
		return nil, err
	}
	r, ok := c.roles[aws.ToString(in.RoleName)]
	if !ok {
		return nil, noSuchEntity("role " + aws.ToString(in.RoleName))
	}
	out := &iam.ListRolePoliciesOutput{PolicyNames: []string{}}
	for n := range r.policies {
		out.PolicyNames = append(out.PolicyNames, n)
	}
	slices.Sort(out.PolicyNames)
	return out, nil
}

func (c *fakeCloud) GetRolePolicy(_ context.Context, in *iam.GetRolePolicyInput, _ ...func(*iam.Options)) (*iam.GetRolePolicyOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("GetRolePolicy"); err != nil {
		return nil, err
	}
	r, ok := c.roles[aws.ToString(in.RoleName)]
	if !ok {
		return nil, noSuchEntity("role " + aws.ToString(in.RoleName))
	}
	doc, ok := r.policies[aws.ToString(in.PolicyName)]
	if !ok {
		return nil, noSuchEntity("policy " + aws.ToString(in.PolicyName))
	}
	enc := strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
	return &iam.GetRolePolicyOutput{RoleName: in.RoleName, PolicyName: in.PolicyName, PolicyDocument: aws.String(enc)}, nil
}

func (c *fakeCloud) PutRolePolicy(_ context.Context, in *iam.PutRolePolicyInput, _ ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error) {
	c.mu.Lock()
	if err := c.begin("PutRolePolicy"); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	r, ok := c.roles[aws.ToString(in.RoleName)]
	if !ok {
		c.mu.Unlock()
		return nil, noSuchEntity("role " + aws.ToString(in.RoleName))
	}
	total := lockpolicy.SizeOf([]byte(aws.ToString(in.PolicyDocument)))
	for n, d := range r.policies {
		if n != aws.ToString(in.PolicyName) {
			total += lockpolicy.SizeOf([]byte(d))
		}
	}
	if total > lockpolicy.MaxRolePolicySize {
		c.mu.Unlock()
		return nil, &iamtypes.LimitExceededException{Message: aws.String(fmt.Sprintf("Maximum policy size of %d bytes exceeded for role %s (fake: %d)", lockpolicy.MaxRolePolicySize, r.name, total))}
	}
	r.policies[aws.ToString(in.PolicyName)] = aws.ToString(in.PolicyDocument)
	c.puts = append(c.puts, fakePut{role: r.name, name: aws.ToString(in.PolicyName), doc: aws.ToString(in.PolicyDocument)})
	n := len(c.puts)
	hook := c.afterPut
	c.mu.Unlock()
	if hook != nil {
		hook(c, n)
	}
	return &iam.PutRolePolicyOutput{}, nil
}

func stackDoesNotExist(format string, args ...any) error {
	return &smithy.GenericAPIError{Code: "ValidationError", Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func (c *fakeCloud) DescribeStackResources(_ context.Context, in *cloudformation.DescribeStackResourcesInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourcesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("DescribeStackResources"); err != nil {
		return nil, err
	}
	id := aws.ToString(in.PhysicalResourceId)
	if id == "" || in.StackName != nil {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "specify either StackName or PhysicalResourceId (fake)"}
	}
	for _, s := range c.stacks {
		if !slices.Contains(s.roles, id) {
			continue
		}
		out := &cloudformation.DescribeStackResourcesOutput{}
		for i, role := range s.roles {
			out.StackResources = append(out.StackResources, cfntypes.StackResource{
				StackName: aws.String(s.name), StackId: aws.String(s.id), LogicalResourceId: aws.String(fmt.Sprintf("Role%d", i+1)),
				PhysicalResourceId: aws.String(role), ResourceType: aws.String("AWS::IAM::Role"), ResourceStatus: cfntypes.ResourceStatusCreateComplete,
			})
		}
		return out, nil
	}
	return nil, stackDoesNotExist("Stack for %s does not exist", id)
}

func (c *fakeCloud) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("DescribeStacks"); err != nil {
		return nil, err
	}
	name := aws.ToString(in.StackName)
	for _, s := range c.stacks {
		if s.id != name && s.name != name {
			continue
		}
		st := cfntypes.Stack{StackName: aws.String(s.name), StackId: aws.String(s.id), StackStatus: s.status}
		if s.root != nil {
			st.RootId, st.ParentId = aws.String(s.root.id), aws.String(s.root.id)
		}
		return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{st}}, nil
	}
	return nil, stackDoesNotExist("Stack with id %s does not exist", name)
}

// sleeps records the backoff waits of a Locker.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

// newTestLocker returns a Locker over c that never really sleeps.
func newTestLocker(t *testing.T, c *fakeCloud, mod ...func(*Config)) (*Locker, *sleeps) {
	t.Helper()
	s := &sleeps{}
	cfg := Config{EC2: c, IAM: c, CloudFormation: c, Sleep: s.sleep, Jitter: func() float64 { return 0.5 }}
	for _, m := range mod {
		m(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, s
}

// Instance builders. Addresses come from the documentation ranges and
// other public space; VPC ids are well-formed.
const (
	vpcA = "vpc-0123456789abcdef0"
	vpcB = "vpc-0fedcba9876543210"
)

type instOpt func(*ec2types.Instance)

func instance(id, state, profile, vpc string, opts ...instOpt) ec2types.Instance {
	in := ec2types.Instance{
		InstanceId: aws.String(id),
		State:      &ec2types.InstanceState{Name: ec2types.InstanceStateName(state)},
		VpcId:      aws.String(vpc),
	}
	if profile != "" {
		in.IamInstanceProfile = &ec2types.IamInstanceProfile{Arn: aws.String(profile)}
	}
	for _, o := range opts {
		o(&in)
	}
	return in
}

func publicIP(ip string) instOpt {
	return func(in *ec2types.Instance) {
		in.PublicIpAddress = aws.String(ip)
		in.NetworkInterfaces = append(in.NetworkInterfaces, ec2types.InstanceNetworkInterface{
			NetworkInterfaceId: aws.String(eniID(in, 0)), VpcId: in.VpcId,
			Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ip)},
			PrivateIpAddresses: []ec2types.InstancePrivateIpAddress{{PrivateIpAddress: aws.String("10.0.1.23"), Primary: aws.Bool(true),
				Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ip)}}},
		})
	}
}

// eniID is the id of an instance's network interface n (0: primary):
// eni- and the instance's hex digits, the first one replaced by n.
func eniID(in *ec2types.Instance, n int) string {
	hex := strings.TrimPrefix(aws.ToString(in.InstanceId), "i-")
	return fmt.Sprintf("eni-%x%s", n, hex[1:])
}

// eni adds a network interface with the given public IPv4 (Elastic IP) on
// its primary private address, an Elastic IP on a secondary private
// address, and IPv6 addresses.
func eni(eip, secondaryEIP string, ipv6 ...string) instOpt {
	return func(in *ec2types.Instance) {
		ni := ec2types.InstanceNetworkInterface{NetworkInterfaceId: aws.String(eniID(in, 1)), VpcId: in.VpcId}
		if eip != "" {
			ni.Association = &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(eip)}
			ni.PrivateIpAddresses = append(ni.PrivateIpAddresses, ec2types.InstancePrivateIpAddress{PrivateIpAddress: aws.String("10.0.1.40"),
				Primary: aws.Bool(true), Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(eip)}})
		}
		if secondaryEIP != "" {
			ni.PrivateIpAddresses = append(ni.PrivateIpAddresses, ec2types.InstancePrivateIpAddress{PrivateIpAddress: aws.String("10.0.1.41"),
				Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(secondaryEIP)}})
		}
		for _, a := range ipv6 {
			if strings.Contains(a, "/") {
				ni.Ipv6Prefixes = append(ni.Ipv6Prefixes, ec2types.InstanceIpv6Prefix{Ipv6Prefix: aws.String(a)})
			} else {
				ni.Ipv6Addresses = append(ni.Ipv6Addresses, ec2types.InstanceIpv6Address{Ipv6Address: aws.String(a)})
			}
		}
		in.NetworkInterfaces = append(in.NetworkInterfaces, ni)
	}
}

// stateChange returns a state-change event for id.
func stateChange(id, state string) []byte {
	return fmt.Appendf(nil, `{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":%q,"time":"2026-01-02T03:04:05Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:%s:instance/%s"],"detail":{"instance-id":%q,"state":%q}}`,
		account, account, id, id, state)
}

const scheduled = `{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"111122223333","time":"2026-01-02T03:05:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:111122223333:rule/defenders-locker"],"detail":{}}`

// tagRole sets a role's lock mode tag, as the lock constructs do.
func (c *fakeCloud) tagRole(role, mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roles[role].tags[contract.LockModeTagKey] = mode
}

// attached returns the managed policies attached to a role.
func (c *fakeCloud) attached(role string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.roles[role].attached)
}

// Network builders: subnets, route tables and NAT gateways of vpcA.
const (
	subnetPrivate = "subnet-0aaaaaaaaaaaaaaa1"
	subnetPublic  = "subnet-0aaaaaaaaaaaaaaa2"
	natA          = "nat-0aaaaaaaaaaaaaaa1"
	natAddr       = "198.51.100.77"
)

// routeTable returns a route table of vpc whose 0.0.0.0/0 route goes to
// target (a nat- or igw- id), associated with subnets, or the VPC's main
// route table when main is set.
func routeTable(id, vpc, target string, main bool, subnets ...string) ec2types.RouteTable {
	t := ec2types.RouteTable{RouteTableId: aws.String(id), VpcId: aws.String(vpc), Routes: []ec2types.Route{
		{DestinationCidrBlock: aws.String("10.0.0.0/16"), GatewayId: aws.String("local"), State: ec2types.RouteStateActive},
	}}
	def := ec2types.Route{DestinationCidrBlock: aws.String("0.0.0.0/0"), State: ec2types.RouteStateActive}
	switch {
	case strings.HasPrefix(target, "nat-"):
		def.NatGatewayId = aws.String(target)
	case target != "":
		def.GatewayId = aws.String(target)
	}
	if target != "" {
		t.Routes = append(t.Routes, def)
	}
	if main {
		t.Associations = append(t.Associations, ec2types.RouteTableAssociation{Main: aws.Bool(true), RouteTableId: aws.String(id),
			RouteTableAssociationId: aws.String("rtbassoc-0main" + id[len(id)-4:])})
	}
	for i, s := range subnets {
		t.Associations = append(t.Associations, ec2types.RouteTableAssociation{Main: aws.Bool(false), RouteTableId: aws.String(id), SubnetId: aws.String(s),
			RouteTableAssociationId: aws.String(fmt.Sprintf("rtbassoc-%d%s", i, id[len(id)-4:])),
			AssociationState:        &ec2types.RouteTableAssociationState{State: ec2types.RouteTableAssociationStateCodeAssociated}})
	}
	return t
}

// natGateway returns a NAT gateway of vpc with public addresses.
func natGateway(id, vpc string, state ec2types.NatGatewayState, public ...string) ec2types.NatGateway {
	n := ec2types.NatGateway{NatGatewayId: aws.String(id), VpcId: aws.String(vpc), SubnetId: aws.String(subnetPublic), State: state,
		ConnectivityType: ec2types.ConnectivityTypePublic}
	for i, ip := range public {
		n.NatGatewayAddresses = append(n.NatGatewayAddresses, ec2types.NatGatewayAddress{
			PublicIp: aws.String(ip), PrivateIp: aws.String(fmt.Sprintf("10.0.0.%d", 10+i)), AllocationId: aws.String(fmt.Sprintf("eipalloc-0nat%013d", i)),
			Status: ec2types.NatGatewayAddressStatusSucceeded})
	}
	return n
}

// privateNetwork gives vpcA a private subnet routed through natA
// (natAddr), and a public subnet on the main route table, through an
// internet gateway.
func (c *fakeCloud) privateNetwork() {
	c.ec2.PutRouteTable(routeTable("rtb-0aaaaaaaaaaaa0001", vpcA, "igw-0aaaaaaaaaaaaaaa1", true))
	c.ec2.PutRouteTable(routeTable("rtb-0aaaaaaaaaaaa0002", vpcA, natA, false, subnetPrivate))
	c.ec2.AddNatGateway(natGateway(natA, vpcA, ec2types.NatGatewayStateAvailable, natAddr))
}

// inSubnet puts an instance in a subnet.
func inSubnet(subnet string) instOpt {
	return func(in *ec2types.Instance) { in.SubnetId = aws.String(subnet) }
}
