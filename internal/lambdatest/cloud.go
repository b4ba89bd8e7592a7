package lambdatest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Account is the account id of a Cloud.
const Account = "111122223333"

// Credentials that Cloud's AssumeRole hands out.
const (
	// SessionAccessKeyID is the access key of every AssumeRole answer.
	SessionAccessKeyID = "ASIASTSFAKESESSION01"
	// SessionSecretAccessKey is its secret.
	SessionSecretAccessKey = "lambdatest/assumed/000000000000000000000"
	// SessionToken is its session token.
	SessionToken = "lambdatest-assumed-session-token"
)

// Instance is an EC2 instance of a Cloud.
type Instance struct {
	// ID is the instance id (i- followed by hex).
	ID string
	// State is the state name: pending, running, stopping, stopped,
	// shutting-down or terminated.
	State string
	// VPC is the VPC id.
	VPC string
	// Subnet is the subnet id (default DefaultSubnet when VPC is set).
	Subnet string
	// PrivateIP is the primary private IPv4 address.
	PrivateIP string
	// PublicIP is the public IPv4 address ("" for none).
	PublicIP string
	// IPv6 are the IPv6 addresses of the primary network interface.
	IPv6 []string
	// Profile is the name of the instance profile ("" for none).
	Profile string
	// Region is the region the instance lives in ("" for Region): only
	// requests signed for that region see it.
	Region string
	// Account is the account the instance belongs to ("" for Account):
	// only requests signed with that account's credentials see it (a
	// member's: see AddMember).
	Account string
}

// Role is an IAM role of a Cloud.
type Role struct {
	// Name is the role name.
	Name string
	// Path is the IAM path ("/" or "/a/b/").
	Path string
	// Policies maps inline policy names to JSON documents.
	Policies map[string]string
	// Tags are the role's tags.
	Tags map[string]string
	// Attached are the ARNs of the managed policies attached to the role.
	Attached []string
}

// DefaultSubnet is the subnet of an Instance that names none.
const DefaultSubnet = "subnet-0123456789abcdef0"

// MaxManagedPoliciesPerRole is IAM's default quota of managed policies
// attached to one role.
const MaxManagedPoliciesPerRole = 10

// ManagedPolicies are the AWS managed policies a Cloud knows (partition
// aws): AttachRolePolicy refuses any other with NoSuchEntity.
var ManagedPolicies = []string{"arn:aws:iam::aws:policy/AWSDenyAll", "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"}

// InstanceProfile is an IAM instance profile of a Cloud.
type InstanceProfile struct {
	// Name is the profile name.
	Name string
	// Path is the IAM path.
	Path string
	// Roles are the names of the profile's roles (at most one in AWS).
	Roles []string
}

// Cloud is a small stateful AWS account behind fake EC2, IAM, STS and
// CloudFormation endpoints: instances with addresses, VPCs, subnets and
// instance profiles; route tables, NAT gateways and Elastic IPs (Network);
// roles with paths, tags, inline policies (within IAM's 10,240-character
// quota) and attached managed policies (within MaxManagedPoliciesPerRole);
// stacks with a status and the physical ids of their resources. Its
// handlers implement what a locker or detector needs of DescribeInstances,
// DescribeRouteTables, DescribeNatGateways, DescribeAddresses,
// GetInstanceProfile, GetRole, ListRoles, ListRoleTags,
// ListInstanceProfilesForRole, ListRolePolicies, GetRolePolicy,
// PutRolePolicy, DeleteRolePolicy, ListAttachedRolePolicies,
// AttachRolePolicy, DetachRolePolicy, GetCallerIdentity, AssumeRole,
// DescribeStackResources and DescribeStacks, with the real errors
// (NoSuchEntity, InvalidInstanceID.NotFound, MalformedPolicyDocument,
// LimitExceeded, AccessDenied, ValidationError "Stack ... does not exist").
// Its EC2 calls are answered by EC2, the tests' one EC2 fake.
type Cloud struct {
	// EC2, IAM, STS and CloudFormation are the endpoints; use them to
	// inject faults and read the calls.
	EC2, IAM, STS, CloudFormation *Service
	// Network holds the route tables, NAT gateways and Elastic IPs of the
	// account's region (Region): put them there, and read the calls.
	Network *EC2

	mu        sync.Mutex
	instances map[string]*Instance
	roles     map[string]*Role
	profiles  map[string]*InstanceProfile
	stacks    map[string]*Stack
	writable  []string
	pageSize  int
	enabled   []string             // regions enabled for the account (see SetRegions)
	down      map[string]*APIError // EC2 errors per region (see FailRegion)
	members   map[string]string    // member account -> member role name (see AddMember)
	issued    int                  // member sessions handed out
}

// NewCloud starts an empty Cloud.
func NewCloud(t testing.TB) *Cloud {
	t.Helper()
	c := &Cloud{
		EC2: NewService(t, "ec2", ProtocolEC2, NamespaceEC2),
		IAM: NewService(t, "iam", ProtocolQuery, NamespaceIAM),
		STS: NewService(t, "sts", ProtocolQuery, NamespaceSTS),
		// CloudFormation speaks the awsQuery dialect, like IAM.
		CloudFormation: NewService(t, "cloudformation", ProtocolQuery, NamespaceCloudFormation),
		instances:      map[string]*Instance{},
		roles:          map[string]*Role{},
		profiles:       map[string]*InstanceProfile{},
		stacks:         map[string]*Stack{},
		Network:        &EC2{},
	}
	c.EC2.Handle("DescribeInstances", c.describeInstances)
	c.EC2.Handle("DescribeRouteTables", c.network((*EC2).HandleDescribeRouteTables))
	c.EC2.Handle("DescribeNatGateways", c.network((*EC2).HandleDescribeNatGateways))
	c.EC2.Handle("DescribeAddresses", c.network((*EC2).HandleDescribeAddresses))
	c.EC2.Handle("DescribeRegions", c.describeRegions)
	c.IAM.Handle("GetInstanceProfile", c.getInstanceProfile)
	c.IAM.Handle("GetRole", c.getRole)
	c.IAM.Handle("ListRoles", c.listRoles)
	c.IAM.Handle("ListInstanceProfilesForRole", c.listInstanceProfilesForRole)
	c.IAM.Handle("ListRolePolicies", c.listRolePolicies)
	c.IAM.Handle("GetRolePolicy", c.getRolePolicy)
	c.IAM.Handle("PutRolePolicy", c.putRolePolicy)
	c.IAM.Handle("DeleteRolePolicy", c.deleteRolePolicy)
	c.IAM.Handle("ListRoleTags", c.listRoleTags)
	c.IAM.Handle("ListAttachedRolePolicies", c.listAttachedRolePolicies)
	c.IAM.Handle("AttachRolePolicy", c.attachRolePolicy)
	c.IAM.Handle("DetachRolePolicy", c.detachRolePolicy)
	c.STS.Handle("GetCallerIdentity", c.getCallerIdentity)
	c.STS.Handle("AssumeRole", c.assumeRole)
	c.CloudFormation.Handle("DescribeStackResources", c.describeStackResources)
	c.CloudFormation.Handle("DescribeStacks", c.describeStacks)
	return c
}

// Env returns the variables that point the AWS SDK at the Cloud.
func (c *Cloud) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_EC2": c.EC2.URL,
		"AWS_ENDPOINT_URL_IAM": c.IAM.URL,
		"AWS_ENDPOINT_URL_STS": c.STS.URL,
		// The SDK's service id is "CloudFormation".
		"AWS_ENDPOINT_URL_CLOUDFORMATION": c.CloudFormation.URL,
	}
}

// RoleARN returns the ARN of a role at path.
func RoleARN(path, name string) string {
	return "arn:aws:iam::" + Account + ":role" + path + name
}

// InstanceProfileARN returns the ARN of an instance profile at path.
func InstanceProfileARN(path, name string) string {
	return "arn:aws:iam::" + Account + ":instance-profile" + path + name
}

// LimitWrites makes PutRolePolicy, DeleteRolePolicy, AttachRolePolicy and
// DetachRolePolicy answer AccessDenied for roles whose path does not start with one of prefixes, like an IAM
// policy on arn:aws:iam::ACCOUNT:role/PREFIX*. No call means no limit.
func (c *Cloud) LimitWrites(prefixes ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writable = slices.Clone(prefixes)
}

// SetPageSize makes DescribeInstances answer at most n instances per page
// (0: one page).
func (c *Cloud) SetPageSize(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pageSize = n
}

// AddRole creates a role without policies.
func (c *Cloud) AddRole(name, path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roles[name] = &Role{Name: name, Path: path, Policies: map[string]string{}, Tags: map[string]string{}}
}

// TagRole sets a tag of a role, as an administrator (or CloudFormation)
// would.
func (c *Cloud) TagRole(role, key, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.roles[role]; ok {
		r.Tags[key] = value
	}
}

// AttachedPolicies returns the ARNs of the managed policies attached to a
// role.
func (c *Cloud) AttachedPolicies(role string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.roles[role]; ok {
		return slices.Clone(r.Attached)
	}
	return nil
}

// AddInstanceProfile creates an instance profile holding roles.
func (c *Cloud) AddInstanceProfile(name, path string, roles ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.profiles[name] = &InstanceProfile{Name: name, Path: path, Roles: slices.Clone(roles)}
}

// PutInstance creates or replaces an instance.
func (c *Cloud) PutInstance(in Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := in
	cp.IPv6 = slices.Clone(in.IPv6)
	c.instances[in.ID] = &cp
}

// UpdateInstance changes an instance in place (a stop, a start, a new
// address) and reports whether it exists.
func (c *Cloud) UpdateInstance(id string, change func(*Instance)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.instances[id]
	if ok {
		change(in)
	}
	return ok
}

// DeleteInstance makes an instance unknown to EC2 (long after termination).
func (c *Cloud) DeleteInstance(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.instances, id)
}

// SetRolePolicy writes an inline policy directly, as an administrator would.
func (c *Cloud) SetRolePolicy(role, name, doc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.roles[role]; ok {
		r.Policies[name] = doc
	}
}

// RolePolicy returns an inline policy of a role.
func (c *Cloud) RolePolicy(role, name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.roles[role]
	if !ok {
		return "", false
	}
	doc, ok := r.Policies[name]
	return doc, ok
}

// describeInstances implements ec2:DescribeInstances over the wire: an
// in-memory EC2 answers it (EC2.HandleDescribeInstances) with the
// instances of the region the request is signed for (instances of other
// regions are unknown there; a region that is not enabled refuses the
// call, see SetRegions) and the page size of SetPageSize.
func (c *Cloud) describeInstances(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkRegion(req); err != nil {
		return "", err
	}
	region := &EC2{}
	region.SetPageSize(c.pageSize)
	ids := make([]string, 0, len(c.instances))
	for id, inst := range c.instances {
		if inRegion(inst, req) && c.inAccount(inst, req) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		region.PutInstance(c.sdkInstance(c.instances[id]))
	}
	return region.HandleDescribeInstances(req)
}

// network serves an EC2 action of Network in the account's region: other
// regions, and member accounts, have no route table, NAT gateway or
// Elastic IP.
func (c *Cloud) network(handle func(*EC2, *Request) (string, error)) Handler {
	return func(req *Request) (string, error) {
		c.mu.Lock()
		err := c.checkRegion(req)
		own := c.callerAccount(req) == Account
		c.mu.Unlock()
		if err != nil {
			return "", err
		}
		if req.Region != Region || !own {
			return handle(&EC2{}, req)
		}
		return handle(c.Network, req)
	}
}

// sdkInstance describes an instance as EC2 does: its public address both
// on the instance and on its primary interface, owned by Amazon. Called
// with c.mu held.
func (c *Cloud) sdkInstance(in *Instance) ec2types.Instance {
	hex := strings.TrimPrefix(in.ID, "i-")
	out := ec2types.Instance{
		InstanceId:   aws.String(in.ID),
		ImageId:      aws.String("ami-0123456789abcdef0"),
		State:        &ec2types.InstanceState{Code: aws.Int32(int32(stateCodes[in.State])), Name: ec2types.InstanceStateName(in.State)},
		InstanceType: ec2types.InstanceTypeT4gMicro,
		LaunchTime:   aws.Time(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	if in.PrivateIP != "" {
		out.PrivateIpAddress = aws.String(in.PrivateIP)
	}
	if in.PublicIP != "" {
		out.PublicIpAddress = aws.String(in.PublicIP)
	}
	if len(in.IPv6) > 0 {
		out.Ipv6Address = aws.String(in.IPv6[0])
	}
	subnet := in.Subnet
	if subnet == "" {
		subnet = DefaultSubnet
	}
	if in.VPC != "" {
		out.VpcId, out.SubnetId = aws.String(in.VPC), aws.String(subnet)
	}
	if p := c.profiles[in.Profile]; p != nil {
		out.IamInstanceProfile = &ec2types.IamInstanceProfile{Arn: aws.String(InstanceProfileARN(p.Path, p.Name)), Id: aws.String("AIPA" + strings.ToUpper(hex))}
	}
	if in.VPC == "" {
		return out
	}
	ni := ec2types.InstanceNetworkInterface{NetworkInterfaceId: aws.String("eni-" + hex), VpcId: aws.String(in.VPC), SubnetId: aws.String(subnet),
		Status:     ec2types.NetworkInterfaceStatusInUse,
		Attachment: &ec2types.InstanceNetworkInterfaceAttachment{AttachmentId: aws.String("eni-attach-" + hex), DeviceIndex: aws.Int32(0)}}
	var assoc *ec2types.InstanceNetworkInterfaceAssociation
	if in.PublicIP != "" {
		assoc = &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(in.PublicIP), IpOwnerId: aws.String("amazon")}
		ni.Association = assoc
	}
	if in.PrivateIP != "" {
		ni.PrivateIpAddress = aws.String(in.PrivateIP)
		ni.PrivateIpAddresses = []ec2types.InstancePrivateIpAddress{{PrivateIpAddress: aws.String(in.PrivateIP), Primary: aws.Bool(true), Association: assoc}}
	}
	for _, a := range in.IPv6 {
		ni.Ipv6Addresses = append(ni.Ipv6Addresses, ec2types.InstanceIpv6Address{Ipv6Address: aws.String(a)})
	}
	out.NetworkInterfaces = []ec2types.InstanceNetworkInterface{ni}
	return out
}

// stateCodes are EC2's instance state codes.
var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// roleXML renders a role's fields (inside <Role> or <member>).
func roleXML(r *Role) string {
	return fmt.Sprintf("<Path>%s</Path><RoleName>%s</RoleName><RoleId>AROA%s</RoleId><Arn>%s</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate>"+
		"<AssumeRolePolicyDocument>%s</AssumeRolePolicyDocument><MaxSessionDuration>3600</MaxSessionDuration>",
		XMLText(r.Path), XMLText(r.Name), strings.ToUpper(hexName(r.Name)), XMLText(RoleARN(r.Path, r.Name)),
		PercentEncode(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`))
}

// hexName is a stable id suffix for a name.
func hexName(name string) string {
	h := uint64(14695981039346656037)
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}

// role returns a role or NoSuchEntity.
func (c *Cloud) role(name string) (*Role, error) {
	r, ok := c.roles[name]
	if !ok {
		return nil, Errorf(http.StatusNotFound, "NoSuchEntity", "The role with name %s cannot be found.", name)
	}
	return r, nil
}

func (c *Cloud) getInstanceProfile(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := req.Get("InstanceProfileName")
	p, ok := c.profiles[name]
	if !ok {
		return "", Errorf(http.StatusNotFound, "NoSuchEntity", "Instance Profile %s cannot be found.", name)
	}
	return "<InstanceProfile>" + c.profileXML(p) + "</InstanceProfile>", nil
}

// profileXML renders an instance profile's fields with its roles.
func (c *Cloud) profileXML(p *InstanceProfile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<Path>%s</Path><InstanceProfileName>%s</InstanceProfileName><InstanceProfileId>AIPA%s</InstanceProfileId><Arn>%s</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate><Roles>",
		XMLText(p.Path), XMLText(p.Name), strings.ToUpper(hexName(p.Name)), XMLText(InstanceProfileARN(p.Path, p.Name)))
	for _, name := range p.Roles {
		if r, ok := c.roles[name]; ok {
			b.WriteString("<member>" + roleXML(r) + "</member>")
		}
	}
	b.WriteString("</Roles>")
	return b.String()
}

func (c *Cloud) getRole(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return "", err
	}
	return "<Role>" + roleXML(r) + "</Role>", nil
}

func (c *Cloud) listRoles(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := req.Get("PathPrefix")
	if prefix == "" {
		prefix = "/"
	}
	names := make([]string, 0, len(c.roles))
	for name, r := range c.roles {
		if strings.HasPrefix(r.Path, prefix) {
			names = append(names, name)
		}
	}
	return memberList("Roles", names, func(name string) string { return roleXML(c.roles[name]) }), nil
}

func (c *Cloud) listInstanceProfilesForRole(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(c.profiles))
	for name, p := range c.profiles {
		if slices.Contains(p.Roles, r.Name) {
			names = append(names, name)
		}
	}
	return memberList("InstanceProfiles", names, func(name string) string { return c.profileXML(c.profiles[name]) }), nil
}

func (c *Cloud) listRolePolicies(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(r.Policies))
	for name := range r.Policies {
		names = append(names, name)
	}
	return memberList("PolicyNames", names, func(name string) string { return XMLText(name) }), nil
}

// getRolePolicy answers the document percent-encoded, as IAM does.
func (c *Cloud) getRolePolicy(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return "", err
	}
	name := req.Get("PolicyName")
	doc, ok := r.Policies[name]
	if !ok {
		return "", Errorf(http.StatusNotFound, "NoSuchEntity", "The role policy with name %s cannot be found.", name)
	}
	return fmt.Sprintf("<RoleName>%s</RoleName><PolicyName>%s</PolicyName><PolicyDocument>%s</PolicyDocument>",
		XMLText(r.Name), XMLText(name), PercentEncode(doc)), nil
}

// mayWrite reports whether LimitWrites lets a role be written.
func (c *Cloud) mayWrite(r *Role) bool {
	if c.writable == nil {
		return true
	}
	for _, p := range c.writable {
		if strings.HasPrefix(r.Path, p) {
			return true
		}
	}
	return false
}

// writableRole returns the role the request names if the caller may write it, else the error
// IAM gives (NoSuchEntity, or AccessDenied naming action). Called with c.mu held.
func (c *Cloud) writableRole(req *Request, action string) (*Role, error) {
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return nil, err
	}
	if !c.mayWrite(r) {
		return nil, Errorf(http.StatusForbidden, "AccessDenied", "User is not authorized to perform: %s on resource: role %s", action, r.Name)
	}
	return r, nil
}

func (c *Cloud) putRolePolicy(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.writableRole(req, "iam:PutRolePolicy")
	if err != nil {
		return "", err
	}
	name, doc := req.Get("PolicyName"), req.Get("PolicyDocument")
	if name == "" || doc == "" {
		return "", Errorf(http.StatusBadRequest, "ValidationError", "PolicyName and PolicyDocument are required")
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return "", Errorf(http.StatusBadRequest, "MalformedPolicyDocument", "Syntax errors in policy.")
	}
	total := lockpolicy.SizeOf([]byte(doc))
	for other, d := range r.Policies {
		if other != name {
			total += lockpolicy.SizeOf([]byte(d))
		}
	}
	if total > lockpolicy.MaxRolePolicySize {
		return "", Errorf(http.StatusConflict, "LimitExceeded", "Maximum policy size of %d bytes exceeded for role %s", lockpolicy.MaxRolePolicySize, r.Name)
	}
	r.Policies[name] = doc
	return "", nil
}

// listRoleTags answers a role's tags in one page, sorted by key.
func (c *Cloud) listRoleTags(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("<IsTruncated>false</IsTruncated><Tags>")
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		fmt.Fprintf(&b, "<member><Key>%s</Key><Value>%s</Value></member>", XMLText(k), XMLText(r.Tags[k]))
	}
	b.WriteString("</Tags>")
	return b.String(), nil
}

func (c *Cloud) listAttachedRolePolicies(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(req.Get("RoleName"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("<IsTruncated>false</IsTruncated><AttachedPolicies>")
	for _, arn := range r.Attached {
		fmt.Fprintf(&b, "<member><PolicyName>%s</PolicyName><PolicyArn>%s</PolicyArn></member>", XMLText(arn[strings.LastIndex(arn, "/")+1:]), XMLText(arn))
	}
	b.WriteString("</AttachedPolicies>")
	return b.String(), nil
}

// attachRolePolicy attaches one of ManagedPolicies within the quota;
// attaching it again changes nothing.
func (c *Cloud) attachRolePolicy(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.writableRole(req, "iam:AttachRolePolicy")
	if err != nil {
		return "", err
	}
	arn := req.Get("PolicyArn")
	if !slices.Contains(ManagedPolicies, arn) {
		return "", Errorf(http.StatusNotFound, "NoSuchEntity", "Policy %s does not exist or is not attachable.", arn)
	}
	if slices.Contains(r.Attached, arn) {
		return "", nil
	}
	if len(r.Attached) >= MaxManagedPoliciesPerRole {
		return "", Errorf(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: %d", MaxManagedPoliciesPerRole)
	}
	r.Attached = append(r.Attached, arn)
	return "", nil
}

func (c *Cloud) detachRolePolicy(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.writableRole(req, "iam:DetachRolePolicy")
	if err != nil {
		return "", err
	}
	i := slices.Index(r.Attached, req.Get("PolicyArn"))
	if i < 0 {
		return "", Errorf(http.StatusNotFound, "NoSuchEntity", "Policy %s was not found.", req.Get("PolicyArn"))
	}
	r.Attached = slices.Delete(r.Attached, i, i+1)
	return "", nil
}

func (c *Cloud) deleteRolePolicy(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.writableRole(req, "iam:DeleteRolePolicy")
	if err != nil {
		return "", err
	}
	name := req.Get("PolicyName")
	if _, ok := r.Policies[name]; !ok {
		return "", Errorf(http.StatusNotFound, "NoSuchEntity", "The role policy with name %s cannot be found.", name)
	}
	delete(r.Policies, name)
	return "", nil
}

// FunctionRoleARN is the role Cloud's STS says the caller is.
const FunctionRoleARN = "arn:aws:iam::" + Account + ":role/lambdatest-function"

func (c *Cloud) getCallerIdentity(req *Request) (string, error) {
	return fmt.Sprintf("<Arn>arn:aws:sts::%s:assumed-role/lambdatest-function/lambdatest</Arn><UserId>AROAFAKE:lambdatest</UserId><Account>%s</Account>",
		Account, Account), nil
}

// assumeRole hands out SessionAccessKeyID credentials for any role of
// the Cloud's own account (and of any account before AddMember), and
// member sessions for the members' roles (see AddMember).
func (c *Cloud) assumeRole(req *Request) (string, error) {
	c.mu.Lock()
	answer, member, err := c.assumeMemberRole(req)
	c.mu.Unlock()
	if member {
		return answer, err
	}
	arn, session := req.Get("RoleArn"), req.Get("RoleSessionName")
	if arn == "" || session == "" {
		return "", Errorf(http.StatusBadRequest, "ValidationError", "RoleArn and RoleSessionName are required")
	}
	secs := 3600
	if s := req.Get("DurationSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 900 || n > 43200 {
			return "", Errorf(http.StatusBadRequest, "ValidationError", "DurationSeconds %q is out of range", s)
		}
		secs = n
	}
	if p := req.Get("Policy"); p != "" && !json.Valid([]byte(p)) {
		return "", Errorf(http.StatusBadRequest, "MalformedPolicyDocument", "The session policy is not JSON")
	}
	name := arn[strings.LastIndex(arn, "/")+1:]
	exp := time.Now().Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339)
	return fmt.Sprintf("<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"+
		"<AssumedRoleUser><AssumedRoleId>AROAFAKE:%s</AssumedRoleId><Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn></AssumedRoleUser><PackedPolicySize>10</PackedPolicySize>",
		SessionAccessKeyID, SessionSecretAccessKey, SessionToken, exp, XMLText(session), Account, XMLText(name), XMLText(session)), nil
}

// PercentEncode encodes s as IAM encodes policy documents in its answers
// (RFC 3986: everything but A-Z a-z 0-9 - _ . ~ is %XX).
func PercentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[ch>>4])
		b.WriteByte(hexDigits[ch&15])
	}
	return b.String()
}

// memberList renders an untruncated IAM list result: the sorted names, each rendered by item,
// as <member> elements of tag.
func memberList(tag string, names []string, item func(name string) string) string {
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("<IsTruncated>false</IsTruncated><" + tag + ">")
	for _, name := range names {
		b.WriteString("<member>" + item(name) + "</member>")
	}
	b.WriteString("</" + tag + ">")
	return b.String()
}
