// Command seedport is a line-for-line Go port of the TypeScript reference app
// (../shared/bench/ts-reference/app.ts): the seed's three stacks (battleground, matt, luke) and nothing
// else. It is not part of the product; scripts/bench-synth.sh (make bench) times it against the compiled
// TypeScript app to measure what the Go bindings cost for equal work. With -nag it adds cdk-nag's
// AwsSolutions pack, as TS_NAG=1 does for the TypeScript app.
package main

import (
	"flag"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func main() {
	nag := flag.Bool("nag", false, "add cdk-nag's AwsSolutions pack (verbose), like TS_NAG=1 for the TypeScript app")
	flag.Parse()
	defer jsii.Close()

	app := awscdk.NewApp(nil)
	ip := os.Getenv("SSH_CIDR")
	if ip == "" {
		ip = "203.0.113.10/32"
	}
	bg := awscdk.NewStack(app, jsii.String("battleground"), nil)
	vpc := awsec2.NewVpc(bg, jsii.String("defendersVPC"), &awsec2.VpcProps{MaxAzs: jsii.Number(2), NatGateways: jsii.Number(0)})
	sg := awsec2.NewSecurityGroup(bg, jsii.String("defenderDemo"), &awsec2.SecurityGroupProps{
		Vpc: vpc, SecurityGroupName: jsii.String("SSH incoming"),
		Description: jsii.String("SSH Incoming on current public ip"), AllowAllOutbound: jsii.Bool(true),
	})
	awscdk.Tags_Of(sg).Add(jsii.String("Name"), jsii.String("dynamicIncomingSSHClient"), nil)
	sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String(ip)), awsec2.Port_Tcp(jsii.Number(22)), jsii.String("Ssh incoming"), nil)
	awscdk.NewCfnOutput(bg, jsii.String("sgid"), &awscdk.CfnOutputProps{Value: sg.SecurityGroupId(), ExportName: jsii.String("dynamicIncomingSSHClient")})

	for _, name := range []string{"matt", "luke"} {
		st := awscdk.NewStack(app, jsii.String(name), nil)
		hsg := awsec2.SecurityGroup_FromSecurityGroupId(st, jsii.String(name+" Security Group"), awscdk.Fn_ImportValue(jsii.String("dynamicIncomingSSHClient")), nil)
		role := awsiam.NewRole(st, jsii.String(name+"instancerole"), &awsiam.RoleProps{
			AssumedBy:       awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
			ManagedPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AmazonEC2ReadOnlyAccess"))},
		})
		inst := awsec2.NewInstance(st, jsii.String(name), &awsec2.InstanceProps{
			MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil), InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")),
			Role: role, Vpc: vpc, SecurityGroup: hsg, VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
			RequireImdsv2: jsii.Bool(true),
		})
		if name == "luke" {
			p := awsiam.NewPolicy(st, jsii.String("callerBasedPolicy"), nil)
			s := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Actions: jsii.Strings("*"), Effect: awsiam.Effect_DENY, Resources: jsii.Strings("*")})
			s.AddCondition(jsii.String("NotIpAddress"), map[string]any{"aws:SourceIp": []any{inst.InstancePublicIp()}})
			p.AddStatements(s)
			p.AttachToRole(role)
		}
	}
	if *nag {
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	}
	app.Synth(nil)
}
