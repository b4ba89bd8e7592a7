package lock_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// TestARoleGetsOneLock checks that a second lock named defenders-lock on a role (lock.ForInstance
// next to lock.Everything, or twice) is an error that names both, never two AWS::IAM::Policy
// resources of the same PolicyName, one overwriting the other at deploy.
func TestARoleGetsOneLock(t *testing.T) {
	type row struct {
		name string
		// build returns the error of the second call, if any, and the paths the error must name.
		// Rows build in w.stack, which lock.Everything covers, or in manual, which it does not.
		build func(w *world, manual awscdk.Stack) (names []string, err error)
		// annotated: the error is an annotation at synth (the aspect), not a returned error.
		annotated bool
	}
	rows := []row{
		{"lock.ForInstance and lock.Everything on the same instance", func(w *world, _ awscdk.Stack) ([]string, error) {
			inst := w.instance(w.stack, "Both", awsec2.SubnetType_PUBLIC, nil)
			_, err := lock.ForInstance(w.stack, "BothLock", inst, inst.Role(), w.vpc)
			if err != nil {
				t.Fatal(err)
			}
			return []string{"work/BothLock", "work/Both", "lock.Everything"}, nil
		}, true},
		{"lock.ForInstance twice on instances that share a role", func(w *world, manual awscdk.Stack) ([]string, error) {
			role := awsiam.NewRole(manual, jsii.String("Twice"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil)})
			a := w.instance(manual, "TwiceA", awsec2.SubnetType_PUBLIC, role)
			b := w.instance(manual, "TwiceB", awsec2.SubnetType_PUBLIC, role)
			if _, err := lock.ForInstance(manual, "TwiceALock", a, role, w.vpc); err != nil {
				t.Fatal(err)
			}
			_, err := lock.ForInstance(manual, "TwiceBLock", b, role, w.vpc)
			return []string{"manual/TwiceALock", "manual/TwiceBLock", "manual/Twice"}, err
		}, false},
		{"lock.New with the lock's policy name on a role lock.ForInstance locked", func(w *world, manual awscdk.Stack) ([]string, error) {
			inst := w.instance(manual, "Named", awsec2.SubnetType_PUBLIC, nil)
			if _, err := lock.ForInstance(manual, "NamedLock", inst, inst.Role(), w.vpc); err != nil {
				t.Fatal(err)
			}
			_, err := lock.New(manual, "NamedAgain", &lock.Props{Role: inst.Role(), VPCs: []string{*w.vpc.VpcId()}, PolicyName: lock.LockPolicyName})
			return []string{"manual/NamedLock", "manual/NamedAgain"}, err
		}, false},
	}
	w := newWorld(t)
	errs := make([]error, len(rows))
	names := make([][]string, len(rows))
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		if err := lock.Everything(w.stack, nil); err != nil {
			t.Fatal(err)
		}
		manual := awscdk.NewStack(w.app, jsii.String("manual"), nil)
		for i, r := range rows {
			names[i], errs[i] = r.build(w, manual)
		}
		asm = cdktest.Synth(t, w.app)
	})
	for i, r := range rows {
		t.Run(r.name+" is an error that names both", func(t *testing.T) {
			var msg string
			if r.annotated {
				if got := asm.Errors(names[i][0]); len(got) > 0 {
					msg = got[0].Data
				}
			} else if errs[i] != nil {
				msg = errs[i].Error()
			}
			if msg == "" {
				t.Fatalf("no error; messages: %v", asm.Messages)
			}
			for _, n := range names[i] {
				if !strings.Contains(msg, n) {
					t.Errorf("the error does not name %s: %s", n, msg)
				}
			}
		})
	}
	t.Run("no role has two policies named defenders-lock", func(t *testing.T) {
		for name, tpl := range asm.Templates {
			seen := map[string]string{}
			for id, p := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
				props := cdktest.Props(p)
				if props["PolicyName"] != lock.LockPolicyName {
					continue
				}
				for _, r := range props["Roles"].([]any) {
					b, _ := json.Marshal(r)
					if other, ok := seen[string(b)]; ok {
						t.Errorf("%s: role %s has two locks: %s and %s", name, b, other, id)
					}
					seen[string(b)] = id
				}
			}
		}
	})
}

// TestLockedRolesRecordTheirMode checks the role tag defenders:lock-mode: every role that
// lock.Everything or lock.ForInstance locks carries its mode, exempt roles and imported roles
// none.
func TestLockedRolesRecordTheirMode(t *testing.T) {
	t.Run("lock.Mode's values are lockpolicy's", func(t *testing.T) {
		for m, want := range map[lock.Mode]lockpolicy.Mode{
			lock.InstancePublicIP: lockpolicy.ModeInstancePublicIP, lock.ElasticIP: lockpolicy.ModeElasticIP,
			lock.NATEgress: lockpolicy.ModeNATEgress, lock.VPCEndpointsOnly: lockpolicy.ModeVPCEndpointsOnly,
		} {
			if string(m) != string(want) {
				t.Errorf("lock mode %q, lockpolicy mode %q", m, want)
			}
		}
	})
	tpl := modesApp(t).Templates["work"]
	for _, c := range []struct{ role, want string }{
		{"WebInstanceRole", "instance-public-ip"},
		{"SharedRole", "instance-public-ip"},
		{"EipInstanceRole", "elastic-ip"},
		{"WorkerInstanceRole", "nat-egress"},
		{"VaultInstanceRole", "vpc-endpoints-only"},
		{"FleetInstanceRole", "nat-egress"},
		{"BastionInstanceRole", ""},
	} {
		t.Run("lock.Everything tags "+c.role+" with "+c.want, func(t *testing.T) {
			got, _ := roleTags(t, tpl, c.role)[contract.LockModeTagKey].(string)
			if got != c.want {
				t.Errorf("tag %s = %q, want %q", contract.LockModeTagKey, got, c.want)
			}
		})
	}

	w := newWorld(t)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		own := w.instance(w.stack, "Luke", awsec2.SubnetType_PUBLIC, nil)
		if _, err := lock.ForInstance(w.stack, "LukeLock", own, own.Role(), w.vpc); err != nil {
			t.Fatal(err)
		}
		imported := awsiam.Role_FromRoleArn(w.stack, jsii.String("Imported"), jsii.String("arn:aws:iam::111122223333:role/shared-ec2"), nil)
		other := w.instance(w.stack, "Leia", awsec2.SubnetType_PUBLIC, imported)
		if _, err := lock.ForInstance(w.stack, "LeiaLock", other, imported, w.vpc); err != nil {
			t.Fatalf("an imported role cannot be tagged, but it can be locked: %v", err)
		}
		asm = cdktest.Synth(t, w.app)
	})
	if errs := asm.Errors(""); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	t.Run("lock.ForInstance tags the role it locks with instance-public-ip", func(t *testing.T) {
		if got := roleTags(t, asm.Templates["work"], "LukeInstanceRole")[contract.LockModeTagKey]; got != "instance-public-ip" {
			t.Errorf("tag = %v", got)
		}
	})
	t.Run("lock.ForInstance locks an imported role without tagging anything", func(t *testing.T) {
		for id := range cdktest.Resources(asm.Templates["work"], "AWS::IAM::Role") {
			if strings.Contains(id, "Leia") || strings.Contains(id, "Imported") {
				t.Errorf("a role %s appeared in the template", id)
			}
		}
	})
}

// TestARoleHasOneMode checks that a role shared by instances that nested lock.Everything calls
// put in different modes is an error: the mode tag (and the locker) can hold one mode.
func TestARoleHasOneMode(t *testing.T) {
	w := newWorld(t)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		role := awsiam.NewRole(w.stack, jsii.String("Mixed"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil)})
		w.instance(w.stack, "MixedA", awsec2.SubnetType_PUBLIC, role)
		b := w.instance(w.stack, "MixedB", awsec2.SubnetType_PUBLIC, role)
		if err := lock.Everything(w.app, nil); err != nil {
			t.Fatal(err)
		}
		if err := lock.Everything(b, &lock.Options{Mode: lock.ElasticIP}); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, w.app)
	})
	errs := asm.Errors("two modes")
	if len(errs) == 0 {
		t.Fatalf("no error about two modes; messages: %v", asm.Messages)
	}
	for _, s := range []string{"work/Mixed", "instance-public-ip", "elastic-ip"} {
		if !strings.Contains(errs[0].Data, s) {
			t.Errorf("the error lacks %q: %s", s, errs[0].Data)
		}
	}
}
