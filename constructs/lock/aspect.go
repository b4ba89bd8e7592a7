package lock

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// The Everything aspect: finding instances, Auto Scaling groups and raw CfnInstances, and
// attaching one lock per role.

// roleLock is the single lock of one role, filled by every instance that uses the role.
type roleLock struct {
	stack   awscdk.Stack
	policy  awsiam.CfnPolicy
	mode    Mode
	src     []string
	vpcs    []string
	trust   lockpolicy.Trust
	holders []string
}

// produce renders the document when CloudFormation values are resolved, after every aspect ran.
type produce struct{ rl *roleLock }

func (p *produce) Produce(awscdk.IResolveContext) interface{} {
	doc, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: p.rl.src, VPCs: p.rl.vpcs, Trust: p.rl.trust}, lockpolicy.Options{IsToken: IsToken})
	if err != nil {
		// Every address was validated when it was added; reaching this is a bug, not input.
		panic(fmt.Sprintf("lock: render lock for %v: %v", p.rl.holders, err))
	}
	return doc.Map()
}

type everything struct {
	scope string
	opts  Options
	trust lockpolicy.Trust // opts.Trust, validated
	reg   *registry
}

// Visit implements awscdk.IAspect. It never panics: a construct the aspect cannot read (an
// unexpected shape, a jsii call that fails) becomes an error annotation on that construct, so
// that synth fails with its path and what to do instead of a stack trace.
func (a *everything) Visit(n constructs.IConstruct) {
	defer func() {
		if p := recover(); p != nil {
			a.unexpected(n, p)
		}
	}()
	a.visit(n)
}

// unexpected records a panic met while visiting n as an error annotation on n. If even that
// fails, it panics with n's path: an instance must never be left unlocked silently.
func (a *everything) unexpected(n constructs.IConstruct, p any) {
	path := safePath(n)
	defer func() {
		if q := recover(); q != nil {
			panic(fmt.Sprintf("defenders lock: cannot lock %s (%v), nor record the error on it (%v)", path, p, q))
		}
	}()
	annotateError(n, fmt.Errorf("defenders lock: cannot lock %s: the aspect met a shape it does not expect (%v); "+
		"lock its role with lock.New (explicit addresses and VPC ids), or leave it unlocked with lock.Exempt and a reason", path, p))
}

// safePath is n's construct path, or a placeholder when even that cannot be read.
func safePath(n constructs.IConstruct) (path string) {
	defer func() {
		if recover() != nil {
			path = "<a construct whose path cannot be read>"
		}
	}()
	return *n.Node().Path()
}

func (a *everything) visit(n constructs.IConstruct) {
	switch c := n.(type) {
	case awsec2.Instance:
		if a.reg.owner(*c.Node().Path()) != a {
			return
		}
		if err := a.lockInstance(c); err != nil {
			annotateError(c, err)
		}
	case awsec2.CfnInstance:
		if _, l2 := c.Node().Scope().(awsec2.Instance); l2 {
			return // locked through its awsec2.Instance
		}
		if a.reg.owner(*c.Node().Path()) != a {
			return
		}
		if err := a.lockRawInstance(c); err != nil {
			annotateError(c, err)
		}
	case awsautoscaling.AutoScalingGroup:
		if a.reg.owner(*c.Node().Path()) != a {
			return
		}
		if err := a.lockGroup(c); err != nil {
			annotateError(c, err)
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

// logicalID is e's logical id as the template writes it: e.LogicalId() honours an override
// (CfnInclude keeps every imported resource's original id that way), stack.GetLogicalId would
// give the id CDK allocated before it.
func logicalID(stack awscdk.Stack, e awscdk.CfnElement) string {
	id, _ := stack.Resolve(e.LogicalId()).(string)
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
	stack := awscdk.Stack_Of(cfn)
	nic, err := primaryInterface(stack, cfn)
	if err != nil {
		return fmt.Errorf("defenders lock: %s: %w", path, err)
	}
	place := a.reg.subnets.lookup(nic.subnetID) // nil: a subnet outside the tree's VPCs, or none
	var src, vpcs []string
	beforeLaunch := false
	switch a.opts.Mode {
	case InstancePublicIP:
		if err := checkPublicIPv4(path, nic, place); err != nil {
			return err
		}
		src, vpcs = []string{hostCIDR(cfn.AttrPublicIp())}, []string{*cfn.AttrVpcId()}
	case ElasticIP:
		if place != nil && place.kind != subnetPublic {
			return fmt.Errorf("defenders lock: %s is in a private subnet; an Elastic IP would not carry its traffic; use lock mode %s or %s %s",
				path, NATEgress, VPCEndpointsOnly, modeHint)
		}
		eip := awsec2.NewCfnEIP(holder, jsii.String("LockEip"), &awsec2.CfnEIPProps{Domain: jsii.String("vpc")})
		awsec2.NewCfnEIPAssociation(holder, jsii.String("LockEipAssociation"), &awsec2.CfnEIPAssociationProps{
			AllocationId: eip.AttrAllocationId(), InstanceId: cfn.Ref(),
		})
		src = []string{hostCIDR(eip.AttrPublicIp())}
		if place != nil {
			vpcs, beforeLaunch = []string{*place.vpc.VpcId()}, true
		} else {
			vpcs = []string{*cfn.AttrVpcId()}
		}
	case NATEgress, VPCEndpointsOnly:
		if place == nil {
			// The subnet is not in the construct tree (a parameter, an export: templates brought
			// in with CfnInclude): the instance names its VPC once it exists, so the lock
			// references it and is attached after launch, as in public-IP mode.
			if a.opts.Mode == NATEgress && len(a.opts.NATIPs) == 0 {
				return fmt.Errorf("defenders lock: the VPC of %s is not in the construct tree (neither an awsec2.Vpc of this app nor an imported VPC), "+
					"so mode %s cannot find its NAT gateways; give their public addresses in Options.NATIPs", path, NATEgress)
			}
			vpcs, src = []string{*cfn.AttrVpcId()}, nil
			if a.opts.Mode == NATEgress {
				src = a.opts.NATIPs
			}
			break
		}
		vpcs, beforeLaunch = []string{*place.vpc.VpcId()}, true
		if a.opts.Mode == NATEgress {
			ips, err := a.natIPs(place.vpc)
			if err != nil {
				return fmt.Errorf("defenders lock: %s: %w", path, err)
			}
			src = ips
		}
	}
	if a.opts.Mode != VPCEndpointsOnly {
		// Dual stack: IPv6 calls leave from the instance's own IPv6 addresses, in every mode.
		src = append(src, ipv6Sources(stack, cfn, nic, place)...)
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
	if a.opts.Mode != NATEgress && a.opts.Mode != VPCEndpointsOnly {
		return fmt.Errorf("defenders lock: %s is an Auto Scaling group: its instances' addresses are not known at synth time, "+
			"so mode %s cannot be expressed; use %s or %s, or let the locker manage the role (IAM path /defenders/)",
			path, a.opts.Mode, NATEgress, VPCEndpointsOnly)
	}
	cfn, _ := asg.Node().DefaultChild().(awsautoscaling.CfnAutoScalingGroup)
	var place *placement
	if cfn != nil && cfn.VpcZoneIdentifier() != nil && len(*cfn.VpcZoneIdentifier()) > 0 {
		if first := (*cfn.VpcZoneIdentifier())[0]; first != nil {
			place = a.reg.subnets.lookup(*first)
		}
	}
	if place == nil {
		return fmt.Errorf("defenders lock: the VPC of %s is not in the construct tree (neither an awsec2.Vpc of this app nor an imported VPC); "+
			"lock its role with lock.New", path)
	}
	vpc := place.vpc
	var src []string
	if a.opts.Mode == NATEgress {
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

// natIPs are the NAT gateway addresses of vpc for NATEgress: Options.NATIPs, or the Elastic IPs
// of the NAT gateways CDK put in the public subnets of a VPC of the app.
func (a *everything) natIPs(vpc awsec2.IVpc) ([]string, error) {
	if len(a.opts.NATIPs) > 0 {
		return a.opts.NATIPs, nil
	}
	if _, owned := vpc.(awsec2.Vpc); !owned {
		return nil, fmt.Errorf("mode %s: VPC %s (%s) is imported, so its NAT gateways are not in the construct tree; give their public addresses in Options.NATIPs",
			NATEgress, *vpc.VpcId(), *vpc.Node().Path())
	}
	var ips []string
	for _, s := range *vpc.PublicSubnets() {
		if eip, ok := s.Node().TryFindChild(jsii.String("EIP")).(awsec2.CfnEIP); ok && eip != nil {
			ips = append(ips, hostCIDR(eip.AttrPublicIp()))
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("mode %s: VPC %s has no NAT gateway with an Elastic IP; give the addresses in Options.NATIPs",
			NATEgress, *vpc.Node().Path())
	}
	return ips, nil
}

// add puts addresses on the role's lock, creating the lock (in the holder's stack) on first use
// and tagging the role with the mode. It fails, naming both, when the role already has a lock
// of the same name from lock.ForInstance or lock.New, is shared across stacks, or is locked in
// another mode for another instance.
func (a *everything) add(role roleRef, holder constructs.IConstruct, src, vpcs []string, path string) (*roleLock, error) {
	if _, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: src, VPCs: vpcs, Trust: a.trust}, lockpolicy.Options{IsToken: IsToken}); err != nil {
		return nil, fmt.Errorf("defenders lock: %s: %w", path, err)
	}
	stack := awscdk.Stack_Of(holder)
	key := role.key
	mode := a.opts.Mode
	a.reg.mu.Lock()
	defer a.reg.mu.Unlock()
	rl, ok := a.reg.locks[key]
	switch {
	case !ok:
		if other, clash := a.reg.named[key+"\x00"+LockPolicyName]; clash {
			return nil, fmt.Errorf("defenders lock: role %s of %s already has the lock %q from %s (lock.ForInstance or lock.New); "+
				"lock.Everything would attach a second policy of that name to it, and one would overwrite the other at deploy: "+
				"remove one of the two (lock.Everything locks %s in mode %s)", role.path, path, LockPolicyName, other, path, mode)
		}
		rl = &roleLock{stack: stack, mode: mode}
		id := "DefendersLock" + sanitize(role.path)
		rl.policy = awsiam.NewCfnPolicy(stack, jsii.String(id), &awsiam.CfnPolicyProps{
			PolicyName:     jsii.String(LockPolicyName),
			PolicyDocument: awscdk.Lazy_UncachedAny(&produce{rl: rl}, nil),
			Roles:          &[]*string{role.name},
		})
		a.reg.locks[key] = rl
		tagMode(role, stack, mode)
	case *rl.stack.Node().Addr() != *stack.Node().Addr():
		return nil, fmt.Errorf("defenders lock: role %s is shared by %s (stack %s) and %v (stack %s); "+
			"one lock cannot span stacks: keep the instances of a role in one stack, or let the locker manage the role",
			role.path, path, *stack.StackName(), rl.holders, *rl.stack.StackName())
	case rl.mode != mode:
		return nil, fmt.Errorf("defenders lock: role %s is locked in two modes: %s for %s and %s for %v; a role's lock has one mode "+
			"(the role's tag %s, which the locker reads): lock the instances of a role in one mode, or give them separate roles",
			role.path, mode, path, rl.mode, rl.holders, LockModeTagKey)
	}
	rl.src = append(rl.src, src...)
	rl.vpcs = append(rl.vpcs, vpcs...)
	rl.holders = append(rl.holders, path)
	sort.Strings(rl.holders)
	if !a.trust.Empty() {
		union, err := lockpolicy.Trust{
			EgressPrefixes:     append(rl.trust.EgressPrefixes, a.trust.EgressPrefixes...),
			SharedVPCEndpoints: append(rl.trust.SharedVPCEndpoints, a.trust.SharedVPCEndpoints...),
		}.Validate(IsToken)
		if err != nil { // both parts were validated; reaching this is a bug
			return nil, fmt.Errorf("defenders lock: %s: trust: %w", path, err)
		}
		rl.trust = union
		rl.policy.AddMetadata(jsii.String(TrustMetadataKey), trustMetadata(union))
	}
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
