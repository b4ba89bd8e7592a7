package stacks

import (
	"net/netip"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/battleground"
)

// BattlegroundProps configures the battleground stack.
type BattlegroundProps struct {
	awscdk.StackProps
	Config Config
	// SSHCIDRs are the resolved SSH sources (see internal/checkip.Resolve). Empty: no SSH ingress.
	SSHCIDRs []netip.Prefix
	// Warning, when set, is attached to the SSH group as a warning annotation (for example:
	// checkip failed, so the app failed closed). `cdk synth --strict` turns it into an error.
	Warning string
}

// BattlegroundStack holds the VPC and the SSH security group.
type BattlegroundStack struct {
	awscdk.Stack
	Battleground battleground.Battleground
}

// NewBattleground creates the "battleground" stack.
func NewBattleground(scope constructs.Construct, id string, props *BattlegroundProps) (*BattlegroundStack, error) {
	st := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	bg, err := battleground.New(st, "battleground", &battleground.Props{
		MaxAzs:      props.Config.MaxAzs,
		NATGateways: props.Config.NATGateways,
		SSHCIDRs:    props.SSHCIDRs,
		SSHWarning:  props.Warning,
		ExportName:  props.Config.ExportName(battleground.SeedExportName),
	})
	if err != nil {
		return nil, err
	}
	return &BattlegroundStack{Stack: st, Battleground: bg}, nil
}
