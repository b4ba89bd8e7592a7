package lock_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// world is a test app: a VPC with public, private-with-NAT and isolated subnets, and instances
// in each position. Everything is called BEFORE the instances exist, to prove that constructs
// added after the call are locked too.
type world struct {
	app   awscdk.App
	stack awscdk.Stack
	vpc   awsec2.Vpc
}

func newWorld(t *testing.T) *world {
	w := &world{app: cdktest.NewApp(t, nil)}
	cdktest.NoPanic(t, func() {
		w.stack = awscdk.NewStack(w.app, jsii.String("work"), nil)
		w.vpc = awsec2.NewVpc(w.stack, jsii.String("Vpc"), &awsec2.VpcProps{
			MaxAzs: jsii.Number(2), NatGateways: jsii.Number(1),
			SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
				{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC},
				{Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
				{Name: jsii.String("isolated"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
			},
		})
	})
	return w
}

func (w *world) instance(scope constructs.Construct, id string, subnet awsec2.SubnetType, role awsiam.IRole) awsec2.Instance {
	return awsec2.NewInstance(scope, jsii.String(id), &awsec2.InstanceProps{
		Vpc: w.vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: subnet},
		InstanceType:  awsec2.NewInstanceType(jsii.String("t3.micro")),
		MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(nil),
		RequireImdsv2: jsii.Bool(true),
		Role:          role,
	})
}

// lockOf returns the lock policy attached to the role of the instance with logical id prefix.
func lockOf(t *testing.T, tpl map[string]any, rolePrefix string) (string, map[string]any) {
	t.Helper()
	for id, p := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
		b, _ := json.Marshal(cdktest.Props(p)["Roles"])
		if strings.Contains(string(b), `"`+rolePrefix) && strings.HasPrefix(id, "DefendersLock") {
			return id, p
		}
	}
	t.Fatalf("no lock for role %s*; policies: %v", rolePrefix, cdktest.Keys(cdktest.Resources(tpl, "AWS::IAM::Policy")))
	return "", nil
}

func logicalID(t *testing.T, tpl map[string]any, typ, prefix string) string {
	t.Helper()
	for id := range cdktest.Resources(tpl, typ) {
		if strings.HasPrefix(id, prefix) {
			return id
		}
	}
	t.Fatalf("no %s %s*", typ, prefix)
	return ""
}

func dependsOn(r map[string]any, id string) bool {
	deps, _ := r["DependsOn"].([]any)
	for _, d := range deps {
		if d == id {
			return true
		}
	}
	return false
}

func docJSON(p map[string]any) string {
	b, _ := json.Marshal(cdktest.Props(p)["PolicyDocument"])
	return string(b)
}

// modesApp locks a VPC full of instances, one per mode, plus a shared role, an exempt bastion and
// an Auto Scaling group, and synthesizes it.
func modesApp(t *testing.T) *cdktest.Assembly {
	w := newWorld(t)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		if err := lock.Everything(w.app, nil); err != nil {
			t.Fatal(err)
		}
		shared := awsiam.NewRole(w.stack, jsii.String("SharedRole"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil)})
		w.instance(w.stack, "Web", awsec2.SubnetType_PUBLIC, nil)
		w.instance(w.stack, "SharedA", awsec2.SubnetType_PUBLIC, shared)
		w.instance(w.stack, "SharedB", awsec2.SubnetType_PUBLIC, shared)
		eip := w.instance(w.stack, "Eip", awsec2.SubnetType_PUBLIC, nil)
		nat := w.instance(w.stack, "Worker", awsec2.SubnetType_PRIVATE_WITH_EGRESS, nil)
		iso := w.instance(w.stack, "Vault", awsec2.SubnetType_PRIVATE_ISOLATED, nil)
		for c, m := range map[constructs.IConstruct]lock.Mode{eip: lock.ElasticIP, nat: lock.NATEgress, iso: lock.VPCEndpointsOnly} {
			if err := lock.Everything(c, &lock.Options{Mode: m}); err != nil {
				t.Fatal(err)
			}
		}
		exempt := w.instance(w.stack, "Bastion", awsec2.SubnetType_PUBLIC, nil)
		if err := lock.Exempt(exempt, "break-glass bastion, watched by the detector"); err != nil {
			t.Fatal(err)
		}
		asg := awsautoscaling.NewAutoScalingGroup(w.stack, jsii.String("Fleet"), &awsautoscaling.AutoScalingGroupProps{
			Vpc: w.vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
			InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")), MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil),
			RequireImdsv2: jsii.Bool(true),
		})
		if err := lock.Everything(asg, &lock.Options{Mode: lock.NATEgress}); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, w.app)
	})
	if errs := asm.Errors(""); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	return asm
}

func TestEverythingLocksEveryInstanceInItsMode(t *testing.T) {
	tpl := modesApp(t).Templates["work"]
	t.Run("the template matches the golden snapshot", func(t *testing.T) {
		cdktest.GoldenTemplate(t, "testdata/modes.template.json", tpl)
	})
	natEIP := logicalID(t, tpl, "AWS::EC2::EIP", "VpcpublicSubnet1EIP")

	t.Run("a public instance is locked to its own public IP after launch", func(t *testing.T) {
		web := logicalID(t, tpl, "AWS::EC2::Instance", "Web")
		_, p := lockOf(t, tpl, "WebInstanceRole")
		doc := docJSON(p)
		if !strings.Contains(doc, `{"Fn::GetAtt":["`+web+`","PublicIp"]}`) || !strings.Contains(doc, `{"Fn::GetAtt":["`+web+`","VpcId"]}`) {
			t.Fatalf("lock does not use Web's PublicIp and VpcId: %s", doc)
		}
	})
	t.Run("a shared role gets one lock listing every instance's address", func(t *testing.T) {
		_, p := lockOf(t, tpl, "SharedRole")
		doc := docJSON(p)
		for _, inst := range []string{"SharedA", "SharedB"} {
			id := logicalID(t, tpl, "AWS::EC2::Instance", inst)
			if !strings.Contains(doc, `{"Fn::GetAtt":["`+id+`","PublicIp"]}`) {
				t.Errorf("shared lock misses %s: %s", inst, doc)
			}
		}
		n := 0
		for id := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
			if strings.HasPrefix(id, "DefendersLock") && strings.Contains(id, "SharedRole") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("shared role has %d locks, want 1", n)
		}
	})
	t.Run("elastic IP mode allocates an EIP and locks before launch", func(t *testing.T) {
		lockID, p := lockOf(t, tpl, "EipInstanceRole")
		eip := logicalID(t, tpl, "AWS::EC2::EIP", "EipLockEip")
		if doc := docJSON(p); !strings.Contains(doc, `{"Fn::GetAtt":["`+eip+`","PublicIp"]}`) {
			t.Errorf("lock does not use the EIP: %s", doc)
		}
		inst := tpl["Resources"].(map[string]any)[logicalID(t, tpl, "AWS::EC2::Instance", "Eip")].(map[string]any)
		if !dependsOn(inst, lockID) {
			t.Errorf("instance does not depend on its lock: %v", inst["DependsOn"])
		}
		logicalID(t, tpl, "AWS::EC2::EIPAssociation", "EipLockEipAssociation")
	})
	t.Run("NAT egress mode locks to the VPC's NAT gateway address before launch", func(t *testing.T) {
		lockID, p := lockOf(t, tpl, "WorkerInstanceRole")
		if doc := docJSON(p); !strings.Contains(doc, `{"Fn::GetAtt":["`+natEIP+`","PublicIp"]}`) {
			t.Errorf("lock does not use the NAT EIP %s: %s", natEIP, doc)
		}
		inst := tpl["Resources"].(map[string]any)[logicalID(t, tpl, "AWS::EC2::Instance", "Worker")].(map[string]any)
		if !dependsOn(inst, lockID) {
			t.Errorf("instance does not depend on its lock")
		}
	})
	t.Run("VPC endpoints only mode admits no public address", func(t *testing.T) {
		lockID, p := lockOf(t, tpl, "VaultInstanceRole")
		doc := docJSON(p)
		if !strings.Contains(doc, "DenyPublicCallsFromAnyAddress") || strings.Contains(doc, "PublicIp") {
			t.Errorf("lock is not endpoints-only: %s", doc)
		}
		inst := tpl["Resources"].(map[string]any)[logicalID(t, tpl, "AWS::EC2::Instance", "Vault")].(map[string]any)
		if !dependsOn(inst, lockID) {
			t.Errorf("instance does not depend on its lock")
		}
	})
	t.Run("an exempt instance has no lock and its role says why", func(t *testing.T) {
		for id := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
			if strings.Contains(id, "Bastion") {
				t.Errorf("exempt bastion has lock %s", id)
			}
		}
		role := tpl["Resources"].(map[string]any)[logicalID(t, tpl, "AWS::IAM::Role", "BastionInstanceRole")].(map[string]any)
		if md, _ := role["Metadata"].(map[string]any); md[lock.ExemptMetadataKey] != "break-glass bastion, watched by the detector" {
			t.Errorf("role metadata = %v", role["Metadata"])
		}
		md, _ := role["Metadata"].(map[string]any)
		acks, _ := md[lock.AcknowledgeMetadataKey].([]any)
		if len(acks) != 1 || fmt.Sprint(acks[0]) != fmt.Sprint(map[string]any{"rule": "DEF-LOCK-1", "reason": "break-glass bastion, watched by the detector"}) {
			t.Errorf("role acknowledgements = %v", md[lock.AcknowledgeMetadataKey])
		}
	})
	t.Run("an Auto Scaling group in private subnets is locked to the NAT address before launch", func(t *testing.T) {
		lockID, p := lockOf(t, tpl, "FleetInstanceRole")
		if doc := docJSON(p); !strings.Contains(doc, natEIP) {
			t.Errorf("fleet lock does not use the NAT EIP: %s", doc)
		}
		g := tpl["Resources"].(map[string]any)[logicalID(t, tpl, "AWS::AutoScaling::AutoScalingGroup", "FleetASG")].(map[string]any)
		if !dependsOn(g, lockID) {
			t.Errorf("group does not depend on its lock")
		}
	})
}

func TestEverythingReachesIntoNestedStacks(t *testing.T) {
	w := newWorld(t)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		nested := awscdk.NewNestedStack(w.stack, jsii.String("Inner"), nil)
		w.instance(nested, "Deep", awsec2.SubnetType_PUBLIC, nil)
		if err := lock.Everything(w.app, nil); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, w.app)
	})
	for name, tpl := range asm.Templates {
		if strings.Contains(name, "Inner") {
			lockOf(t, tpl, "DeepInstanceRole")
			return
		}
	}
	t.Fatalf("no nested template in %v", cdktest.Keys(asm.Templates))
}

func TestEverythingRefusesWhatItCannotExpress(t *testing.T) {
	cases := []struct {
		name  string
		build func(w *world)
		want  string
	}{
		{"a private instance in public IP mode", func(w *world) {
			w.instance(w.stack, "Hidden", awsec2.SubnetType_PRIVATE_WITH_EGRESS, nil)
			lock.Everything(w.app, nil)
		}, "private subnet and has no public IP"},
		{"an Auto Scaling group in public IP mode", func(w *world) {
			awsautoscaling.NewAutoScalingGroup(w.stack, jsii.String("Fleet"), &awsautoscaling.AutoScalingGroupProps{
				Vpc: w.vpc, InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")),
				MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil), RequireImdsv2: jsii.Bool(true),
			})
			lock.Everything(w.app, nil)
		}, "Auto Scaling group"},
		{"a role shared across stacks", func(w *world) {
			role := awsiam.NewRole(w.stack, jsii.String("R"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil)})
			other := awscdk.NewStack(w.app, jsii.String("other"), nil)
			w.instance(w.stack, "One", awsec2.SubnetType_PUBLIC, role)
			w.instance(other, "Two", awsec2.SubnetType_PUBLIC, role)
			lock.Everything(w.app, nil)
		}, "one lock cannot span stacks"},
	}
	for _, c := range cases {
		t.Run(c.name+" is an error annotation that names it", func(t *testing.T) {
			w := newWorld(t)
			var asm *cdktest.Assembly
			cdktest.NoPanic(t, func() {
				c.build(w)
				asm = cdktest.Synth(t, w.app)
			})
			if len(asm.Errors(c.want)) == 0 {
				t.Fatalf("no error containing %q; messages: %v", c.want, asm.Messages)
			}
		})
	}
}

func TestOptionsAndExemptionsAreValidated(t *testing.T) {
	w := newWorld(t)
	cdktest.NoPanic(t, func() {
		if err := lock.Everything(w.app, &lock.Options{Mode: "everywhere"}); err == nil || !strings.Contains(err.Error(), "everywhere") {
			t.Errorf("unknown mode: err = %v", err)
		}
		if err := lock.Everything(w.app, &lock.Options{Mode: lock.NATEgress, NATIPs: []string{"0.0.0.0/0"}}); err == nil {
			t.Errorf("NATIPs 0.0.0.0/0 accepted")
		}
		if err := lock.Everything(w.app, &lock.Options{Mode: lock.ElasticIP, NATIPs: []string{"198.51.100.1"}}); err == nil {
			t.Errorf("NATIPs accepted outside NAT mode")
		}
		inst := w.instance(w.stack, "I", awsec2.SubnetType_PUBLIC, nil)
		if err := lock.Exempt(inst, "  "); err == nil {
			t.Errorf("exemption without a reason accepted")
		}
	})
}

func TestEverythingLocksRawCfnInstancesThroughTheirInstanceProfile(t *testing.T) {
	w := newWorld(t)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		if err := lock.Everything(w.app, nil); err != nil {
			t.Fatal(err)
		}
		raw := func(id string, exempt bool) {
			role := awsiam.NewCfnRole(w.stack, jsii.String(id+"Role"), &awsiam.CfnRoleProps{
				AssumeRolePolicyDocument: map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
					"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}},
			})
			if exempt {
				role.AddMetadata(jsii.String(lock.ExemptMetadataKey), "legacy host, replaced next quarter")
			}
			profile := awsiam.NewCfnInstanceProfile(w.stack, jsii.String(id+"Profile"), &awsiam.CfnInstanceProfileProps{
				Roles: &[]interface{}{role.Ref()},
			})
			awsec2.NewCfnInstance(w.stack, jsii.String(id), &awsec2.CfnInstanceProps{
				ImageId: jsii.String("ami-0123456789abcdef0"), InstanceType: jsii.String("t3.micro"),
				SubnetId: (*w.vpc.PublicSubnets())[0].SubnetId(), IamInstanceProfile: profile.Ref(),
			})
		}
		raw("Legacy", false)
		raw("Exempt", true)
		asm = cdktest.Synth(t, w.app)
	})
	if errs := asm.Errors(""); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	tpl := asm.Templates["work"]
	_, p := lockOf(t, tpl, "LegacyRole")
	if doc := docJSON(p); !strings.Contains(doc, `{"Fn::GetAtt":["Legacy","PublicIp"]}`) {
		t.Errorf("raw instance lock does not use its PublicIp: %s", doc)
	}
	for id := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
		if strings.Contains(id, "Exempt") {
			t.Errorf("the role exempted through Metadata got lock %s", id)
		}
	}
	if got := roleTags(t, tpl, "LegacyRole")[lock.LockModeTagKey]; got != string(lock.InstancePublicIP) {
		t.Errorf("the raw CfnRole's tag %s = %v, want %s", lock.LockModeTagKey, got, lock.InstancePublicIP)
	}
	if got, ok := roleTags(t, tpl, "ExemptRole")[lock.LockModeTagKey]; ok {
		t.Errorf("the exempt role is tagged %v", got)
	}
}
