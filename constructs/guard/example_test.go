package guard_test

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/guard"
)

// ExampleSynth synthesizes an app whose security group opens SSH to the whole internet: the
// guard prints its findings to stderr and returns an error, so `cdk synth` fails. In an app's
// main: if err := guard.Synth(app); err != nil { log.Fatal(err) }.
func ExampleSynth() {
	dir, _ := os.MkdirTemp("", "guard-example")
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	stack := awscdk.NewStack(app, jsii.String("web"), nil)
	vpc := awsec2.NewVpc(stack, jsii.String("VPC"), &awsec2.VpcProps{
		MaxAzs: jsii.Number(1), NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC},
		},
	})
	sg := awsec2.NewSecurityGroup(stack, jsii.String("SSH"), &awsec2.SecurityGroupProps{Vpc: vpc})
	sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(22)), jsii.String("SSH from anywhere"), nil)

	err := guard.Synth(app)
	fmt.Println("synth failed:", err != nil)

	// The same verdict, as data, from the cloud assembly that Synth wrote.
	res, _ := guard.Check(dir)
	for _, f := range res.Findings {
		fmt.Println(f.Rule, f.Error, f.Path)
	}
	// Output:
	// synth failed: true
	// DEF-SG-1 true web/SSH/Resource
}
