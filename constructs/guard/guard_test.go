package guard_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/guard"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

type world struct {
	stack awscdk.Stack
	vpc   awsec2.Vpc
	sg    awsec2.SecurityGroup
}

func instance(w *world, id string, imdsv2 bool) awsec2.Instance {
	return awsec2.NewInstance(w.stack, jsii.String(id), &awsec2.InstanceProps{
		Vpc: w.vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
		InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")), MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil),
		RequireImdsv2: jsii.Bool(imdsv2), SecurityGroup: w.sg,
	})
}

// good is a compliant app: IMDSv2, every role locked, SSH from one address.
func good(w *world) {
	w.sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String("203.0.113.10/32")), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
	instance(w, "Web", true)
	lock.Everything(w.stack, nil)
	edge := instance(w, "Edge", true)
	lock.Everything(edge, &lock.Options{Mode: lock.ElasticIP})
}

func TestGuard(t *testing.T) {
	cases := []struct {
		name    string
		build   func(w *world)
		errors  []string // substrings of expected error findings
		warning string   // substring of an expected warning
	}{
		{"a compliant app passes with no finding", good, nil, ""},
		{"SSH from 0.0.0.0/0 fails synth", func(w *world) {
			good(w)
			w.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
		}, []string{"allows SSH (22) from 0.0.0.0/0"}, ""},
		{"all ports from ::/0 fails synth", func(w *world) {
			good(w)
			w.sg.AddIngressRule(awsec2.Peer_AnyIpv6(), awsec2.Port_AllTraffic(), nil, nil)
		}, []string{"allows all ports from ::/0"}, ""},
		{"RDP from 0.0.0.0/0 through a standalone ingress rule fails synth", func(w *world) {
			good(w)
			awsec2.NewCfnSecurityGroupIngress(w.stack, jsii.String("Rdp"), &awsec2.CfnSecurityGroupIngressProps{
				GroupId: w.sg.SecurityGroupId(), IpProtocol: jsii.String("tcp"), FromPort: jsii.Number(3389), ToPort: jsii.Number(3389),
				CidrIp: jsii.String("0.0.0.0/0"),
			})
		}, []string{"allows RDP (3389) from 0.0.0.0/0"}, ""},
		{"a wide SSH CIDR is a warning", func(w *world) {
			good(w)
			w.sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String("10.0.0.0/16")), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
		}, nil, "allows SSH from 10.0.0.0/16"},
		{"HTTPS from anywhere is not a finding", func(w *world) {
			good(w)
			w.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), nil, nil)
		}, nil, ""},
		{"an instance that allows IMDSv1 fails synth", func(w *world) {
			good(w)
			instance(w, "Legacy", false)
		}, []string{"Legacy/Resource allows IMDSv1"}, ""},
		{"an EC2 role without a lock or exemption fails synth", func(w *world) {
			w.sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String("203.0.113.10/32")), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
			instance(w, "Naked", true)
		}, []string{"InstanceRole/Resource can be assumed by EC2 but has no lock"}, ""},
		{"an exempt role passes", func(w *world) {
			i := instance(w, "Control", true)
			lock.Exempt(i, "the unlocked control of the demo")
		}, nil, ""},
		{"a lock that admits another instance's address fails synth", func(w *world) {
			a := instance(w, "A", true)
			b := instance(w, "B", true)
			lock.New(w.stack, "WrongLock", &lock.Props{Role: a.Role(), SourceIPs: []string{*b.InstancePublicIp()}, VPCs: []string{*w.vpc.VpcId()}})
			lock.Exempt(b, "B is the control in this test")
		}, []string{"admits the public IP of instance B"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := cdktest.NewApp(t, nil)
			var asm *cdktest.Assembly
			cdktest.NoPanic(t, func() {
				w := &world{stack: awscdk.NewStack(app, jsii.String("s"), nil)}
				w.vpc = awsec2.NewVpc(w.stack, jsii.String("Vpc"), &awsec2.VpcProps{NatGateways: jsii.Number(0), MaxAzs: jsii.Number(1),
					SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC}}})
				w.sg = awsec2.NewSecurityGroup(w.stack, jsii.String("Sg"), &awsec2.SecurityGroupProps{Vpc: w.vpc})
				c.build(w)
				guard.Add(app)
				asm = cdktest.Synth(t, app)
			})
			errs := asm.Errors("defenders guard")
			if len(errs) != len(c.errors) {
				t.Fatalf("got %d guard errors, want %d: %v", len(errs), len(c.errors), errs)
			}
			for i, want := range c.errors {
				if !strings.Contains(errs[i].Data, want) {
					t.Errorf("error %q does not contain %q", errs[i].Data, want)
				}
				if !strings.Contains(errs[i].Data, "/") || errs[i].Path == "" {
					t.Errorf("finding does not name a construct path: %+v", errs[i])
				}
			}
			warns := asm.Warnings("defenders guard")
			switch {
			case c.warning == "" && len(warns) > 0:
				t.Errorf("unexpected warnings: %v", warns)
			case c.warning != "" && (len(warns) != 1 || !strings.Contains(warns[0].Data, c.warning)):
				t.Errorf("warnings = %v, want one containing %q", warns, c.warning)
			}
		})
	}
}
