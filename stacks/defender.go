package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/battleground"
	"github.com/defenders-cdk/defenders/constructs/defender"
)

// DefenderProps configures a stack with one Defender instance (matt or luke).
type DefenderProps struct {
	awscdk.StackProps
	Config       Config
	Battleground battleground.Battleground
	// Lock locks the instance role to the instance's own network position.
	Lock bool
	// RolePath is the IAM path of the instance role ("/" when empty).
	RolePath string
}

// DefenderStack holds one Defender.
type DefenderStack struct {
	awscdk.Stack
	Defender defender.Defender
}

// NewDefender creates a stack named id with one instance named id. "matt" is the unlocked
// control; "luke" is locked.
func NewDefender(scope constructs.Construct, id string, props *DefenderProps) (*DefenderStack, error) {
	st := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	d, err := defender.New(st, id, &defender.Props{
		VPC:             props.Battleground.VPC(),
		SecurityGroup:   props.Battleground.SSHGroup(),
		InstanceType:    props.Config.InstanceType,
		ManagedPolicies: props.Config.ManagedPolicies,
		Lock:            props.Lock,
		RolePath:        props.RolePath,
		Trust:           props.Config.LockTrust(),
	})
	if err != nil {
		return nil, err
	}
	suppress(d.Instance(),
		nag("AwsSolutions-EC28", "Basic 5-minute monitoring is kept; 1-minute detailed monitoring costs about USD 2.10 per instance-month and adds nothing to a credential-theft demo."),
		nag("AwsSolutions-EC29", "Matt and Luke are disposable demo instances; termination protection would make `cdk destroy` fail and leave them running."))
	var applies []any
	for _, p := range props.Config.ManagedPolicies {
		applies = append(applies, "Policy::arn:<AWS::Partition>:iam::aws:policy/"+p)
	}
	if len(applies) > 0 {
		s := nag("AwsSolutions-IAM4", "The seed design gives the instance an AWS managed policy (AmazonEC2ReadOnlyAccess) on purpose: the demo shows what stolen read-only credentials can do. Chosen with defenders:managedPolicies.")
		s.AppliesTo = &applies
		suppress(d.Role(), s)
	}
	// For the demo: `aws ec2-instance-connect ssh --instance-id <InstanceId>`. Not exported (export
	// names are global per account and region).
	awscdk.NewCfnOutput(st, jsii.String("InstanceId"), &awscdk.CfnOutputProps{
		Value: d.Instance().InstanceId(), Description: jsii.String(id + "'s instance (EC2 Instance Connect)"),
	})
	awscdk.NewCfnOutput(st, jsii.String("PublicIp"), &awscdk.CfnOutputProps{
		Value: d.Instance().InstancePublicIp(), Description: jsii.String(id + "'s public IPv4 address"),
	})
	return &DefenderStack{Stack: st, Defender: d}, nil
}
