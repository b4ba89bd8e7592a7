package locker

import (
	"context"
	"fmt"
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

	"github.com/defenders-cdk/defenders/internal/lambdatest"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

const account = "111122223333"

// fakeCloud is an in-memory EC2, IAM and CloudFormation that implements
// EC2API, IAMAPI and CloudFormationAPI with the real SDK types. Its EC2 is
// the tests' one EC2 fake, lambdatest.EC2 (the same that answers the
// shipped binaries' tests over HTTP), in process: the locker's tests make
// thousands of calls, and failNext reaches every operation, EC2's too. It enforces
// IAM's inline policy size quota on PutRolePolicy and URL-encodes
// GetRolePolicy answers like IAM; CloudFormation answers a physical id that
// no stack owns, and an unknown stack, with ValidationError "... does not
// exist" like CloudFormation.
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
	policies   map[string]string // name -> JSON
}

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
	c.roles[name] = &fakeRole{name: name, path: path, policies: map[string]string{}}
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

func (r *fakeRole) sdk() iamtypes.Role {
	return iamtypes.Role{
		RoleName: aws.String(r.name), Path: aws.String(r.path),
		Arn: aws.String("arn:aws:iam::" + account + ":role" + r.path + r.name),
	}
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
			NetworkInterfaceId: aws.String("eni-primary"), VpcId: in.VpcId,
			Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ip)},
			PrivateIpAddresses: []ec2types.InstancePrivateIpAddress{{PrivateIpAddress: aws.String("10.0.1.23"), Primary: aws.Bool(true),
				Association: &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(ip)}}},
		})
	}
}

// eni adds a network interface with the given public IPv4 (Elastic IP) on
// its primary private address, an Elastic IP on a secondary private
// address, and IPv6 addresses.
func eni(eip, secondaryEIP string, ipv6 ...string) instOpt {
	return func(in *ec2types.Instance) {
		ni := ec2types.InstanceNetworkInterface{NetworkInterfaceId: aws.String("eni-secondary"), VpcId: in.VpcId}
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
