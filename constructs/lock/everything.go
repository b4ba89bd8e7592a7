package lock

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Mode says which network position a lock admits for public-internet calls. Every mode also
// admits the instance's own calls through VPC endpoints of its VPC, calls AWS services make on
// its behalf and what the app trusts (Options.Trust), and denies everything else (see
// internal/lockpolicy). The values are lockpolicy's Mode values: Everything and ForInstance
// write the mode on the role as the tag LockModeTagKey, and the locker renders the same mode.
//
// Dual stack: in every mode but VPCEndpointsOnly, an instance with IPv6 addresses is also locked
// to them, since its IPv6 calls leave from its own addresses: to the explicit addresses
// (Ipv6Addresses) as /128s, or, when the subnet assigns them (Ipv6AddressCount, or the subnet's
// AssignIpv6AddressOnCreation, which CDK sets on every subnet of a dual-stack VPC), to the
// subnet's first IPv6 CIDR (a /64: Fn::Select 0 of the subnet's Ipv6CidrBlocks), because
// CloudFormation has no attribute for the addresses EC2 then picks. The /64 admits every host of
// the subnet over IPv6 (the endpoint checks still hold); the locker narrows it to the instance's
// /128s at run time. Only subnets of an awsec2.Vpc of the app have a /64 the lock can name.
type Mode string

const (
	// InstancePublicIP locks to the instance's auto-assigned public IPv4 (Fn::GetAtt PublicIp).
	// Stops: stolen credentials used anywhere else. Costs: nothing extra, but the lock is attached
	// after launch (a few seconds unlocked) and goes stale on stop/start (new address: the instance
	// locks itself out, which fails closed; the locker repairs it). Needs an instance that gets a
	// public IPv4: an instance in a private or isolated subnet, in a public subnet that maps no
	// public IPv4 (a dual-stack subnet, by CDK's default) or with AssociatePublicIpAddress false
	// has none, and CloudFormation would fail at deploy; such an instance is an error at synth
	// that suggests the modes that fit (ElasticIP, NATEgress when the subnet routes to a NAT
	// gateway, VPCEndpointsOnly).
	InstancePublicIP Mode = Mode(lockpolicy.ModeInstancePublicIP)
	// ElasticIP allocates an Elastic IP, associates it with the instance and locks to it. The lock
	// does not reference the instance, so it is attached before launch and survives stop/start.
	// Fits a public subnet whether or not it maps public IPv4 addresses; not a private subnet
	// (its traffic would leave through the NAT gateway, not the Elastic IP).
	// Costs: USD 0.005/hour per public IPv4 address (the same as an auto-assigned one).
	ElasticIP Mode = Mode(lockpolicy.ModeElasticIP)
	// NATEgress is for instances in private subnets that reach AWS through NAT gateways: the lock
	// admits the VPC's NAT gateway addresses (Bengtson's "locked to the subnet/AZ"). Attached
	// before launch, survives stop/start. Weaker: any host behind the same NAT gateways passes
	// the public-path check. For an imported VPC (Vpc.fromLookup, Vpc.fromVpcAttributes) the NAT
	// gateways are not in the construct tree: give their addresses in Options.NATIPs.
	// Costs: the NAT gateways (about USD 33/month each plus USD 0.045/GB).
	NATEgress Mode = Mode(lockpolicy.ModeNATEgress)
	// VPCEndpointsOnly admits no public address at all: only calls through VPC endpoints of the
	// instance's VPC, from the instance itself (aws:Ec2InstanceSourcePrivateIPv4). Attached before
	// launch, survives stop/start, the strongest mode. Works on VPCs of the app and imported ones.
	// Costs: an interface endpoint per service (about USD 7.30/month per AZ plus USD 0.01/GB);
	// gateway endpoints (S3, DynamoDB) are free.
	VPCEndpointsOnly Mode = Mode(lockpolicy.ModeVPCEndpointsOnly)
)

// LockPolicyName is the name of the inline policy that Everything and ForInstance attach.
const LockPolicyName = contract.LockPolicyName

// Options configures Everything.
type Options struct {
	// Mode is the lock mode for every instance in the scope. Default InstancePublicIP.
	Mode Mode
	// NATIPs are the NAT gateway public addresses (literal or tokens) for NATEgress, needed when
	// the VPC is imported and its NAT gateways cannot be found in the construct tree. When set,
	// they replace the NAT gateways found in the tree.
	NATIPs []string
	// Trust is what the app trusts besides each instance's own position, rendered into every
	// lock of the scope (see Trust). Default: nothing. A role locked by several Everything calls
	// gets the union of their Trust.
	Trust Trust
}

func (o Options) validate() error {
	if _, err := lockpolicy.ParseMode(string(o.Mode)); err != nil {
		return fmt.Errorf("lock: Options.Mode: %w", err)
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
	if _, err := o.Trust.policy(); err != nil {
		return fmt.Errorf("lock: Options.Trust: %w", err)
	}
	return nil
}

// Everything locks every EC2 instance with an instance role in scope, and every Auto Scaling
// group where the lock can be expressed at synth time (NATEgress, VPCEndpointsOnly), including
// constructs added after the call and those in nested stacks. Roles shared by several instances
// get one lock (the inline policy LockPolicyName) that lists every instance's address; each
// locked role that is a CfnRole of the lock's stack is tagged LockModeTagKey = the mode (an
// imported role cannot be tagged; the locker then uses its default reading). A role opts out
// only with Exempt.
//
// Instances are found as awsec2.Instance, as raw CfnInstances (their role through their
// instance profile, in the same stack) and in Auto Scaling groups; the subnet is read from
// SubnetId or from the primary network interface (DeviceIndex 0, where CDK puts it when
// AssociatePublicIpAddress is set). VPCs are found in the construct tree: awsec2.Vpc and
// imported VPCs (Vpc.fromLookup, Vpc.fromVpcAttributes). Every lock also admits opts.Trust.
//
// Calls on nested scopes win: Everything(app, public IP) plus Everything(someInstance, EIP)
// gives someInstance an Elastic IP lock and everything else a public IP lock.
// Problems become error annotations on the construct, so `cdk synth` fails, names it and says
// what to do: an instance that will have no public IPv4 in InstancePublicIP mode, a mode that
// needs a VPC the tree does not hold, a role shared across stacks or by instances in two modes,
// a role that lock.ForInstance (or lock.New with the name LockPolicyName) already locks, and an
// instance whose shape cannot be read (a token NetworkInterfaces list, no primary interface).
// The aspect never panics. Invalid options are returned as an error, before anything is added.
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
	trust, _ := o.Trust.policy() // validated above
	reg := registryOf(scope)
	a := &everything{scope: *scope.Node().Path(), opts: o, trust: trust, reg: reg}
	reg.mu.Lock()
	reg.aspects = append(reg.aspects, a)
	reg.mu.Unlock()
	awscdk.Aspects_Of(scope).Add(a, &awscdk.AspectOptions{Priority: awscdk.AspectPriority_MUTATING()})
	return nil
}
