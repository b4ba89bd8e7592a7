package lock_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// TestEverythingReadsEveryInstanceShapeWithoutPanicking builds instances in every shape the
// aspect can meet in one app (the subnet in NetworkInterfaces, no subnet at all, unreadable
// interfaces): each one is either locked or named by an error annotation; synth never panics.
func TestEverythingReadsEveryInstanceShapeWithoutPanicking(t *testing.T) {
	type row struct {
		name    string
		build   func(w *world) constructs.IConstruct // returns the construct the outcome is about
		wantErr string                               // "": locked, no error
		role    string                               // logical id prefix of the locked role
	}
	publicSubnet := func(w *world) *string { return (*w.vpc.PublicSubnets())[0].SubnetId() }
	rows := []row{
		{name: "an instance created with AssociatePublicIpAddress true (its subnet in NetworkInterfaces) is locked to its public IP",
			build: func(w *world) constructs.IConstruct {
				return awsec2.NewInstance(w.stack, jsii.String("Assoc"), &awsec2.InstanceProps{
					Vpc: w.vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
					InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")), MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil),
					RequireImdsv2: jsii.Bool(true), AssociatePublicIpAddress: jsii.Bool(true),
				})
			}, role: "AssocInstanceRole"},
		{name: "a CfnInstance whose primary network interface names the subnet is locked to its public IP",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "RawNic", &awsec2.CfnInstanceProps{NetworkInterfaces: &[]any{
					&awsec2.CfnInstance_NetworkInterfaceProperty{DeviceIndex: jsii.String("0"), SubnetId: publicSubnet(w), AssociatePublicIpAddress: true},
				}})
			}, role: "RawNicRole"},
		{name: "a CfnInstance without any subnet (launched into the default VPC) is locked to its public IP",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "NoSubnet", &awsec2.CfnInstanceProps{})
			}, role: "NoSubnetRole"},
		{name: "a CfnInstance whose primary interface is an existing network interface is locked to its public IP",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "Eni", &awsec2.CfnInstanceProps{NetworkInterfaces: &[]any{
					&awsec2.CfnInstance_NetworkInterfaceProperty{DeviceIndex: jsii.String("0"), NetworkInterfaceId: jsii.String("eni-0123456789abcdef0")},
				}})
			}, role: "EniRole"},
		{name: "a CfnInstance whose network interfaces are written as maps is locked to its public IP",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "MapNic", &awsec2.CfnInstanceProps{NetworkInterfaces: &[]any{
					map[string]any{"deviceIndex": "0", "subnetId": publicSubnet(w), "associatePublicIpAddress": true},
				}})
			}, role: "MapNicRole"},
		{name: "a CfnInstance with both SubnetId and NetworkInterfaces",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "Both", &awsec2.CfnInstanceProps{SubnetId: publicSubnet(w), NetworkInterfaces: &[]any{
					&awsec2.CfnInstance_NetworkInterfaceProperty{DeviceIndex: jsii.String("0"), SubnetId: publicSubnet(w)},
				}})
			}, wantErr: "both SubnetId and NetworkInterfaces"},
		{name: "a CfnInstance whose NetworkInterfaces list is a token",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "TokenNics", &awsec2.CfnInstanceProps{
					NetworkInterfaces: awscdk.Fn_GetAtt(jsii.String("Elsewhere"), jsii.String("Interfaces")),
				})
			}, wantErr: "NetworkInterfaces"},
		{name: "a CfnInstance whose network interfaces have no primary interface (DeviceIndex 0)",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "NoPrimary", &awsec2.CfnInstanceProps{NetworkInterfaces: &[]any{
					&awsec2.CfnInstance_NetworkInterfaceProperty{DeviceIndex: jsii.String("1"), SubnetId: publicSubnet(w)},
				}})
			}, wantErr: "DeviceIndex 0"},
		{name: "a CfnInstance whose network interface's DeviceIndex is a token",
			build: func(w *world) constructs.IConstruct {
				return rawInstance(w.stack, "TokenIndex", &awsec2.CfnInstanceProps{NetworkInterfaces: &[]any{
					&awsec2.CfnInstance_NetworkInterfaceProperty{DeviceIndex: awscdk.Fn_ImportValue(jsii.String("device-index")), SubnetId: publicSubnet(w)},
				}})
			}, wantErr: "DeviceIndex"},
	}
	w := newWorld(t)
	targets := make([]constructs.IConstruct, len(rows))
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		if err := lock.Everything(w.app, nil); err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			targets[i] = r.build(w)
		}
		asm = cdktest.Synth(t, w.app)
	})
	tpl := asm.Templates["work"]
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			path := pathOf(targets[i])
			if r.wantErr == "" {
				if errs := asm.Errors(path); len(errs) > 0 {
					t.Fatalf("errors: %v", errs)
				}
				_, p := lockOf(t, tpl, r.role)
				id := logicalID(t, tpl, "AWS::EC2::Instance", strings.TrimSuffix(strings.TrimSuffix(r.role, "InstanceRole"), "Role"))
				if doc := docJSON(p); !strings.Contains(doc, `{"Fn::GetAtt":["`+id+`","PublicIp"]}`) {
					t.Errorf("lock does not use %s's PublicIp: %s", id, doc)
				}
				return
			}
			errs := errorsAt(asm, path, r.wantErr)
			if len(errs) == 0 {
				t.Fatalf("no error at %s containing %q; messages: %v", path, r.wantErr, asm.Messages)
			}
			if !strings.Contains(errs[0].Data, path) || !strings.Contains(errs[0].Data, "lock.New") {
				t.Errorf("the error neither names %s nor says what to do: %s", path, errs[0].Data)
			}
		})
	}
	t.Run("the lock of the instance with AssociatePublicIpAddress means what it says", func(t *testing.T) {
		inst := logicalID(t, tpl, "AWS::EC2::Instance", "Assoc")
		evaluateLocks(t, tpl, map[string]any{
			`{"Fn::GetAtt":["` + inst + `","PublicIp"]}`: webIP,
			`{"Fn::GetAtt":["` + inst + `","VpcId"]}`:    vpcID,
		}, []scenario{
			{"AssocInstanceRole", "own public IP", public(webIP), iameval.Allowed},
			{"AssocInstanceRole", "stolen, attacker IP", public(attacker), iameval.ExplicitlyDenied},
			{"AssocInstanceRole", "own VPC endpoint", endpoint(vpcID, ownPrivate), iameval.Allowed},
			{"AssocInstanceRole", "stolen, other VPC's endpoint", endpoint(otherVpc, "10.9.0.3"), iameval.ExplicitlyDenied},
		})
	})
}

// dualStackVPC is a dual-stack VPC with one public subnet, as CDK makes it: the subnet assigns
// every instance an IPv6 address and maps no public IPv4.
func dualStackVPC(stack awscdk.Stack, id string) awsec2.Vpc {
	return awsec2.NewVpc(stack, jsii.String(id), &awsec2.VpcProps{
		MaxAzs: jsii.Number(1), NatGateways: jsii.Number(0), IpProtocol: awsec2.IpProtocol_DUAL_STACK,
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC}},
	})
}

// TestDualStackInstancesAreLockedToTheirSubnetsIPv6Prefix checks that an instance that gets
// IPv6 from its subnet (AssignIpv6AddressOnCreation, CDK's default for dual-stack subnets) or
// asks for addresses (Ipv6AddressCount) is locked to the subnet's /64 as well as to its IPv4.
func TestDualStackInstancesAreLockedToTheirSubnetsIPv6Prefix(t *testing.T) {
	type row struct {
		name, id string
		mode     lock.Mode
		props    awsec2.InstanceProps
	}
	rows := []row{
		{"an Elastic IP instance that gets IPv6 from its subnet", "Eip6", lock.ElasticIP, awsec2.InstanceProps{}},
		{"an instance with AssociatePublicIpAddress that gets IPv6 from its subnet", "Assoc6", lock.InstancePublicIP,
			awsec2.InstanceProps{AssociatePublicIpAddress: jsii.Bool(true)}},
		{"an Elastic IP instance that asks for an IPv6 address (Ipv6AddressCount)", "Count6", lock.ElasticIP,
			awsec2.InstanceProps{Ipv6AddressCount: jsii.Number(1)}},
	}
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("v6"), nil)
		vpc := dualStackVPC(st, "Vpc")
		for _, r := range rows {
			p := r.props
			p.Vpc, p.VpcSubnets = vpc, &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC}
			p.InstanceType, p.MachineImage = awsec2.NewInstanceType(jsii.String("t3.micro")), awsec2.MachineImage_LatestAmazonLinux2023(nil)
			p.RequireImdsv2 = jsii.Bool(true)
			inst := awsec2.NewInstance(st, jsii.String(r.id), &p)
			if err := lock.Everything(inst, &lock.Options{Mode: r.mode}); err != nil {
				t.Fatal(err)
			}
		}
		asm = cdktest.Synth(t, app)
	})
	if errs := asm.Errors(""); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	tpl := asm.Templates["v6"]
	subnet := logicalID(t, tpl, "AWS::EC2::Subnet", "VpcpublicSubnet1")
	prefix64 := `{"Fn::Select":[0,{"Fn::GetAtt":["` + subnet + `","Ipv6CidrBlocks"]}]}`
	values := map[string]any{prefix64: "2001:db8:1234:5600::/64", `{"Ref":"` + logicalID(t, tpl, "AWS::EC2::VPC", "Vpc") + `"}`: vpcID}
	var scenarios []scenario
	for _, r := range rows {
		role := r.id + "InstanceRole"
		t.Run(r.name+" is locked to the subnet's /64", func(t *testing.T) {
			if doc := docJSON(func() map[string]any { _, p := lockOf(t, tpl, role); return p }()); !strings.Contains(doc, prefix64) {
				t.Errorf("lock lacks the subnet's IPv6 /64 %s: %s", prefix64, doc)
			}
		})
		inst := logicalID(t, tpl, "AWS::EC2::Instance", r.id)
		values[`{"Fn::GetAtt":["`+inst+`","PublicIp"]}`] = webIP
		values[`{"Fn::GetAtt":["`+inst+`","VpcId"]}`] = vpcID
		if r.mode == lock.ElasticIP {
			values[`{"Fn::GetAtt":["`+logicalID(t, tpl, "AWS::EC2::EIP", r.id+"LockEip")+`","PublicIp"]}`] = webIP
		}
		scenarios = append(scenarios,
			scenario{role, "its own IPv6 address, from the subnet's /64", public("2001:db8:1234:5600::1a"), iameval.Allowed},
			scenario{role, "its own IPv4 address", public(webIP), iameval.Allowed},
			scenario{role, "an attacker's IPv6 outside the /64", public("2001:db8:ffff::66"), iameval.ExplicitlyDenied},
			scenario{role, "an attacker's IPv4", public(attacker), iameval.ExplicitlyDenied},
			scenario{role, "its own VPC's endpoint", endpoint(vpcID, ownPrivate), iameval.Allowed},
		)
	}
	evaluateLocks(t, tpl, values, scenarios)
}

// lookupContext is the context entry that Vpc.fromLookup reads for vpc-0123456789abcdef1 in
// account 111122223333, us-east-1: what `cdk synth` would have stored in cdk.context.json.
func lookupContext() map[string]any {
	subnet := func(id, cidr string) any {
		return map[string]any{"subnetId": id, "cidr": cidr, "availabilityZone": "us-east-1a", "routeTableId": "rtb-" + id[len("subnet-"):]}
	}
	return map[string]any{
		"vpc-provider:account=111122223333:filter.vpc-id=vpc-0123456789abcdef1:region=us-east-1:returnAsymmetricSubnets=true": map[string]any{
			"vpcId": importedVpcID, "vpcCidrBlock": "10.1.0.0/16", "ownerAccountId": "111122223333", "availabilityZones": []any{},
			"subnetGroups": []any{
				map[string]any{"name": "Public", "type": "Public", "subnets": []any{subnet("subnet-0aaaaaaaaaaaaaaa1", "10.1.0.0/24")}},
				map[string]any{"name": "App", "type": "Private", "subnets": []any{subnet("subnet-0bbbbbbbbbbbbbbb1", "10.1.1.0/24")}},
				map[string]any{"name": "Data", "type": "Isolated", "subnets": []any{subnet("subnet-0ccccccccccccccc1", "10.1.2.0/24")}},
			},
		},
	}
}

const (
	importedVpcID = "vpc-0123456789abcdef1"
	attrsVpcID    = "vpc-0123456789abcdef2"
)

// importedStack is a stack (with an environment, as Vpc.fromLookup requires) holding the VPC
// of lookupContext.
func importedStack(app awscdk.App, id string) (awscdk.Stack, awsec2.IVpc) {
	st := awscdk.NewStack(app, jsii.String(id), &awscdk.StackProps{Env: &awscdk.Environment{
		Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
	return st, awsec2.Vpc_FromLookup(st, jsii.String("Imported"), &awsec2.VpcLookupOptions{VpcId: jsii.String(importedVpcID)})
}

func instanceIn(scope constructs.Construct, id string, vpc awsec2.IVpc, subnets awsec2.SubnetType, props *awsec2.InstanceProps) awsec2.Instance {
	p := awsec2.InstanceProps{}
	if props != nil {
		p = *props
	}
	p.Vpc, p.VpcSubnets = vpc, &awsec2.SubnetSelection{SubnetType: subnets}
	p.InstanceType, p.MachineImage = awsec2.NewInstanceType(jsii.String("t3.micro")), awsec2.MachineImage_LatestAmazonLinux2023(nil)
	p.RequireImdsv2 = jsii.Bool(true)
	return awsec2.NewInstance(scope, jsii.String(id), &p)
}

// TestPublicIPModeRefusesInstancesWithoutAPublicIPv4 checks that public-IP mode on an instance
// that will have no public IPv4 (CloudFormation would fail at deploy: "Attribute PublicIp was
// not found") is an error at synth that names the instance and the modes that fit.
func TestPublicIPModeRefusesInstancesWithoutAPublicIPv4(t *testing.T) {
	type row struct {
		name  string
		build func(w *world, imported awsec2.IVpc, importedStack awscdk.Stack) constructs.IConstruct
		want  []string // substrings of the error; nil: no error
		not   string   // a mode the error must not suggest
	}
	rows := []row{
		{"an instance in a dual-stack subnet that maps no public IPv4", func(w *world, _ awsec2.IVpc, _ awscdk.Stack) constructs.IConstruct {
			return instanceIn(w.stack, "DualNoV4", dualStackVPC(w.stack, "Dual"), awsec2.SubnetType_PUBLIC, nil)
		}, []string{"no public IPv4", "elastic-ip", "vpc-endpoints-only"}, "nat-egress"},
		{"an instance with AssociatePublicIpAddress false in a public subnet", func(w *world, _ awsec2.IVpc, _ awscdk.Stack) constructs.IConstruct {
			return instanceIn(w.stack, "NoAssoc", w.vpc, awsec2.SubnetType_PUBLIC, &awsec2.InstanceProps{AssociatePublicIpAddress: jsii.Bool(false)})
		}, []string{"no public IPv4", "AssociatePublicIpAddress", "elastic-ip", "vpc-endpoints-only"}, "nat-egress"},
		{"an instance in a PRIVATE_WITH_EGRESS subnet that routes to a NAT gateway", func(w *world, _ awsec2.IVpc, _ awscdk.Stack) constructs.IConstruct {
			return instanceIn(w.stack, "Private", w.vpc, awsec2.SubnetType_PRIVATE_WITH_EGRESS, nil)
		}, []string{"private subnet and has no public IP", "nat-egress", "vpc-endpoints-only"}, "elastic-ip"},
		{"an instance in a PRIVATE_ISOLATED subnet", func(w *world, _ awsec2.IVpc, _ awscdk.Stack) constructs.IConstruct {
			return instanceIn(w.stack, "Isolated", w.vpc, awsec2.SubnetType_PRIVATE_ISOLATED, nil)
		}, []string{"isolated subnet and has no public IP", "vpc-endpoints-only"}, "nat-egress"},
		{"an instance in a private subnet of an imported VPC", func(_ *world, vpc awsec2.IVpc, st awscdk.Stack) constructs.IConstruct {
			return instanceIn(st, "ImportedPrivate", vpc, awsec2.SubnetType_PRIVATE_WITH_EGRESS, nil)
		}, []string{"private subnet and has no public IP", "nat-egress", "Options.NATIPs", "vpc-endpoints-only"}, "elastic-ip"},
		{"an instance in a public subnet that maps public IPv4 addresses (the control)", func(w *world, _ awsec2.IVpc, _ awscdk.Stack) constructs.IConstruct {
			return instanceIn(w.stack, "Public", w.vpc, awsec2.SubnetType_PUBLIC, nil)
		}, nil, ""},
		{"an instance in a public subnet of an imported VPC (the control)", func(_ *world, vpc awsec2.IVpc, st awscdk.Stack) constructs.IConstruct {
			return instanceIn(st, "ImportedPublic", vpc, awsec2.SubnetType_PUBLIC, nil)
		}, nil, ""},
	}
	w := &world{app: cdktest.NewApp(t, lookupContext())}
	targets := make([]constructs.IConstruct, len(rows))
	var asm *cdktest.Assembly
	var forInstanceErrs []error
	cdktest.NoPanic(t, func() {
		w.stack = awscdk.NewStack(w.app, jsii.String("work"), nil)
		w.vpc = newWorldVPC(w.stack)
		ist, imported := importedStack(w.app, "imported")
		if err := lock.Everything(w.app, nil); err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			targets[i] = r.build(w, imported, ist)
		}
		// lock.ForInstance locks in the same mode: it refuses such an instance when it is called.
		for _, c := range []struct {
			inst awsec2.Instance
			vpc  awsec2.IVpc
		}{{instanceIn(w.stack, "ForPrivate", w.vpc, awsec2.SubnetType_PRIVATE_WITH_EGRESS, nil), w.vpc}} {
			_, err := lock.ForInstance(w.stack, pathOf(c.inst)[len("work/"):]+"Lock", c.inst, c.inst.Role(), c.vpc)
			forInstanceErrs = append(forInstanceErrs, err)
		}
		asm = cdktest.Synth(t, w.app)
	})
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			path := pathOf(targets[i])
			errs := errorsAt(asm, path, "")
			if r.want == nil {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("no error at %s; messages: %v", path, asm.Messages)
			}
			msg := errs[0].Data
			for _, s := range append(r.want, path) {
				if !strings.Contains(msg, s) {
					t.Errorf("the error lacks %q: %s", s, msg)
				}
			}
			if r.not != "" && strings.Contains(msg, r.not) {
				t.Errorf("the error suggests %s, which does not fit: %s", r.not, msg)
			}
		})
	}
	t.Run("lock.ForInstance refuses an instance in a private subnet when it is called", func(t *testing.T) {
		if err := forInstanceErrs[0]; err == nil || !strings.Contains(err.Error(), "work/ForPrivate") || !strings.Contains(err.Error(), "nat-egress") {
			t.Errorf("err = %v", err)
		}
	})
}

// newWorldVPC is the VPC of newWorld: public, private-with-NAT and isolated subnets.
func newWorldVPC(stack awscdk.Stack) awsec2.Vpc {
	return awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs: jsii.Number(2), NatGateways: jsii.Number(1),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC},
			{Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
			{Name: jsii.String("isolated"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		},
	})
}

// TestEverythingLocksInstancesOfImportedVPCs checks the modes that need the VPC on a VPC from
// Vpc.fromLookup: NAT egress with Options.NATIPs, VPC endpoints only, and an Auto Scaling group.
func TestEverythingLocksInstancesOfImportedVPCs(t *testing.T) {
	const natA, natB = "203.0.113.40", "203.0.113.41"
	type row struct {
		name    string
		id      string
		opts    lock.Options
		subnets awsec2.SubnetType
		group   bool
		attrs   bool // the VPC comes from Vpc.fromVpcAttributes, not Vpc.fromLookup
		wantErr string
		inDoc   []string
	}
	rows := []row{
		{"NAT egress with Options.NATIPs locks a private instance to the NAT addresses before launch", "Worker",
			lock.Options{Mode: lock.NATEgress, NATIPs: []string{natA, natB}}, awsec2.SubnetType_PRIVATE_WITH_EGRESS, false, false, "",
			[]string{natA + "/32", natB + "/32", importedVpcID}},
		{"VPC endpoints only locks an isolated instance to the imported VPC before launch", "Vault",
			lock.Options{Mode: lock.VPCEndpointsOnly}, awsec2.SubnetType_PRIVATE_ISOLATED, false, false, "",
			[]string{"DenyPublicCallsFromAnyAddress", importedVpcID}},
		{"NAT egress with Options.NATIPs locks an Auto Scaling group in the imported private subnets", "Fleet",
			lock.Options{Mode: lock.NATEgress, NATIPs: []string{natA}}, awsec2.SubnetType_PRIVATE_WITH_EGRESS, true, false, "",
			[]string{natA + "/32", importedVpcID}},
		{"NAT egress without Options.NATIPs is an error that asks for them", "Blind",
			lock.Options{Mode: lock.NATEgress}, awsec2.SubnetType_PRIVATE_WITH_EGRESS, false, false, "Options.NATIPs", nil},
		{"NAT egress with Options.NATIPs locks a private instance of a VPC from Vpc.fromVpcAttributes", "Attrs",
			lock.Options{Mode: lock.NATEgress, NATIPs: []string{natA}}, awsec2.SubnetType_PRIVATE_WITH_EGRESS, false, true, "",
			[]string{natA + "/32", attrsVpcID}},
	}
	app := cdktest.NewApp(t, lookupContext())
	targets := make([]constructs.IConstruct, len(rows))
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st, lookedUp := importedStack(app, "imported")
		fromAttrs := awsec2.Vpc_FromVpcAttributes(st, jsii.String("FromAttributes"), &awsec2.VpcAttributes{
			VpcId: jsii.String(attrsVpcID), AvailabilityZones: jsii.Strings("us-east-1a"),
			PublicSubnetIds: jsii.Strings("subnet-0ddddddddddddddd1"), PrivateSubnetIds: jsii.Strings("subnet-0eeeeeeeeeeeeeee1"),
		})
		for i, r := range rows {
			vpc := lookedUp
			if r.attrs {
				vpc = fromAttrs
			}
			if r.group {
				targets[i] = awsautoscaling.NewAutoScalingGroup(st, jsii.String(r.id), &awsautoscaling.AutoScalingGroupProps{
					Vpc: vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: r.subnets},
					InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")), MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil),
					RequireImdsv2: jsii.Bool(true),
				})
			} else {
				targets[i] = instanceIn(st, r.id, vpc, r.subnets, nil)
			}
			opts := r.opts
			if err := lock.Everything(targets[i], &opts); err != nil {
				t.Fatal(err)
			}
		}
		asm = cdktest.Synth(t, app)
	})
	tpl := asm.Templates["imported"]
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			path := pathOf(targets[i])
			if r.wantErr != "" {
				if len(errorsAt(asm, path, r.wantErr)) == 0 {
					t.Fatalf("no error at %s containing %q; messages: %v", path, r.wantErr, asm.Messages)
				}
				return
			}
			if errs := errorsAt(asm, path, ""); len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			lockID, p := lockOf(t, tpl, r.id+"InstanceRole")
			doc := docJSON(p)
			for _, s := range r.inDoc {
				if !strings.Contains(doc, s) {
					t.Errorf("lock lacks %s: %s", s, doc)
				}
			}
			typ, prefix := "AWS::EC2::Instance", r.id
			if r.group {
				typ, prefix = "AWS::AutoScaling::AutoScalingGroup", r.id+"ASG"
			}
			res := cdktest.Resources(tpl, typ)[logicalID(t, tpl, typ, prefix)]
			if !dependsOn(res, lockID) {
				t.Errorf("%s does not depend on its lock (an unlocked window after launch): %v", r.id, res["DependsOn"])
			}
		})
	}
	t.Run("the locks mean what they say", func(t *testing.T) {
		evaluateLocks(t, tpl, nil, []scenario{
			{"WorkerInstanceRole", "through the first NAT gateway", public(natA), iameval.Allowed},
			{"WorkerInstanceRole", "through the second NAT gateway", public(natB), iameval.Allowed},
			{"WorkerInstanceRole", "stolen, attacker IP", public(attacker), iameval.ExplicitlyDenied},
			{"WorkerInstanceRole", "own VPC endpoint", importedCreds(endpoint(importedVpcID, ownPrivate)), iameval.Allowed},
			{"WorkerInstanceRole", "stolen, other VPC's endpoint", importedCreds(endpoint(otherVpc, "10.9.0.3")), iameval.ExplicitlyDenied},
			{"VaultInstanceRole", "any public IP, even the NAT's", public(natA), iameval.ExplicitlyDenied},
			{"VaultInstanceRole", "own VPC endpoint", importedCreds(endpoint(importedVpcID, ownPrivate)), iameval.Allowed},
			{"VaultInstanceRole", "stolen, other host via own endpoint", importedCreds(endpoint(importedVpcID, otherPrivate)), iameval.ExplicitlyDenied},
			{"FleetInstanceRole", "through the NAT gateway", public(natA), iameval.Allowed},
			{"FleetInstanceRole", "stolen, attacker IP", public(attacker), iameval.ExplicitlyDenied},
		})
	})
}

// importedCreds makes a request context's credentials those of an instance of the imported VPC.
func importedCreds(m map[string]any) map[string]any {
	m["aws:Ec2InstanceSourceVpc"] = importedVpcID
	return m
}
