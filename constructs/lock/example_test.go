package lock_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
)

// ExampleEverything locks the role of every EC2 instance in an app with one call. The call may
// come before the instances exist: they are locked when the app is synthesized.
func ExampleEverything() {
	dir, _ := os.MkdirTemp("", "lock-example")
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	stack := awscdk.NewStack(app, jsii.String("workload"), nil)

	// The default mode, lock.InstancePublicIP, admits each instance's own public IPv4 address
	// (and its VPC's endpoints); lock.Options picks another mode.
	if err := lock.Everything(app, nil); err != nil {
		fmt.Println(err)
		return
	}
	vpc := exampleVPC(stack)
	for _, id := range []string{"Web", "Bastion"} {
		exampleInstance(stack, id, vpc)
	}
	app.Synth(nil)

	fmt.Println("lock policies:", len(exampleLocks(dir, "workload")))
	// Output:
	// lock policies: 2
}

// ExampleExempt leaves one instance's role deliberately unlocked, with a reason that reviewers
// see in the template (and that the guard and the review command accept for rule DEF-LOCK-1).
func ExampleExempt() {
	dir, _ := os.MkdirTemp("", "lock-example")
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	stack := awscdk.NewStack(app, jsii.String("workload"), nil)
	if err := lock.Everything(app, nil); err != nil {
		fmt.Println(err)
		return
	}
	vpc := exampleVPC(stack)
	exampleInstance(stack, "Web", vpc)
	scanner := exampleInstance(stack, "Scanner", vpc)
	if err := lock.Exempt(scanner, "calls AWS from every region through a rotating proxy"); err != nil {
		fmt.Println(err)
		return
	}
	app.Synth(nil)

	reason, exempt := lock.IsExempt(scanner.Role())
	fmt.Println("scanner exempt:", exempt, "-", reason)
	fmt.Println("lock policies:", len(exampleLocks(dir, "workload")))
	// Output:
	// scanner exempt: true - calls AWS from every region through a rotating proxy
	// lock policies: 1
}

// ExampleTrust gives every lock of an app what the app trusts besides each instance: a central
// egress range (calls that leave through a shared NAT) and an endpoint of a shared-services VPC.
// Both are validated when Everything is called and rendered into every lock; the lock's policy
// lists them in its Metadata for the review.
func ExampleTrust() {
	dir, _ := os.MkdirTemp("", "lock-example")
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	stack := awscdk.NewStack(app, jsii.String("workload"), nil)
	trust := lock.Trust{EgressPrefixes: []string{"192.0.2.0/24"}, SharedVPCEndpoints: []string{"vpce-0123456789abcdef0"}}
	if err := lock.Everything(app, &lock.Options{Trust: trust}); err != nil {
		fmt.Println(err)
		return
	}
	exampleInstance(stack, "Web", exampleVPC(stack))
	app.Synth(nil)

	for _, l := range exampleLocks(dir, "workload") {
		doc, _ := json.Marshal(l["PolicyDocument"])
		fmt.Println("trusted egress prefix in the lock:", strings.Contains(string(doc), `"192.0.2.0/24"`))
		fmt.Println("shared endpoint in the lock:", strings.Contains(string(doc), `"aws:SourceVpce":"vpce-0123456789abcdef0"`))
	}
	fmt.Println(lock.Everything(app, &lock.Options{Trust: lock.Trust{EgressPrefixes: []string{"10.0.0.0/8"}}}) != nil)
	// Output:
	// trusted egress prefix in the lock: true
	// shared endpoint in the lock: true
	// true
}

// exampleVPC is a VPC with public subnets only.
func exampleVPC(stack awscdk.Stack) awsec2.Vpc {
	return awsec2.NewVpc(stack, jsii.String("VPC"), &awsec2.VpcProps{
		MaxAzs: jsii.Number(2), NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC},
		},
	})
}

// exampleInstance is an instance with its own role in a public subnet of vpc.
func exampleInstance(stack awscdk.Stack, id string, vpc awsec2.IVpc) awsec2.Instance {
	return awsec2.NewInstance(stack, jsii.String(id), &awsec2.InstanceProps{
		Vpc:           vpc,
		InstanceType:  awsec2.NewInstanceType(jsii.String("t4g.nano")),
		MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(&awsec2.AmazonLinux2023ImageSsmParameterProps{CpuType: awsec2.AmazonLinuxCpuType_ARM_64}),
		RequireImdsv2: jsii.Bool(true),
	})
}

// exampleLocks returns the lock policies (AWS::IAM::Policy named lock.LockPolicyName) in the
// template of stack, as synthesized into dir.
func exampleLocks(dir, stack string) []map[string]any {
	b, err := os.ReadFile(filepath.Join(dir, stack+".template.json"))
	if err != nil {
		panic(err)
	}
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		panic(err)
	}
	var locks []map[string]any
	for _, r := range tpl.Resources {
		if r.Type == "AWS::IAM::Policy" && r.Properties["PolicyName"] == lock.LockPolicyName {
			locks = append(locks, r.Properties)
		}
	}
	return locks
}
