package guard_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/guard"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/review"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

type world struct {
	stack awscdk.Stack
	vpc   awsec2.Vpc
	sg    awsec2.SecurityGroup
}

func newWorld(scope awscdk.Stack) *world {
	w := &world{stack: scope}
	w.vpc = awsec2.NewVpc(w.stack, jsii.String("Vpc"), &awsec2.VpcProps{NatGateways: jsii.Number(0), MaxAzs: jsii.Number(1),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC}}})
	w.sg = awsec2.NewSecurityGroup(w.stack, jsii.String("Sg"), &awsec2.SecurityGroupProps{Vpc: w.vpc})
	return w
}

func instance(w *world, id string, imdsv2 bool) awsec2.Instance {
	return awsec2.NewInstance(w.stack, jsii.String(id), &awsec2.InstanceProps{
		Vpc: w.vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
		InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")), MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil),
		RequireImdsv2: jsii.Bool(imdsv2), SecurityGroup: w.sg,
	})
}

// good is a compliant app: IMDSv2, every role locked, SSH from one address.
func good(t *testing.T, w *world) {
	w.sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String("203.0.113.10/32")), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
	instance(w, "Web", true)
	must(t, lock.Everything(w.stack, nil))
	edge := instance(w, "Edge", true)
	must(t, lock.Everything(edge, &lock.Options{Mode: lock.ElasticIP}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// want is an expected finding: its rule and the construct path of the resource at fault.
type want struct{ rule, path string }

func (w want) String() string { return w.rule + " at " + w.path }

// check synthesizes app and returns the guard's verdict on its assembly.
func check(t *testing.T, app awscdk.App) *guard.Result {
	t.Helper()
	asm := cdktest.Synth(t, app)
	res, err := guard.Check(asm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// got lists the findings of one level as rule-at-path pairs.
func got(fs []guard.Finding, errs bool) []want {
	var out []want
	for _, f := range fs {
		if f.Error == errs {
			out = append(out, want{f.Rule, f.Path})
		}
	}
	return out
}

// TestGuard judges the construct trees the earlier guard judged, with the same rule semantics,
// through the synthesized templates: each case names the rule and the construct path.
func TestGuard(t *testing.T) {
	cases := []struct {
		name     string
		build    func(t *testing.T, w *world)
		errors   []want
		warnings []want
	}{
		{"a compliant app passes with no finding", good, nil, nil},
		{"SSH from 0.0.0.0/0 fails synth", func(t *testing.T, w *world) {
			good(t, w)
			w.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
		}, []want{{review.RuleOpenIngress, "s/Sg/Resource"}}, nil},
		{"all ports from ::/0 fails synth", func(t *testing.T, w *world) {
			good(t, w)
			w.sg.AddIngressRule(awsec2.Peer_AnyIpv6(), awsec2.Port_AllTraffic(), nil, nil)
		}, []want{{review.RuleOpenIngress, "s/Sg/Resource"}}, nil},
		{"RDP from 0.0.0.0/0 through a standalone ingress rule fails synth", func(t *testing.T, w *world) {
			good(t, w)
			awsec2.NewCfnSecurityGroupIngress(w.stack, jsii.String("Rdp"), &awsec2.CfnSecurityGroupIngressProps{
				GroupId: w.sg.SecurityGroupId(), IpProtocol: jsii.String("tcp"), FromPort: jsii.Number(3389), ToPort: jsii.Number(3389),
				CidrIp: jsii.String("0.0.0.0/0"),
			})
		}, []want{{review.RuleOpenIngress, "s/Rdp"}}, nil},
		{"a wide SSH CIDR is a warning", func(t *testing.T, w *world) {
			good(t, w)
			w.sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String("10.0.0.0/16")), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
		}, nil, []want{{review.RuleWideIngress, "s/Sg/Resource"}}},
		{"HTTPS from anywhere is not a finding", func(t *testing.T, w *world) {
			good(t, w)
			w.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), nil, nil)
		}, nil, nil},
		{"an instance that allows IMDSv1 fails synth", func(t *testing.T, w *world) {
			good(t, w)
			instance(w, "Legacy", false)
		}, []want{{review.RuleIMDSv1, "s/Legacy/Resource"}}, nil},
		{"an EC2 role without a lock or exemption fails synth", func(t *testing.T, w *world) {
			w.sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String("203.0.113.10/32")), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
			instance(w, "Naked", true)
		}, []want{{review.RuleUnlockedRole, "s/Naked/InstanceRole/Resource"}}, nil},
		{"an exempt role passes", func(t *testing.T, w *world) {
			i := instance(w, "Control", true)
			must(t, lock.Exempt(i, "the unlocked control of the demo"))
		}, nil, nil},
		{"a lock that admits another instance's address fails synth", func(t *testing.T, w *world) {
			a := instance(w, "A", true)
			b := instance(w, "B", true)
			if _, err := lock.New(w.stack, "WrongLock", &lock.Props{Role: a.Role(), SourceIPs: []string{*b.InstancePublicIp()}, VPCs: []string{*w.vpc.VpcId()}}); err != nil {
				t.Fatal(err)
			}
			must(t, lock.Exempt(b, "B is the control in this test"))
		}, []want{{review.RuleCrossedLock, "s/WrongLock/callerBasedPolicy/Resource"}}, nil},

		// What the earlier guard, reading L1 properties of known L1 classes, could not see.
		{"SSH opened to the world by a property override fails synth", func(t *testing.T, w *world) {
			good(t, w)
			cfn := w.sg.Node().DefaultChild().(awsec2.CfnSecurityGroup)
			cfn.AddPropertyOverride(jsii.String("SecurityGroupIngress.0.CidrIp"), "0.0.0.0/0")
		}, []want{{review.RuleOpenIngress, "s/Sg/Resource"}}, nil},
		{"SSH opened by a raw CfnResource fails synth", func(t *testing.T, w *world) {
			good(t, w)
			awscdk.NewCfnResource(w.stack, jsii.String("RawSsh"), &awscdk.CfnResourceProps{
				Type: jsii.String("AWS::EC2::SecurityGroupIngress"),
				Properties: &map[string]any{"GroupId": w.sg.SecurityGroupId(), "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
					"CidrIp": "0.0.0.0/0"},
			})
		}, []want{{review.RuleOpenIngress, "s/RawSsh"}}, nil},
		{"IMDSv1 turned back on by a property override of the instance fails synth", func(t *testing.T, w *world) {
			good(t, w)
			i := instance(w, "Overridden", true) // requireImdsv2 puts HttpTokens "required" in a launch template
			i.Node().DefaultChild().(awsec2.CfnInstance).AddPropertyOverride(jsii.String("MetadataOptions.HttpTokens"), "optional")
		}, []want{{review.RuleIMDSv1, "s/Overridden/Resource"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := cdktest.NewApp(t, nil)
			var res *guard.Result
			cdktest.NoPanic(t, func() {
				c.build(t, newWorld(awscdk.NewStack(app, jsii.String("s"), nil)))
				res = check(t, app)
			})
			if e, w := got(res.Findings, true), got(res.Findings, false); !slices.Equal(e, c.errors) || !slices.Equal(w, c.warnings) {
				var all bytes.Buffer
				res.Print(&all)
				t.Errorf("errors %v, warnings %v; want errors %v, warnings %v\n%s", e, w, c.errors, c.warnings, all.String())
			}
			if res.Errors != len(c.errors) || res.Warnings != len(c.warnings) {
				t.Errorf("counts: %d errors, %d warnings", res.Errors, res.Warnings)
			}
			if (res.Err() != nil) != (len(c.errors) > 0) {
				t.Errorf("Err() = %v with %d errors", res.Err(), len(c.errors))
			}
			for _, f := range res.Findings {
				if f.Message == "" || f.LogicalID == "" || f.Stack != "s" {
					t.Errorf("finding without message, logical id or stack: %+v", f)
				}
			}
		})
	}
}

// TestExemptionIsShownAsAnAcknowledgement: lock.Exempt acknowledges DEF-LOCK-1 for the role, and
// the verdict shows it with its reason.
func TestExemptionIsShownAsAnAcknowledgement(t *testing.T) {
	app := cdktest.NewApp(t, nil)
	var res *guard.Result
	cdktest.NoPanic(t, func() {
		w := newWorld(awscdk.NewStack(app, jsii.String("s"), nil))
		must(t, lock.Exempt(instance(w, "Control", true), "the unlocked control of the demo"))
		res = check(t, app)
	})
	if len(res.Findings) != 0 || len(res.Acknowledged) != 1 {
		t.Fatalf("findings %+v, acknowledged %+v; want one acknowledgement", res.Findings, res.Acknowledged)
	}
	a := res.Acknowledged[0]
	if a.Rule != review.RuleUnlockedRole || a.Path != "s/Control/InstanceRole/Resource" || a.Reason != "the unlocked control of the demo" {
		t.Errorf("acknowledgement = %+v", a)
	}
	var out bytes.Buffer
	res.Print(&out)
	if !strings.Contains(out.String(), "[Acknowledged at /s/Control/InstanceRole/Resource] DEF-LOCK-1 (") {
		t.Errorf("printed:\n%s", out.String())
	}
}

// TestSynthPrintsFindingsAndFailsOnlyOnErrors runs guard.Synth as an app's main does.
func TestSynthPrintsFindingsAndFailsOnlyOnErrors(t *testing.T) {
	cases := []struct {
		name    string
		peer    func() awsec2.IPeer
		fails   bool
		printed string
	}{
		{"an error fails, naming the rule and the construct path", awsec2.Peer_AnyIpv4, true,
			"[Error at /s/Sg/Resource] DEF-SG-1 (Sg"},
		{"a warning is printed and does not fail", func() awsec2.IPeer { return awsec2.Peer_Ipv4(jsii.String("10.0.0.0/16")) }, false,
			"[Warning at /s/Sg/Resource] DEF-SG-2 (Sg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			defer guard.SetOutput(&out)()
			app := cdktest.NewApp(t, nil)
			var err error
			cdktest.NoPanic(t, func() {
				w := newWorld(awscdk.NewStack(app, jsii.String("s"), nil))
				w.sg.AddIngressRule(c.peer(), awsec2.Port_Tcp(jsii.Number(22)), nil, nil)
				err = guard.Synth(app)
			})
			if (err != nil) != c.fails {
				t.Fatalf("Synth error = %v, want failure %v", err, c.fails)
			}
			if c.fails && !strings.Contains(err.Error(), "DEF-SG-1 at /s/Sg/Resource") {
				t.Errorf("error does not name the rule and the path: %v", err)
			}
			if !strings.Contains(out.String(), c.printed) {
				t.Errorf("printed:\n%s\nwant a line starting %q", out.String(), c.printed)
			}
		})
	}
}

// TestSynthReturnsASynthFailure: a failing synth (here a construct validation) is an error, not
// a panic that takes the app down without a word.
func TestSynthReturnsASynthFailure(t *testing.T) {
	defer guard.SetOutput(&bytes.Buffer{})()
	app := cdktest.NewApp(t, nil)
	var err error
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("s"), nil)
		st.Node().AddValidation(&failing{})
		err = guard.Synth(app)
	})
	if err == nil || !strings.Contains(err.Error(), "synth failed") || !strings.Contains(err.Error(), "always fails") {
		t.Errorf("err = %v", err)
	}
}

type failing struct{}

func (*failing) Validate() *[]*string { return &[]*string{jsii.String("always fails")} }

// TestAddAloneFailsLoudlyWithTheMigration: an app written for the earlier guard (guard.Add, then
// app.Synth) is never silently unguarded: its synth fails and says what to change.
func TestAddAloneFailsLoudlyWithTheMigration(t *testing.T) {
	app := cdktest.NewApp(t, nil)
	var panicked any
	cdktest.NoPanic(t, func() {
		newWorld(awscdk.NewStack(app, jsii.String("s"), nil))
		guard.Add(app)
		func() {
			defer func() { panicked = recover() }()
			app.Synth(nil)
		}()
	})
	msg := fmt.Sprint(panicked)
	if panicked == nil || !strings.Contains(msg, "guard.Synth(app)") || !strings.Contains(msg, "Replace `app.Synth(nil)`") {
		t.Fatalf("synth with guard.Add alone: panic %q, want the migration message", msg)
	}
	if !strings.Contains(msg, guard.MigrationMessage) {
		t.Errorf("message %q is not MigrationMessage", msg)
	}
}

// TestAddThenSynthStillGuards: guard.Add is harmless when the app is synthesized by guard.Synth.
func TestAddThenSynthStillGuards(t *testing.T) {
	var out bytes.Buffer
	defer guard.SetOutput(&out)()
	app := cdktest.NewApp(t, nil)
	var err error
	cdktest.NoPanic(t, func() {
		w := newWorld(awscdk.NewStack(app, jsii.String("s"), nil))
		w.sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(3389)), nil, nil)
		guard.Add(w.stack)
		err = guard.Synth(app)
	})
	if err == nil || strings.Contains(err.Error(), "no longer") || !strings.Contains(err.Error(), "DEF-SG-1 at /s/Sg/Resource") {
		t.Errorf("err = %v", err)
	}
}

// TestNestedStacksAndStagesNameTheirConstructPaths: findings in a nested stack and in a stage
// carry the construct path of the resource, with and without path metadata in the templates,
// and a resource of the parent with the same logical id is not mistaken for it.
func TestNestedStacksAndStagesNameTheirConstructPaths(t *testing.T) {
	for _, pathMetadata := range []bool{false, true} {
		t.Run(fmt.Sprintf("path metadata %v", pathMetadata), func(t *testing.T) {
			// Asset metadata on, as the CDK CLI sets it: the review finds a nested stack's template
			// through it (without it, each nested stack is a DEF-TPL-1 warning: "not reviewed").
			app := cdktest.NewApp(t, map[string]any{"aws:cdk:enable-path-metadata": pathMetadata, "aws:cdk:enable-asset-metadata": true})
			var res *guard.Result
			open := func(scope awscdk.Stack, id string) {
				awsec2.NewCfnSecurityGroup(scope, jsii.String(id), &awsec2.CfnSecurityGroupProps{
					GroupDescription: jsii.String("open"),
					SecurityGroupIngress: &[]any{&awsec2.CfnSecurityGroup_IngressProperty{
						IpProtocol: jsii.String("tcp"), FromPort: jsii.Number(22), ToPort: jsii.Number(22), CidrIp: jsii.String("0.0.0.0/0")}},
				})
			}
			cdktest.NoPanic(t, func() {
				parent := awscdk.NewStack(app, jsii.String("parent"), nil)
				awsec2.NewCfnSecurityGroup(parent, jsii.String("Open"), &awsec2.CfnSecurityGroupProps{GroupDescription: jsii.String("closed")})
				child := awscdk.NewNestedStack(parent, jsii.String("Child"), nil)
				open(child, "Open") // same logical id as the parent's closed group
				grandchild := awscdk.NewNestedStack(child, jsii.String("Grandchild"), nil)
				open(grandchild, "Deep")
				stage := awscdk.NewStage(app, jsii.String("Prod"), nil)
				open(awscdk.NewStack(stage, jsii.String("web"), nil), "Web")
				res = check(t, app)
			})
			var paths []string
			for _, f := range res.Findings {
				if f.Rule != review.RuleOpenIngress {
					t.Errorf("unexpected finding %+v", f)
				}
				paths = append(paths, f.Path)
			}
			slices.Sort(paths)
			wantPaths := []string{"Prod/web/Web", "parent/Child/Grandchild/Deep", "parent/Child/Open"}
			if !slices.Equal(paths, wantPaths) {
				t.Errorf("paths %q, want %q", paths, wantPaths)
			}
		})
	}
}
