package lock

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/review"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Mode says which network position a lock admits for public-internet calls. Every mode also
// admits the instance's own calls through VPC endpoints of its VPC and calls AWS services make on
// its behalf, and denies everything else (see internal/lockpolicy).
type Mode string

const (
	// InstancePublicIP locks to the instance's auto-assigned public IPv4 (Fn::GetAtt PublicIp).
	// Stops: stolen credentials used anywhere else. Costs: nothing extra, but the lock is attached
	// after launch (a few seconds unlocked) and goes stale on stop/start (new address: the instance
	// locks itself out, which fails closed; the locker repairs it). Needs a public subnet.
	InstancePublicIP Mode = "instance-public-ip"
	// ElasticIP allocates an Elastic IP, associates it with the instance and locks to it. The lock
	// does not reference the instance, so it is attached before launch and survives stop/start.
	// Costs: USD 0.005/hour per public IPv4 address (the same as an auto-assigned one).
	ElasticIP Mode = "elastic-ip"
	// NatEgress is for instances in private subnets that reach AWS through NAT gateways: the lock
	// admits the VPC's NAT gateway addresses (Bengtson's "locked to the subnet/AZ"). Attached
	// before launch, survives stop/start. Weaker: any host behind the same NAT gateways passes
	// the public-path check. Costs: the NAT gateways (about USD 33/month each plus USD 0.045/GB).
	NatEgress Mode = "nat-egress"
	// VpcEndpointsOnly admits no public address at all: only calls through VPC endpoints of the
	// instance's VPC, from the instance itself (aws:Ec2InstanceSourcePrivateIPv4). Attached before
	// launch, survives stop/start, the strongest mode. Costs: an interface endpoint per service
	// (about USD 7.30/month per AZ plus USD 0.01/GB); gateway endpoints (S3, DynamoDB) are free.
	VpcEndpointsOnly Mode = "vpc-endpoints-only"
)

// ExemptMetadataKey is the CloudFormation Metadata key that records an exemption (and its reason)
// on a role; the review command and the guard read it.
const ExemptMetadataKey = "defenders:exempt"

// AcknowledgeMetadataKey is the CloudFormation Metadata key of acknowledgements: a list of
// {"rule": "DEF-...", "reason": "..."} entries that the review and the guard honour per rule
// and per resource.
const AcknowledgeMetadataKey = review.AcknowledgeKey

// acknowledge returns the acknowledgement list existing (Metadata as read back from the
// resource, possibly nil) with rule acknowledged for reason, replacing an earlier reason of
// the same rule and keeping the other entries.
func acknowledge(existing any, rule, reason string) []any {
	var out []any
	list, _ := existing.([]any)
	for _, el := range list {
		if m, ok := el.(map[string]any); ok && m["rule"] == rule {
			continue
		}
		out = append(out, el)
	}
	return append(out, map[string]any{"rule": rule, "reason": reason})
}

// LockPolicyName is the name of the inline policy that Everything attaches.
const LockPolicyName = contract.LockPolicyName

// Options configures Everything.
type Options struct {
	// Mode is the lock mode for every instance in the scope. Default InstancePublicIP.
	Mode Mode
	// NatIPs are the NAT gateway public addresses (literal or tokens) for NatEgress, needed when
	// the VPC is imported and its NAT gateways cannot be found in the construct tree.
	NatIPs []string
}

func (o Options) validate() error {
	switch o.Mode {
	case InstancePublicIP, ElasticIP, NatEgress, VpcEndpointsOnly:
	default:
		return fmt.Errorf("lock: Options.Mode %q is not one of %s, %s, %s, %s", o.Mode,
			InstancePublicIP, ElasticIP, NatEgress, VpcEndpointsOnly)
	}
	if len(o.NatIPs) > 0 && o.Mode != NatEgress {
		return fmt.Errorf("lock: Options.NatIPs is only used with mode %s", NatEgress)
	}
	// Validate literal NAT addresses now, so that a typo fails here and not at deploy time.
	if len(o.NatIPs) > 0 {
		if _, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: o.NatIPs}, lockpolicy.Options{IsToken: IsToken}); err != nil {
			return fmt.Errorf("lock: Options.NatIPs: %w", err)
		}
	}
	return nil
}

// Everything locks every EC2 instance with an instance role in scope, and every Auto Scaling
// group where the lock can be expressed at synth time (NatEgress, VpcEndpointsOnly), including
// constructs added after the call and those in nested stacks. Roles shared by several instances
// get one lock that lists every instance's address. A role opts out only with Exempt.
//
// Calls on nested scopes win: Everything(app, public IP) plus Everything(someInstance, EIP)
// gives someInstance an Elastic IP lock and everything else a public IP lock.
// Problems (an instance without a public IP in InstancePublicIP mode, a role shared across
// stacks) become error annotations on the construct, so `cdk synth` fails and names it.
func Everything(scope constructs.IConstruct, opts *Options) error {
	o := Options{Mode: InstancePublicIP}
	if opts != nil {
		o = *opts
		if o.Mode == "" {
			o.Mode = InstancePublicIP
		}
	}
	if err := o.validate(); err != nil {
		return err
	}
	reg := registryOf(scope)
	a := &everything{scope: *scope.Node().Path(), opts: o, reg: reg}
	reg.mu.Lock()
	reg.aspects = append(reg.aspects, a)
	reg.mu.Unlock()
	awscdk.Aspects_Of(scope).Add(a, &awscdk.AspectOptions{Priority: awscdk.AspectPriority_MUTATING()})
	return nil
}

// Exempt records that the role of c (an awsec2.Instance, an AutoScalingGroup or an awsiam.Role)
// is deliberately left unlocked, and why. The reason is written into the role's CloudFormation
// Metadata as an acknowledgement of rule DEF-LOCK-1 (AcknowledgeMetadataKey: a list of
// {"rule", "reason"} entries, kept with any other acknowledgements of the role) and, for
// readers of the older form, under ExemptMetadataKey, so that reviewers see it in the template
// and in the review report.
func Exempt(c constructs.IConstruct, reason string) error {
	reason = strings.TrimSpace(reason)
	if len(reason) < 10 {
		return fmt.Errorf("lock: exemption of %s needs a real reason (got %q)", *c.Node().Path(), reason)
	}
	role, err := roleOf(c)
	if err != nil {
		return fmt.Errorf("lock: exempt %s: %w", *c.Node().Path(), err)
	}
	cfn, ok := role.Node().DefaultChild().(awscdk.CfnResource)
	if !ok || cfn == nil {
		return fmt.Errorf("lock: exempt %s: the role is imported; exempt it where it is defined", *c.Node().Path())
	}
	cfn.AddMetadata(jsii.String(ExemptMetadataKey), reason)
	cfn.AddMetadata(jsii.String(AcknowledgeMetadataKey), acknowledge(cfn.GetMetadata(jsii.String(AcknowledgeMetadataKey)), review.RuleUnlockedRole, reason))
	reg := registryOf(c)
	reg.mu.Lock()
	reg.exempt[refOfRole(role).key] = reason
	reg.mu.Unlock()
	return nil
}

// IsExempt returns the exemption reason of role, if any.
func IsExempt(role awsiam.IRole) (string, bool) {
	return registryOf(role).exemption(refOfRole(role))
}

func roleOf(c constructs.IConstruct) (awsiam.IRole, error) {
	switch x := c.(type) {
	case awsec2.Instance:
		return x.Role(), nil
	case awsautoscaling.AutoScalingGroup:
		return asgRole(x)
	case awsiam.IRole:
		return x, nil
	}
	return nil, fmt.Errorf("want an awsec2.Instance, an AutoScalingGroup or an awsiam.Role")
}

// roleRef identifies a role for the registry, whether it is an L2 Role, an imported role or a
// raw CfnRole: key is the address of its CfnRole when it has one (so an L2 role and the CfnRole
// under it are the same role), name is the token or literal the lock's Roles property takes.
type roleRef struct {
	key, path string
	name      *string
	cfn       awsiam.CfnRole // nil for imported roles
}

func refOfRole(r awsiam.IRole) roleRef {
	if cfn, ok := r.Node().DefaultChild().(awsiam.CfnRole); ok && cfn != nil {
		return roleRef{key: *cfn.Node().Addr(), path: *r.Node().Path(), name: r.RoleName(), cfn: cfn}
	}
	return roleRef{key: *r.Node().Addr(), path: *r.Node().Path(), name: r.RoleName()}
}

func refOfCfnRole(cfn awsiam.CfnRole) roleRef {
	return roleRef{key: *cfn.Node().Addr(), path: *cfn.Node().Path(), name: cfn.Ref(), cfn: cfn}
}

// exemption returns the exemption reason of a role: from Exempt, or from Metadata written by
// hand on its CfnRole.
func (r *registry) exemption(ref roleRef) (string, bool) {
	r.mu.Lock()
	reason, ok := r.exempt[ref.key]
	r.mu.Unlock()
	if ok {
		return reason, true
	}
	if ref.cfn != nil {
		if s, _ := ref.cfn.GetMetadata(jsii.String(ExemptMetadataKey)).(string); s != "" {
			return s, true
		}
	}
	return "", false
}

// registry is the per-app state shared by every Everything aspect and Exempt call.
type registry struct {
	mu      sync.Mutex
	aspects []*everything
	exempt  map[string]string    // roleRef.key -> reason
	locks   map[string]*roleLock // roleRef.key -> its lock
	vpcs    []awsec2.Vpc         // every VPC in the app, found once
	lts     []awsec2.LaunchTemplate
	scanned bool
}

// registryID is the id of the construct, a child of the app's root, that carries the registry:
// the state lives on the construct tree and goes away with the app (no package-level map that
// keeps every app of a long test run alive).
const registryID = "DefendersLockRegistry"

// registryNode is the construct that carries an app's registry.
type registryNode struct {
	constructs.Construct
	reg *registry
}

// State returns the registry (jsii requires an override-able construct to have a method).
func (n *registryNode) State() *registry { return n.reg }

// registriesMu serialises the creation of registry constructs (aspects of parallel apps).
var registriesMu sync.Mutex

func registryOf(c constructs.IConstruct) *registry {
	root := c.Node().Root()
	registriesMu.Lock()
	defer registriesMu.Unlock()
	if n, ok := root.Node().TryFindChild(jsii.String(registryID)).(*registryNode); ok {
		return n.State()
	}
	n := &registryNode{reg: &registry{exempt: map[string]string{}, locks: map[string]*roleLock{}}}
	scope, ok := root.(constructs.Construct)
	if !ok { // every root (App, Stage, Construct) is a Construct; keep the state anyway
		return n.reg
	}
	constructs.NewConstruct_Override(n, scope, jsii.String(registryID))
	return n.reg
}

// owner is the aspect with the deepest scope that contains path.
func (r *registry) owner(path string) *everything {
	var best *everything
	for _, a := range r.aspects {
		if a.scope == "" || path == a.scope || strings.HasPrefix(path, a.scope+"/") {
			if best == nil || len(a.scope) > len(best.scope) {
				best = a
			}
		}
	}
	return best
}

// scan finds every VPC and launch template of the app once (aspects run after construction).
func (r *registry) scan(c constructs.IConstruct) {
	if r.scanned {
		return
	}
	r.scanned = true
	for _, n := range *c.Node().Root().Node().FindAll(constructs.ConstructOrder_PREORDER) {
		switch x := n.(type) {
		case awsec2.Vpc:
			r.vpcs = append(r.vpcs, x)
		case awsec2.LaunchTemplate:
			r.lts = append(r.lts, x)
		}
	}
}

// vpcOfSubnet finds the VPC construct that owns the subnet whose id token is subnetID, and
// whether that subnet is public.
func (r *registry) vpcOfSubnet(subnetID string) (awsec2.Vpc, bool) {
	v, _, public := r.subnet(subnetID)
	return v, public
}

// subnet finds the VPC and subnet construct whose id token is subnetID.
func (r *registry) subnet(subnetID string) (awsec2.Vpc, awsec2.ISubnet, bool) {
	for _, v := range r.vpcs {
		for _, s := range *v.PublicSubnets() {
			if *s.SubnetId() == subnetID {
				return v, s, true
			}
		}
		for _, s := range append(*v.PrivateSubnets(), *v.IsolatedSubnets()...) {
			if *s.SubnetId() == subnetID {
				return v, s, false
			}
		}
	}
	return nil, nil, false
}

// ipv6Sources are the IPv6 sources of a dual-stack instance: its explicit addresses as /128s,
// or, when it only asks for a number of addresses (CloudFormation has no attribute for the
// addresses it then assigns), the IPv6 /64 of its subnet. The /64 is coarser: another host in
// the same subnet passes the public-path check over IPv6 (the endpoint checks still hold); the
// locker narrows it to the exact /128s at run time.
func (r *registry) ipv6Sources(cfn awsec2.CfnInstance) []string {
	stack := awscdk.Stack_Of(cfn)
	var out []string
	var addrs any
	if v := cfn.Ipv6Addresses(); v != nil {
		addrs = stack.Resolve(v)
	}
	if list, ok := addrs.([]any); ok {
		for _, e := range list {
			m, _ := e.(map[string]any)
			if a, ok := m["ipv6Address"].(string); ok {
				out = append(out, a+"/128")
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if n := cfn.Ipv6AddressCount(); n != nil && *n > 0 {
		if _, sn, _ := r.subnet(*cfn.SubnetId()); sn != nil {
			if s, ok := sn.(awsec2.Subnet); ok && s != nil {
				return []string{*awscdk.Fn_Select(jsii.Number(0), s.SubnetIpv6CidrBlocks())}
			}
		}
	}
	return nil
}

// roleLock is the single lock of one role, filled by every instance that uses the role.
type roleLock struct {
	stack   awscdk.Stack
	policy  awsiam.CfnPolicy
	src     []string
	vpcs    []string
	holders []string
}

// produce renders the document when CloudFormation values are resolved, after every aspect ran.
type produce struct{ rl *roleLock }

func (p *produce) Produce(awscdk.IResolveContext) interface{} {
	doc, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: p.rl.src, VPCs: p.rl.vpcs}, lockpolicy.Options{IsToken: IsToken})
	if err != nil {
		// Every address was validated when it was added; reaching this is a bug, not input.
		panic(fmt.Sprintf("lock: render lock for %v: %v", p.rl.holders, err))
	}
	return doc.Map()
}

type everything struct {
	scope string
	opts  Options
	reg   *registry
}

// Visit implements awscdk.IAspect.
func (a *everything) Visit(n constructs.IConstruct) {
	switch c := n.(type) {
	case awsec2.Instance:
		if a.reg.owner(*c.Node().Path()) != a {
			return
		}
		if err := a.lockInstance(c); err != nil {
			awscdk.Annotations_Of(c).AddError(jsii.String(err.Error()))
		}
	case awsec2.CfnInstance:
		if _, l2 := c.Node().Scope().(awsec2.Instance); l2 {
			return // locked through its awsec2.Instance
		}
		if a.reg.owner(*c.Node().Path()) != a {
			return
		}
		if err := a.lockRawInstance(c); err != nil {
			awscdk.Annotations_Of(c).AddError(jsii.String(err.Error()))
		}
	case awsautoscaling.AutoScalingGroup:
		if a.reg.owner(*c.Node().Path()) != a {
			return
		}
		if err := a.lockGroup(c); err != nil {
			awscdk.Annotations_Of(c).AddError(jsii.String(err.Error()))
		}
	}
}

func (a *everything) lockInstance(inst awsec2.Instance) error {
	return a.lockCfnInstance(inst.Instance(), refOfRole(inst.Role()), inst)
}

// lockRawInstance locks an AWS::EC2::Instance written as a CfnInstance (not inside an
// awsec2.Instance): its role is found through its instance profile, in the same stack.
func (a *everything) lockRawInstance(cfn awsec2.CfnInstance) error {
	if cfn.IamInstanceProfile() == nil {
		return nil // no instance role, nothing to steal
	}
	stack := awscdk.Stack_Of(cfn)
	path := *cfn.Node().Path()
	profileID := refID(stack, cfn.IamInstanceProfile())
	if profileID == "" {
		return fmt.Errorf("defenders lock: the instance profile of %s is not defined in this stack; lock its role with lock.New", path)
	}
	var role awsiam.CfnRole
	for _, n := range *stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		p, ok := n.(awsiam.CfnInstanceProfile)
		if !ok || logicalID(stack, p) != profileID {
			continue
		}
		for _, r := range *p.Roles() {
			roleID := refID(stack, r)
			for _, m := range *stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
				if c, ok := m.(awsiam.CfnRole); ok && logicalID(stack, c) == roleID {
					role = c
				}
			}
		}
	}
	if role == nil {
		return fmt.Errorf("defenders lock: the role of %s (through instance profile %s) is not defined in this stack; lock it with lock.New", path, profileID)
	}
	return a.lockCfnInstance(cfn, refOfCfnRole(role), cfn)
}

// refID is the logical id that a {"Ref": id} token points to, or "".
func refID(stack awscdk.Stack, v *string) string {
	if v == nil {
		return ""
	}
	m, _ := stack.Resolve(*v).(map[string]any)
	id, _ := m["Ref"].(string)
	return id
}

func logicalID(stack awscdk.Stack, e awscdk.CfnElement) string {
	id, _ := stack.Resolve(stack.GetLogicalId(e)).(string)
	return id
}

// lockCfnInstance puts the instance's addresses, in the aspect's mode, on its role's lock.
func (a *everything) lockCfnInstance(cfn awsec2.CfnInstance, role roleRef, holder constructs.Construct) error {
	if _, ok := a.reg.exemption(role); ok {
		return nil
	}
	a.reg.mu.Lock()
	a.reg.scan(holder)
	a.reg.mu.Unlock()
	path := *holder.Node().Path()
	vpc, public := a.reg.vpcOfSubnet(*cfn.SubnetId())
	var src, vpcs []string
	beforeLaunch := false
	switch a.opts.Mode {
	case InstancePublicIP:
		if vpc != nil && !public {
			return fmt.Errorf("defenders lock: %s is in a private subnet and has no public IP to lock to; "+
				"use lock mode %s or %s (lock.Everything(scope, &lock.Options{Mode: ...}))", path, NatEgress, VpcEndpointsOnly)
		}
		src, vpcs = []string{hostCIDR(cfn.AttrPublicIp())}, []string{*cfn.AttrVpcId()}
	case ElasticIP:
		if vpc != nil && !public {
			return fmt.Errorf("defenders lock: %s is in a private subnet; an Elastic IP would not carry its traffic; use %s", path, NatEgress)
		}
		eip := awsec2.NewCfnEIP(holder, jsii.String("LockEip"), &awsec2.CfnEIPProps{Domain: jsii.String("vpc")})
		awsec2.NewCfnEIPAssociation(holder, jsii.String("LockEipAssociation"), &awsec2.CfnEIPAssociationProps{
			AllocationId: eip.AttrAllocationId(), InstanceId: cfn.Ref(),
		})
		src = []string{hostCIDR(eip.AttrPublicIp())}
		if vpc != nil {
			vpcs, beforeLaunch = []string{*vpc.VpcId()}, true
		} else {
			vpcs = []string{*cfn.AttrVpcId()}
		}
	case NatEgress, VpcEndpointsOnly:
		if vpc == nil {
			return fmt.Errorf("defenders lock: the VPC of %s is not defined in this app, so mode %s cannot find it; "+
				"lock the role with lock.New and explicit VPC ids and addresses", path, a.opts.Mode)
		}
		vpcs, beforeLaunch = []string{*vpc.VpcId()}, true
		if a.opts.Mode == NatEgress {
			ips, err := a.natIPs(vpc)
			if err != nil {
				return fmt.Errorf("defenders lock: %s: %w", path, err)
			}
			src = ips
		}
	}
	if a.opts.Mode != VpcEndpointsOnly {
		// Dual stack: IPv6 calls leave from the instance's own IPv6 addresses, in every mode.
		src = append(src, a.reg.ipv6Sources(cfn)...)
	}
	rl, err := a.add(role, holder, src, vpcs, path)
	if err != nil {
		return err
	}
	if beforeLaunch {
		// The lock does not reference the instance: create it first, so there is no unlocked window.
		cfn.Node().AddDependency(rl.policy) // DependsOn (CfnResource.AddDependency is deprecated; its successor is missing from v2.240)
	}
	return nil
}

func (a *everything) lockGroup(asg awsautoscaling.AutoScalingGroup) error {
	path := *asg.Node().Path()
	a.reg.mu.Lock()
	a.reg.scan(asg)
	a.reg.mu.Unlock()
	role, err := a.groupRole(asg)
	if err != nil {
		return fmt.Errorf("defenders lock: %s: %w", path, err)
	}
	if role == nil {
		return nil // no instance role, nothing to lock
	}
	ref := refOfRole(role)
	if _, ok := a.reg.exemption(ref); ok {
		return nil
	}
	if a.opts.Mode != NatEgress && a.opts.Mode != VpcEndpointsOnly {
		return fmt.Errorf("defenders lock: %s is an Auto Scaling group: its instances' addresses are not known at synth time, "+
			"so mode %s cannot be expressed; use %s or %s, or let the locker manage the role (IAM path /defenders/)",
			path, a.opts.Mode, NatEgress, VpcEndpointsOnly)
	}
	cfn, _ := asg.Node().DefaultChild().(awsautoscaling.CfnAutoScalingGroup)
	var vpc awsec2.Vpc
	if cfn != nil && cfn.VpcZoneIdentifier() != nil && len(*cfn.VpcZoneIdentifier()) > 0 {
		vpc, _ = a.reg.vpcOfSubnet(*(*cfn.VpcZoneIdentifier())[0])
	}
	if vpc == nil {
		return fmt.Errorf("defenders lock: the VPC of %s is not defined in this app; lock its role with lock.New", path)
	}
	var src []string
	if a.opts.Mode == NatEgress {
		if src, err = a.natIPs(vpc); err != nil {
			return fmt.Errorf("defenders lock: %s: %w", path, err)
		}
	}
	rl, err := a.add(ref, asg, src, []string{*vpc.VpcId()}, path)
	if err != nil {
		return err
	}
	if cfn != nil {
		cfn.Node().AddDependency(rl.policy) // DependsOn (CfnResource.AddDependency is deprecated; its successor is missing from v2.240)
	}
	return nil
}

// groupRole is the instance role of an Auto Scaling group, from the group itself or from its
// launch template.
func (a *everything) groupRole(asg awsautoscaling.AutoScalingGroup) (role awsiam.IRole, err error) {
	if r, err := asgRole(asg); err == nil {
		return r, nil
	}
	cfn, _ := asg.Node().DefaultChild().(awsautoscaling.CfnAutoScalingGroup)
	if cfn == nil {
		return nil, fmt.Errorf("no CfnAutoScalingGroup")
	}
	spec := awscdk.Stack_Of(asg).Resolve(cfn.LaunchTemplate())
	for _, lt := range a.reg.lts {
		id := awscdk.Stack_Of(lt).Resolve(lt.LaunchTemplateId())
		if m, ok := spec.(map[string]any); ok && fmt.Sprint(m["launchTemplateId"]) == fmt.Sprint(id) {
			return lt.Role(), nil
		}
	}
	return nil, fmt.Errorf("cannot find the launch template of the group")
}

// asgRole calls asg.Role(), which throws (a jsii panic) when the group uses a launch template.
func asgRole(asg awsautoscaling.AutoScalingGroup) (r awsiam.IRole, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("group has no role of its own: %v", p)
		}
	}()
	return asg.Role(), nil
}

func (a *everything) natIPs(vpc awsec2.Vpc) ([]string, error) {
	if len(a.opts.NatIPs) > 0 {
		return a.opts.NatIPs, nil
	}
	var ips []string
	for _, s := range *vpc.PublicSubnets() {
		if eip, ok := s.Node().TryFindChild(jsii.String("EIP")).(awsec2.CfnEIP); ok && eip != nil {
			ips = append(ips, hostCIDR(eip.AttrPublicIp()))
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("mode %s: VPC %s has no NAT gateway with an Elastic IP; give the addresses in Options.NatIPs",
			NatEgress, *vpc.Node().Path())
	}
	return ips, nil
}

// add puts addresses on the role's lock, creating the lock (in the holder's stack) on first use.
func (a *everything) add(role roleRef, holder constructs.IConstruct, src, vpcs []string, path string) (*roleLock, error) {
	if _, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: src, VPCs: vpcs}, lockpolicy.Options{IsToken: IsToken}); err != nil {
		return nil, fmt.Errorf("defenders lock: %s: %w", path, err)
	}
	stack := awscdk.Stack_Of(holder)
	key := role.key
	a.reg.mu.Lock()
	defer a.reg.mu.Unlock()
	rl, ok := a.reg.locks[key]
	if !ok {
		rl = &roleLock{stack: stack}
		id := "DefendersLock" + sanitize(role.path)
		rl.policy = awsiam.NewCfnPolicy(stack, jsii.String(id), &awsiam.CfnPolicyProps{
			PolicyName:     jsii.String(LockPolicyName),
			PolicyDocument: awscdk.Lazy_UncachedAny(&produce{rl: rl}, nil),
			Roles:          &[]*string{role.name},
		})
		a.reg.locks[key] = rl
	} else if *rl.stack.Node().Addr() != *stack.Node().Addr() {
		return nil, fmt.Errorf("defenders lock: role %s is shared by %s (stack %s) and %v (stack %s); "+
			"one lock cannot span stacks: keep the instances of a role in one stack, or let the locker manage the role",
			role.path, path, *stack.StackName(), rl.holders, *rl.stack.StackName())
	}
	rl.src = append(rl.src, src...)
	rl.vpcs = append(rl.vpcs, vpcs...)
	rl.holders = append(rl.holders, path)
	sort.Strings(rl.holders)
	return rl, nil
}

// hostCIDR turns an IPv4 address attribute (a token) into "<address>/32" with Fn::Join, so the
// lock names a single host explicitly instead of relying on IAM's default prefix for bare
// addresses (and so that IPv4 and IPv6 entries in one list are never ambiguous).
func hostCIDR(addr *string) string {
	return *awscdk.Fn_Join(jsii.String(""), &[]*string{addr, jsii.String("/32")})
}

func sanitize(path string) string {
	var b strings.Builder
	for _, r := range path {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
