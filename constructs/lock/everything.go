package lock

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"

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
	// NATEgress is for instances in private subnets that reach AWS through NAT gateways: the lock
	// admits the VPC's NAT gateway addresses (Bengtson's "locked to the subnet/AZ"). Attached
	// before launch, survives stop/start. Weaker: any host behind the same NAT gateways passes
	// the public-path check. Costs: the NAT gateways (about USD 33/month each plus USD 0.045/GB).
	NATEgress Mode = "nat-egress"
	// VPCEndpointsOnly admits no public address at all: only calls through VPC endpoints of the
	// instance's VPC, from the instance itself (aws:Ec2InstanceSourcePrivateIPv4). Attached before
	// launch, survives stop/start, the strongest mode. Costs: an interface endpoint per service
	// (about USD 7.30/month per AZ plus USD 0.01/GB); gateway endpoints (S3, DynamoDB) are free.
	VPCEndpointsOnly Mode = "vpc-endpoints-only"
)

// LockPolicyName is the name of the inline policy that Everything attaches.
const LockPolicyName = contract.LockPolicyName

// Options configures Everything.
type Options struct {
	// Mode is the lock mode for every instance in the scope. Default InstancePublicIP.
	Mode Mode
	// NATIPs are the NAT gateway public addresses (literal or tokens) for NATEgress, needed when
	// the VPC is imported and its NAT gateways cannot be found in the construct tree.
	NATIPs []string
}

func (o Options) validate() error {
	switch o.Mode {
	case InstancePublicIP, ElasticIP, NATEgress, VPCEndpointsOnly:
	default:
		return fmt.Errorf("lock: Options.Mode %q is not one of %s, %s, %s, %s", o.Mode,
			InstancePublicIP, ElasticIP, NATEgress, VPCEndpointsOnly)
	}
	if len(o.NATIPs) > 0 && o.Mode != NATEgress {
		return fmt.Errorf("lock: Options.NATIPs is only used with mode %s", NATEgress)
	}
	// Validate literal NAT addresses now, so that a typo fails here and not at deploy time.
	if len(o.NATIPs) > 0 {
		if _, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: o.NATIPs}, lockpolicy.Options{IsToken: IsToken}); err != nil {
			return fmt.Errorf("lock: Options.NATIPs: %w", err)
		}
	}
	return nil
}

// Everything locks every EC2 instance with an instance role in scope, and every Auto Scaling
// group where the lock can be expressed at synth time (NATEgress, VPCEndpointsOnly), including
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
