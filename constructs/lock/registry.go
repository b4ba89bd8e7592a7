package lock

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// The per-app registry shared by every Everything aspect, ForInstance, New and Exempt call, kept
// on the construct tree.

// registry is the per-app state shared by every Everything aspect and Exempt call.
type registry struct {
	mu      sync.Mutex
	aspects []*everything
	exempt  map[string]string    // roleRef.key -> reason
	locks   map[string]*roleLock // roleRef.key -> its lock (Everything's)
	// named maps roleRef.key + "\x00" + policy name to the path of the lock (New, ForInstance)
	// that put a policy of that name on the role: a role has one policy of a name.
	named   map[string]string
	vpcs    []awsec2.IVpc // every VPC in the app (awsec2.Vpc and imported), found once
	lts     []awsec2.LaunchTemplate
	subnets *subnetIndex
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
	n := &registryNode{reg: &registry{exempt: map[string]string{}, locks: map[string]*roleLock{}, named: map[string]string{}}}
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

// claimName records that the lock at path puts a policy named name on role, or fails, naming
// both locks, when another lock of the app already did (two policies of one name on one role
// would overwrite each other at deploy).
func (r *registry) claimName(role roleRef, name, path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := role.key + "\x00" + name
	if other, ok := r.named[key]; ok {
		return fmt.Errorf("role %s already has a policy named %q from the lock %s; a second one (%s) would overwrite it at deploy: lock a role once",
			role.path, name, other, path)
	}
	if rl, ok := r.locks[role.key]; ok && name == LockPolicyName {
		return fmt.Errorf("role %s already has the lock %q from lock.Everything (for %s); a second one (%s) would overwrite it at deploy: lock a role once",
			role.path, name, strings.Join(rl.holders, ", "), path)
	}
	r.named[key] = path
	return nil
}

// scan finds every VPC and launch template of the app once (aspects run after construction).
func (r *registry) scan(c constructs.IConstruct) {
	if r.scanned {
		return
	}
	r.scanned = true
	var candidates []constructs.IConstruct
	for _, n := range *c.Node().Root().Node().FindAll(constructs.ConstructOrder_PREORDER) {
		switch x := n.(type) {
		case awsec2.Vpc:
			r.vpcs = append(r.vpcs, x)
		case awsec2.LaunchTemplate:
			r.lts = append(r.lts, x)
		default:
			if isPlainResource(n) {
				candidates = append(candidates, n)
			}
		}
	}
	for _, n := range candidates {
		if v, ok := importedVPC(n); ok {
			r.vpcs = append(r.vpcs, v)
		}
	}
	r.subnets = newSubnetIndex(r.vpcs)
}

// resourceIface is awscdk.Resource: jsii types a construct whose class aws-cdk-lib does not
// export (such as the VPC that Vpc.fromLookup and Vpc.fromVpcAttributes return) as the nearest
// exported class, awscdk.Resource.
var resourceIface = reflect.TypeOf((*awscdk.Resource)(nil)).Elem()

// isPlainResource reports whether n is a construct that jsii could only type as awscdk.Resource
// (its dynamic Go type is the proxy of awscdk.Resource itself): imported VPCs, subnets, roles
// and security groups are. Checked by Go type alone, without a call into jsii.
func isPlainResource(n constructs.IConstruct) bool {
	t := reflect.TypeOf(n)
	if t == nil || !t.Implements(resourceIface) {
		return false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() == resourceIface.PkgPath() && t.Name() == "jsiiProxy_Resource"
}

// importedVPC returns n as the imported VPC it is, if it is one: jsii types it as a plain
// Resource, so the VPC is recognised by asking for its VpcId (a construct without one makes
// the jsii call fail, which is recovered).
func importedVPC(n constructs.IConstruct) (vpc awsec2.IVpc, ok bool) {
	defer func() {
		if recover() != nil {
			vpc, ok = nil, false
		}
	}()
	jsii.UnsafeCast(n, &vpc)
	if id := vpc.VpcId(); id == nil || *id == "" {
		return nil, false
	}
	return vpc, true
}

// subnetKind is how a subnet reaches the internet, as its VPC classifies it.
type subnetKind int

const (
	subnetPublic   subnetKind = iota // a route to an internet gateway
	subnetPrivate                    // private with egress (CDK: PRIVATE_WITH_EGRESS), usually a NAT gateway
	subnetIsolated                   // no route out (CDK: PRIVATE_ISOLATED)
)

// placement is where a subnet is: its VPC, the subnet construct and its kind.
type placement struct {
	vpc    awsec2.IVpc
	subnet awsec2.ISubnet
	kind   subnetKind
}

// owned reports whether the VPC is an awsec2.Vpc of the app (not imported): its subnets' and
// NAT gateways' resources are in the construct tree.
func (p *placement) owned() bool {
	_, ok := p.vpc.(awsec2.Vpc)
	return ok
}

// subnetIndex maps subnet id tokens (or literal ids, for imported VPCs) to their placement.
type subnetIndex map[string]*placement

// newSubnetIndex indexes the subnets of vpcs; the first VPC that lists a subnet wins.
func newSubnetIndex(vpcs []awsec2.IVpc) *subnetIndex {
	idx := subnetIndex{}
	for _, v := range vpcs {
		for _, g := range []struct {
			subnets *[]awsec2.ISubnet
			kind    subnetKind
		}{{v.PublicSubnets(), subnetPublic}, {v.PrivateSubnets(), subnetPrivate}, {v.IsolatedSubnets(), subnetIsolated}} {
			if g.subnets == nil {
				continue
			}
			for _, s := range *g.subnets {
				if s == nil || s.SubnetId() == nil {
					continue
				}
				if _, dup := idx[*s.SubnetId()]; !dup {
					idx[*s.SubnetId()] = &placement{vpc: v, subnet: s, kind: g.kind}
				}
			}
		}
	}
	return &idx
}

// lookup returns the placement of the subnet whose id token is subnetID, or nil.
func (x *subnetIndex) lookup(subnetID string) *placement {
	if x == nil || subnetID == "" {
		return nil
	}
	return (*x)[subnetID]
}

// ipv6Sources are the IPv6 sources of a dual-stack instance: its explicit addresses as /128s,
// or, when its subnet assigns addresses (the instance asks for a number of them, or the subnet
// has AssignIpv6AddressOnCreation), the subnet's IPv6 /64: CloudFormation has no attribute for
// the addresses EC2 then picks. The /64 is coarser: the lock admits the whole /64, so another
// host in the same subnet passes the public-path check over IPv6 (the endpoint checks still
// hold); the locker narrows it to the exact /128s at run time. A subnet that is not an
// awsec2.Subnet of the app (imported) has no /64 the lock can name: its instances' IPv6 calls
// are denied (fail closed).
func ipv6Sources(stack awscdk.Stack, cfn awsec2.CfnInstance, nic nicInfo, place *placement) []string {
	var out []string
	addrs := nic.ipv6Addresses
	if addrs == nil && cfn.Ipv6Addresses() != nil {
		addrs = stack.Resolve(cfn.Ipv6Addresses())
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
	if place == nil {
		return nil
	}
	s, ok := place.subnet.(awsec2.Subnet)
	if !ok || s == nil {
		return nil
	}
	count := nic.ipv6Count
	if n := cfn.Ipv6AddressCount(); n != nil && *n > count {
		count = *n
	}
	if count > 0 || assignsIPv6(s) {
		// The whole /64 of the subnet: see the doc comment.
		return []string{*awscdk.Fn_Select(jsii.Number(0), s.SubnetIpv6CidrBlocks())}
	}
	return nil
}

// assignsIPv6 reports whether the subnet gives every instance an IPv6 address at launch
// (AssignIpv6AddressOnCreation literally true on its CfnSubnet).
func assignsIPv6(s awsec2.Subnet) bool {
	cfn, ok := s.Node().DefaultChild().(awsec2.CfnSubnet)
	if !ok || cfn == nil {
		return false
	}
	b, ok := cfn.AssignIpv6AddressOnCreation().(bool)
	return ok && b
}
