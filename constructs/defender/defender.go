// Package defender provides the Defender construct: an EC2 instance with its own role, IMDSv2
// required and an encrypted root volume, optionally locked to its own network position (Luke) or
// deliberately left unlocked as the control (Matt).
package defender

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/annotate"
	"github.com/defenders-cdk/defenders/constructs/lock"
)

// DefaultManagedPolicies is attached to the role when Props.ManagedPolicies is nil, as in the seed.
var DefaultManagedPolicies = []string{"AmazonEC2ReadOnlyAccess"}

// Props configures a Defender.
type Props struct {
	// VPC is where the instance runs. Required.
	VPC awsec2.IVpc
	// SecurityGroup is attached to the instance. Required (use the battleground's SSH group).
	SecurityGroup awsec2.ISecurityGroup
	// InstanceType, e.g. "t3.micro" (the default). Graviton types (t4g.*) get an arm64 image.
	InstanceType string
	// ManagedPolicies are AWS managed policy names for the role. nil means
	// DefaultManagedPolicies; an empty, non-nil slice means none.
	ManagedPolicies []string
	// Lock attaches a lock (see package lock) to the role after the instance exists.
	Lock bool
	// VPCSubnets selects the subnets. Default: public subnets, which the lock needs (it locks
	// to the instance's public IP).
	VPCSubnets *awsec2.SubnetSelection
	// KeyPairName is an existing EC2 key pair for SSH. Default: none (use EC2 Instance Connect).
	KeyPairName string
	// RootVolumeGiB is the size of the encrypted gp3 root volume. Default 8.
	RootVolumeGiB int
	// RolePath is the IAM path of the role. Default "/". Put a locked instance's role under
	// the locker's path ("/defenders/") and the locker keeps its lock true when the address
	// changes (stop/start).
	RolePath string
	// Trust is the app's trusted egress prefixes and shared VPC endpoints, rendered into the lock
	// (see lock.Trust). Default: none.
	Trust lock.Trust
}

// Defender is an instance with its own role, and its lock when Props.Lock is set.
type Defender interface {
	constructs.Construct
	// Instance is the EC2 instance.
	Instance() awsec2.Instance
	// Role is the instance role.
	Role() awsiam.IRole
	// Lock is the lock on Role, or nil when Props.Lock is false.
	Lock() lock.Lock
}

type defender struct {
	constructs.Construct
	inst awsec2.Instance
	role awsiam.IRole
	lock lock.Lock
}

func (d *defender) Instance() awsec2.Instance { return d.inst }
func (d *defender) Role() awsiam.IRole        { return d.role }
func (d *defender) Lock() lock.Lock           { return d.lock }

var (
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	rolePathRE     = regexp.MustCompile(`^/([A-Za-z0-9+=,.@_-]+/)*$`)
)

// Validate checks props and returns an error that names the offending field.
func (p *Props) Validate() error {
	switch {
	case p.VPC == nil:
		return fmt.Errorf("defender: Props.VPC is required")
	case p.SecurityGroup == nil:
		return fmt.Errorf("defender: Props.SecurityGroup is required")
	}
	return p.validateScalars()
}

// validateScalars checks the plain Go fields of props.
func (p *Props) validateScalars() error {
	switch {
	case p.InstanceType != "" && !instanceTypeRE.MatchString(p.InstanceType):
		return fmt.Errorf("defender: Props.InstanceType %q is not an EC2 instance type such as t3.micro", p.InstanceType)
	case p.RootVolumeGiB < 0 || p.RootVolumeGiB > 16384:
		return fmt.Errorf("defender: Props.RootVolumeGiB %d is out of range 8..16384", p.RootVolumeGiB)
	case p.RolePath != "" && !rolePathRE.MatchString(p.RolePath):
		return fmt.Errorf("defender: Props.RolePath %q is not an IAM path such as /defenders/", p.RolePath)
	case p.RootVolumeGiB != 0 && p.RootVolumeGiB < 8:
		return fmt.Errorf("defender: Props.RootVolumeGiB %d is smaller than the Amazon Linux 2023 image (8 GiB)", p.RootVolumeGiB)
	}
	for i, name := range p.ManagedPolicies {
		if name == "" {
			return fmt.Errorf("defender: Props.ManagedPolicies[%d] is empty", i)
		}
	}
	return nil
}

// New creates a Defender. It returns an error, and creates nothing, when props are invalid.
func New(scope constructs.Construct, id string, props *Props) (Defender, error) {
	if props == nil {
		return nil, fmt.Errorf("defender %q: props are required", id)
	}
	if err := props.Validate(); err != nil {
		return nil, fmt.Errorf("defender %q: %w", id, err)
	}
	d := &defender{}
	constructs.NewConstruct_Override(d, scope, jsii.String(id))

	itype := props.InstanceType
	if itype == "" {
		itype = "t3.micro"
	}
	policies := props.ManagedPolicies
	if policies == nil {
		policies = DefaultManagedPolicies
	}
	rolePath := props.RolePath
	if rolePath == "" {
		rolePath = "/"
	}
	var managed []awsiam.IManagedPolicy
	for _, name := range policies {
		managed = append(managed, awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String(name)))
	}
	// No RoleName: CloudFormation generates a unique one, so two apps or two stacks never collide.
	role := awsiam.NewRole(d, jsii.String(id+"instancerole"), &awsiam.RoleProps{
		AssumedBy:       awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		ManagedPolicies: &managed,
		Description:     jsii.String(fmt.Sprintf("Instance role of %s (Defenders)", id)),
		Path:            jsii.String(rolePath),
	})
	d.role = role

	it := awsec2.NewInstanceType(jsii.String(itype))
	cpu := awsec2.AmazonLinuxCpuType_X86_64
	if it.Architecture() == awsec2.InstanceArchitecture_ARM_64 {
		cpu = awsec2.AmazonLinuxCpuType_ARM_64
	}
	subnets := props.VPCSubnets
	if subnets == nil {
		subnets = &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC}
	}
	size := props.RootVolumeGiB
	if size == 0 {
		size = 8
	}
	ip := &awsec2.InstanceProps{
		Vpc:           props.VPC,
		VpcSubnets:    subnets,
		SecurityGroup: props.SecurityGroup,
		InstanceType:  it,
		MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(&awsec2.AmazonLinux2023ImageSsmParameterProps{CpuType: cpu}),
		Role:          role,
		// IMDSv2 only: a session token is required, so SSRF-style GETs cannot read credentials.
		RequireImdsv2: jsii.Bool(true),
		BlockDevices: &[]*awsec2.BlockDevice{{
			DeviceName: jsii.String("/dev/xvda"),
			Volume: awsec2.BlockDeviceVolume_Ebs(jsii.Number(float64(size)), &awsec2.EbsDeviceOptions{
				Encrypted:           jsii.Bool(true),
				VolumeType:          awsec2.EbsDeviceVolumeType_GP3,
				DeleteOnTermination: jsii.Bool(true),
			}),
		}},
	}
	if props.KeyPairName != "" {
		ip.KeyPair = awsec2.KeyPair_FromKeyPairName(d, jsii.String("KeyPair"), jsii.String(props.KeyPairName))
	}
	d.inst = awsec2.NewInstance(d, jsii.String(id), ip)

	if props.Lock {
		l, err := lock.ForInstanceWithTrust(d, "lock", d.inst, role, props.VPC, props.Trust)
		if err != nil {
			return nil, fmt.Errorf("defender %q: %w", id, err)
		}
		d.lock = l
	} else if broad := BroadPolicies(policies); len(broad) > 0 {
		annotate.Warning(role, "defenders:broadUnlockedRole", fmt.Sprintf(
			"the unlocked instance role has %s: credentials stolen from this instance (IMDS, SSRF) work from anywhere with those rights, "+
				"which turns the demo's control into a real breach. Use a read-only policy (AmazonEC2ReadOnlyAccess) or set Lock",
			strings.Join(broad, ", ")))
	}
	return d, nil
}

// BroadPolicies returns the AWS managed policies in names that grant far more than a demo
// needs: AdministratorAccess, PowerUserAccess, IAMFullAccess and every *FullAccess policy.
func BroadPolicies(names []string) []string {
	var out []string
	for _, n := range names {
		base := n[strings.LastIndex(n, "/")+1:]
		if base == "AdministratorAccess" || base == "PowerUserAccess" || strings.HasSuffix(base, "FullAccess") {
			out = append(out, n)
		}
	}
	return out
}
