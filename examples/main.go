// Command examples is a CDK app written the way an outside user would write it: it imports the
// Defenders constructs as a library, builds a VPC with public, private-with-NAT and isolated
// subnets, puts instances in each, locks every instance role with one call, and adds the
// detector and the locker (their Lambdas are built from the Defenders module's own source).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/constructs/guard"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/constructs/locker"
)

func main() {
	app := awscdk.NewApp(nil)
	err := build(app)
	if err == nil {
		// Guard: synthesizes, then judges the templates it wrote; `cdk synth` fails on open
		// SSH/RDP, IMDSv1, unlocked EC2 roles and crossed locks, naming the rule and the construct.
		err = guard.Synth(app)
	}
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples:", err)
		os.Exit(1)
	}
}

// build adds the workload and security stacks to app.
func build(app awscdk.App) error {
	stack := awscdk.NewStack(app, jsii.String("workload"), nil)

	// The detector and the locker in a stack of their own; both return an error (invalid props,
	// a failed Lambda build) instead of panicking.
	security := awscdk.NewStack(app, jsii.String("security"), nil)
	// What the whole app trusts besides each instance: interface endpoints in a shared-services
	// VPC (reached over Transit Gateway). The locks, the locker and the detector get the same.
	trust := lock.Trust{SharedVPCEndpoints: []string{"vpce-0bbbb2222cccc3333"}}
	det, err := detector.New(security, "Detector", &detector.Props{
		AlertEmail: "secops@example.com",
		Trust:      trust,
		// Report, without enforcing anything, what an endpoints-only lock would deny.
		Shadow: &detector.Shadow{Mode: lock.VPCEndpointsOnly},
	})
	if err != nil {
		return err
	}
	if _, err := locker.New(security, "Locker", &locker.Props{AlarmTopicARN: *det.Topic().TopicArn(), Trust: trust}); err != nil {
		return err
	}

	// One call locks every instance role in the app, including those added below and in nested
	// stacks; the default mode locks each instance to its own public IP.
	if err := lock.Everything(app, nil); err != nil {
		return err
	}
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(1),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("app"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(24)},
			{Name: jsii.String("data"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)},
		},
	})
	// The isolated subnets reach AWS only through endpoints.
	vpc.AddInterfaceEndpoint(jsii.String("Sts"), &awsec2.InterfaceVpcEndpointOptions{Service: awsec2.InterfaceVpcEndpointAwsService_STS()})
	vpc.AddGatewayEndpoint(jsii.String("S3"), &awsec2.GatewayVpcEndpointOptions{Service: awsec2.GatewayVpcEndpointAwsService_S3()})

	newInstance := func(id string, subnets awsec2.SubnetType) awsec2.Instance {
		return awsec2.NewInstance(stack, jsii.String(id), &awsec2.InstanceProps{
			Vpc:           vpc,
			VpcSubnets:    &awsec2.SubnetSelection{SubnetType: subnets},
			InstanceType:  awsec2.NewInstanceType(jsii.String("t4g.nano")),
			MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(&awsec2.AmazonLinux2023ImageSsmParameterProps{CpuType: awsec2.AmazonLinuxCpuType_ARM_64}),
			RequireImdsv2: jsii.Bool(true),
		})
	}
	newInstance("Web", awsec2.SubnetType_PUBLIC) // default: its own public IP

	// A public instance with a stable address: Elastic IP mode, locked before launch.
	edge := newInstance("Edge", awsec2.SubnetType_PUBLIC)
	if err := lock.Everything(edge, &lock.Options{Mode: lock.ElasticIP}); err != nil {
		return err
	}
	// A private instance behind the NAT gateway.
	worker := newInstance("Worker", awsec2.SubnetType_PRIVATE_WITH_EGRESS)
	if err := lock.Everything(worker, &lock.Options{Mode: lock.NATEgress}); err != nil {
		return err
	}
	// An isolated instance: VPC endpoints only, its own VPC's and the shared ones.
	vault := newInstance("Vault", awsec2.SubnetType_PRIVATE_ISOLATED)
	if err := lock.Everything(vault, &lock.Options{Mode: lock.VPCEndpointsOnly, Trust: trust}); err != nil {
		return err
	}
	// An Auto Scaling group in the private subnets, from a launch template (launch
	// configurations are in maintenance mode) with its own role.
	fleetRole := awsiam.NewRole(stack, jsii.String("FleetRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
	})
	template := awsec2.NewLaunchTemplate(stack, jsii.String("FleetTemplate"), &awsec2.LaunchTemplateProps{
		InstanceType:  awsec2.NewInstanceType(jsii.String("t4g.nano")),
		MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(&awsec2.AmazonLinux2023ImageSsmParameterProps{CpuType: awsec2.AmazonLinuxCpuType_ARM_64}),
		RequireImdsv2: jsii.Bool(true),
		Role:          fleetRole,
	})
	fleet := awsautoscaling.NewAutoScalingGroup(stack, jsii.String("Fleet"), &awsautoscaling.AutoScalingGroupProps{
		Vpc:            vpc,
		VpcSubnets:     &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		LaunchTemplate: template,
		MinCapacity:    jsii.Number(1),
		MaxCapacity:    jsii.Number(3),
	})
	return lock.Everything(fleet, &lock.Options{Mode: lock.NATEgress})
}
