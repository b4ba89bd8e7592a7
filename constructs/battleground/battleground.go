// Package battleground provides the Battleground construct: a VPC with public subnets and an SSH
// security group whose only ingress is a short list of CIDRs resolved by the app (normally the
// workstation's own public address). It never opens SSH to 0.0.0.0/0 or ::/0.
package battleground

import (
	"fmt"
	"net/netip"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/annotate"
	"github.com/defenders-cdk/defenders/internal/checkip"
)

// SeedExportName is the CloudFormation export name of the SSH security group id in the seed
// design. Export names are global in an account and region, so the construct exports nothing
// unless Props.ExportName is set; the Defenders app sets it (with its prefix).
const SeedExportName = "dynamicIncomingSSHClient"

// Props configures a Battleground. The zero value is valid: 2 AZs, no NAT gateway, no SSH ingress.
type Props struct {
	// MaxAzs is how many Availability Zones the VPC spans. Default 2; 1 to 6.
	MaxAzs int
	// NATGateways adds private subnets with egress through this many NAT gateways (each costs
	// about USD 33/month plus USD 0.045/GB in us-east-1). Default 0: public subnets only.
	NATGateways int
	// SSHCIDRs are the only sources allowed to reach tcp/22. Empty means no SSH ingress at all.
	// Each prefix must be valid, canonical (no host bits) and narrower than /0.
	SSHCIDRs []netip.Prefix
	// ExportName, when set, exports the SSH group id under this CloudFormation export name (for
	// Fn::ImportValue from other apps). Export names are unique per account and region, so there
	// is no default: two battlegrounds must not claim the same name. Default: no export.
	ExportName string
	// SSHWarning, when set, is attached to the SSH group as an acknowledgeable warning with the
	// id "defenders:sshIngress" (for example: the address lookup failed and the app failed
	// closed). `cdk synth --strict` turns it into a failure.
	SSHWarning string
	// NoFlowLogs turns off the VPC flow log. By default rejected traffic (probes against the SSH
	// group and anything else the security groups drop) is logged to a CloudWatch log group kept
	// for FlowLogRetentionDays; a quiet demo VPC writes a few MB a month (USD 0.50/GB ingested).
	NoFlowLogs bool
	// FlowLogRetentionDays is how long flow logs are kept. Default 30.
	FlowLogRetentionDays int
}

// Battleground is a VPC plus the SSH security group.
type Battleground interface {
	constructs.Construct
	// VPC is the battleground VPC.
	VPC() awsec2.IVpc
	// SSHGroup is the "SSH incoming" security group.
	SSHGroup() awsec2.ISecurityGroup
	// SSHCIDRs are the CIDRs that may reach tcp/22, as given in Props.
	SSHCIDRs() []netip.Prefix
}

type battleground struct {
	constructs.Construct
	vpc   awsec2.IVpc
	sg    awsec2.ISecurityGroup
	cidrs []netip.Prefix
}

func (b *battleground) VPC() awsec2.IVpc                { return b.vpc }
func (b *battleground) SSHGroup() awsec2.ISecurityGroup { return b.sg }
func (b *battleground) SSHCIDRs() []netip.Prefix {
	return append([]netip.Prefix(nil), b.cidrs...)
}

var retention = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS,
	365: awslogs.RetentionDays_ONE_YEAR,
}

// Validate checks props and returns an error that names the offending field.
func (p *Props) Validate() error {
	if p.MaxAzs < 0 || p.MaxAzs > 6 {
		return fmt.Errorf("battleground: Props.MaxAzs %d is out of range 1..6 (0 means the default, 2)", p.MaxAzs)
	}
	azs := p.MaxAzs
	if azs == 0 {
		azs = 2
	}
	if p.NATGateways < 0 || p.NATGateways > azs {
		return fmt.Errorf("battleground: Props.NATGateways %d is out of range 0..%d (one per AZ at most)", p.NATGateways, azs)
	}
	if _, ok := retention[p.FlowLogRetentionDays]; !ok && p.FlowLogRetentionDays != 0 {
		return fmt.Errorf("battleground: Props.FlowLogRetentionDays %d is not a CloudWatch Logs retention period (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)", p.FlowLogRetentionDays)
	}
	seen := map[netip.Prefix]bool{}
	for i, c := range p.SSHCIDRs {
		switch {
		case !c.IsValid():
			return fmt.Errorf("battleground: Props.SSHCIDRs[%d] is not a valid prefix", i)
		case c.Bits() == 0:
			return fmt.Errorf("battleground: Props.SSHCIDRs[%d] %s would open SSH to the whole internet; refused", i, c)
		case c.Masked() != c:
			return fmt.Errorf("battleground: Props.SSHCIDRs[%d] %s has host bits set (did you mean %s?)", i, c, c.Masked())
		case c.Addr().Is4In6() || c.Addr().Zone() != "":
			return fmt.Errorf("battleground: Props.SSHCIDRs[%d] %s: use a plain IPv4 or IPv6 prefix", i, c)
		case seen[c]:
			return fmt.Errorf("battleground: Props.SSHCIDRs[%d] %s is listed twice", i, c)
		}
		seen[c] = true
	}
	return nil
}

// New creates a Battleground. It returns an error, and creates nothing, when props are invalid.
func New(scope constructs.Construct, id string, props *Props) (Battleground, error) {
	if props == nil {
		props = &Props{}
	}
	if err := props.Validate(); err != nil {
		return nil, err
	}
	azs := props.MaxAzs
	if azs == 0 {
		azs = 2
	}
	b := &battleground{cidrs: append([]netip.Prefix(nil), props.SSHCIDRs...)}
	constructs.NewConstruct_Override(b, scope, jsii.String(id))

	subnets := []*awsec2.SubnetConfiguration{{
		Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24),
		MapPublicIpOnLaunch: jsii.Bool(true),
	}}
	if props.NATGateways > 0 {
		subnets = append(subnets, &awsec2.SubnetConfiguration{
			Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(24),
		})
	}
	b.vpc = awsec2.NewVpc(b, jsii.String("defendersVPC"), &awsec2.VpcProps{
		MaxAzs:              jsii.Number(float64(azs)),
		NatGateways:         jsii.Number(float64(props.NATGateways)),
		SubnetConfiguration: &subnets,
		// The default security group of the VPC gets no rules (feature flag
		// @aws-cdk/aws-ec2:restrictDefaultSecurityGroup), so nothing is open by accident.
		RestrictDefaultSecurityGroup: jsii.Bool(true),
	})
	if !props.NoFlowLogs {
		days := props.FlowLogRetentionDays
		if days == 0 {
			days = 30
		}
		lg := awslogs.NewLogGroup(b, jsii.String("FlowLogs"), &awslogs.LogGroupProps{
			Retention:     retention[days],
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		b.vpc.AddFlowLog(jsii.String("RejectedTraffic"), &awsec2.FlowLogOptions{
			TrafficType: awsec2.FlowLogTrafficType_REJECT,
			Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(lg, nil),
		})
	}

	sg := awsec2.NewSecurityGroup(b, jsii.String("defenderDemo"), &awsec2.SecurityGroupProps{
		Vpc:               b.vpc,
		SecurityGroupName: jsii.String("SSH incoming"),
		Description:       jsii.String("SSH Incoming on current public ip"),
		// Egress stays open: the instances call AWS APIs over the internet, which is what the lock
		// is about. Ingress is the attack surface and is limited below.
		AllowAllOutbound:     jsii.Bool(true),
		AllowAllIpv6Outbound: jsii.Bool(false),
	})
	awscdk.Tags_Of(sg).Add(jsii.String("Name"), jsii.String("dynamicIncomingSSHClient"), nil)
	for _, c := range props.SSHCIDRs {
		var peer awsec2.IPeer
		if c.Addr().Is6() {
			peer = awsec2.Peer_Ipv6(jsii.String(c.String()))
		} else {
			peer = awsec2.Peer_Ipv4(jsii.String(c.String()))
		}
		sg.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(22)), jsii.String("Ssh incoming"), jsii.Bool(false))
	}
	b.sg = sg

	if props.SSHWarning != "" {
		annotate.Warning(sg, "defenders:sshIngress", props.SSHWarning)
	}
	for _, c := range props.SSHCIDRs {
		if checkip.PrivateSource(c) {
			annotate.Warning(sg, "defenders:privateSshSource", fmt.Sprintf(
				"SSH source %s is a private range: it reaches the battleground's public instances only over a VPN, Direct Connect, "+
					"peering or a transit gateway into this VPC, never from the internet (a security group sees the public address of "+
					"internet traffic). If you meant your workstation, use its public address (make pin-ssh)", c))
		}
	}
	if props.ExportName != "" {
		awscdk.NewCfnOutput(b, jsii.String("sgid"), &awscdk.CfnOutputProps{
			Value:       sg.SecurityGroupId(),
			Description: jsii.String("Id of the SSH incoming security group, for other apps (Fn::ImportValue)"),
			ExportName:  jsii.String(props.ExportName),
		})
	}
	return b, nil
}
