package test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// only returns the single resource of type typ in tpl, failing the test otherwise.
func only(t *testing.T, tpl map[string]any, typ string) (string, map[string]any) {
	t.Helper()
	rs := resources(tpl, typ)
	if len(rs) != 1 {
		t.Fatalf("want exactly one %s, got %d: %v", typ, len(rs), keys(rs))
	}
	for id, r := range rs {
		return id, r
	}
	return "", nil
}

func TestLukesLockIsASeparatePolicyOnLukesRoleThatReferencesLukesPublicIP(t *testing.T) {
	s := synth(t, pinned, nil)
	luke := s.Templates["luke"]
	instID, _ := only(t, luke, "AWS::EC2::Instance")
	roleID, _ := only(t, luke, "AWS::IAM::Role")
	_, pol := only(t, luke, "AWS::IAM::Policy")

	if got, want := props(pol)["Roles"], []any{map[string]any{"Ref": roleID}}; !reflect.DeepEqual(got, want) {
		t.Errorf("lock Roles = %v, want %v", got, want)
	}
	doc, _ := json.Marshal(props(pol)["PolicyDocument"])
	if want := `{"Fn::GetAtt":["` + instID + `","PublicIp"]}`; !strings.Contains(string(doc), want) {
		t.Errorf("lock does not reference Luke's PublicIp %s:\n%s", want, doc)
	}
	// The locker keeps this lock true: the role is under its path and the policy has its name.
	if got := props(pol)["PolicyName"]; got != "defenders-lock" {
		t.Errorf("lock PolicyName = %v, want defenders-lock (the name the locker rewrites)", got)
	}
	if _, r := only(t, luke, "AWS::IAM::Role"); props(r)["Path"] != "/defenders/" {
		t.Errorf("Luke's role Path = %v, want /defenders/ (the locker's path)", props(r)["Path"])
	}
	// The role itself must not carry the lock inline (that would be the dependency cycle).
	_, role := only(t, luke, "AWS::IAM::Role")
	if _, inline := props(role)["Policies"]; inline {
		t.Errorf("Luke's role has inline policies; the lock must be a separate AWS::IAM::Policy")
	}
	var d struct{ Statement []struct{ Effect string } }
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Statement) == 0 {
		t.Fatal("lock has no statements")
	}
	for i, st := range d.Statement {
		if st.Effect != "Deny" {
			t.Errorf("lock statement %d is %s; a lock only denies", i, st.Effect)
		}
	}
}

func TestMattIsTheUnlockedControl(t *testing.T) {
	s := synth(t, pinned, nil)
	if pols := resources(s.Templates["matt"], "AWS::IAM::Policy"); len(pols) != 0 {
		t.Fatalf("Matt has policies %v; Matt is the unlocked control", keys(pols))
	}
}

func TestEveryInstanceRequiresIMDSv2AndEncryptsItsRootVolume(t *testing.T) {
	s := synth(t, pinned, nil)
	for _, name := range []string{"matt", "luke"} {
		t.Run(name, func(t *testing.T) {
			tpl := s.Templates[name]
			_, inst := only(t, tpl, "AWS::EC2::Instance")
			ltID, lt := only(t, tpl, "AWS::EC2::LaunchTemplate")
			ref, _ := json.Marshal(props(inst)["LaunchTemplate"])
			if !strings.Contains(string(ref), `"`+ltID+`"`) {
				t.Errorf("instance does not use launch template %s: %s", ltID, ref)
			}
			data, _ := props(lt)["LaunchTemplateData"].(map[string]any)
			md, _ := data["MetadataOptions"].(map[string]any)
			if md["HttpTokens"] != "required" {
				t.Errorf("HttpTokens = %v, want required (IMDSv2 only)", md["HttpTokens"])
			}
			bdm, _ := props(inst)["BlockDeviceMappings"].([]any)
			if len(bdm) != 1 {
				t.Fatalf("block devices = %v", bdm)
			}
			ebs, _ := bdm[0].(map[string]any)["Ebs"].(map[string]any)
			if ebs["Encrypted"] != true {
				t.Errorf("root volume Encrypted = %v, want true", ebs["Encrypted"])
			}
			_, role := only(t, tpl, "AWS::IAM::Role")
			trust, _ := json.Marshal(props(role)["AssumeRolePolicyDocument"])
			if !strings.Contains(string(trust), `"Service":"ec2.amazonaws.com"`) {
				t.Errorf("role trust = %s, want ec2.amazonaws.com", trust)
			}
			if _, named := props(role)["RoleName"]; named {
				t.Errorf("role has a fixed RoleName; it must be generated so that stacks never collide")
			}
		})
	}
}

func TestNoIngressFromTheWholeInternetAnywhere(t *testing.T) {
	for _, ctx := range []map[string]any{pinned, {}, {"defenders:sshCidr": "198.51.100.0/24,2001:db8::/64"}} {
		s := synth(t, ctx, nil)
		for _, rule := range ingress(s) {
			if strings.Contains(rule, ":0.0.0.0/0:") || strings.Contains(rule, ":::/0:") {
				t.Errorf("context %v: ingress %s is open to the internet", ctx, rule)
			}
		}
	}
}
