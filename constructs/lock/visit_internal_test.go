package lock

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/test/cdktest"
)

// TestVisitTurnsEveryPanicIntoAnErrorAnnotation runs an aspect whose state is broken (no
// registry: every lookup dereferences nil) over each kind of construct it locks: synth must
// not panic, and each construct must carry an error annotation that names it and says what to do.
func TestVisitTurnsEveryPanicIntoAnErrorAnnotation(t *testing.T) {
	app := cdktest.NewApp(t, nil)
	var targets []constructs.IConstruct
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		stack := awscdk.NewStack(app, jsii.String("broken"), nil)
		vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{MaxAzs: jsii.Number(1), NatGateways: jsii.Number(0),
			SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC}}})
		image, size := awsec2.MachineImage_LatestAmazonLinux2023(nil), awsec2.NewInstanceType(jsii.String("t3.micro"))
		for _, build := range []func() constructs.IConstruct{
			func() constructs.IConstruct {
				return awsec2.NewInstance(stack, jsii.String("Instance"), &awsec2.InstanceProps{Vpc: vpc, InstanceType: size, MachineImage: image})
			},
			func() constructs.IConstruct {
				return awsec2.NewCfnInstance(stack, jsii.String("Raw"), &awsec2.CfnInstanceProps{ImageId: jsii.String("ami-0123456789abcdef0")})
			},
			func() constructs.IConstruct {
				return awsautoscaling.NewAutoScalingGroup(stack, jsii.String("Group"), &awsautoscaling.AutoScalingGroupProps{Vpc: vpc, InstanceType: size, MachineImage: image})
			},
		} {
			targets = append(targets, build())
		}
		awscdk.Aspects_Of(stack).Add(&everything{opts: Options{Mode: InstancePublicIP}}, nil) // reg is nil
		asm = cdktest.Synth(t, app)
	})
	for _, c := range targets {
		path := *c.Node().Path()
		t.Run(path+" carries an error annotation", func(t *testing.T) {
			for _, m := range asm.Errors("the aspect met a shape it does not expect") {
				if strings.TrimPrefix(m.Path, "/") == path && strings.Contains(m.Data, path) && strings.Contains(m.Data, "lock.New") {
					return
				}
			}
			t.Errorf("no error annotation naming %s; messages: %v", path, asm.Messages)
		})
	}
}
