package lock

import (
	"strings"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// The per-app registry shared by every Everything aspect and Exempt call, kept on the construct tree.

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
