package main

import (
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/guard"
)

// TestTheExampleSynthesizesWithEveryRoleLocked synthesizes the example as `cdk synth` would (through
// guard.Synth, as main does) and checks that every EC2 role carries a lock and that the guard
// found nothing: no error, no warning, nothing acknowledged.
func TestTheExampleSynthesizesWithEveryRoleLocked(t *testing.T) {
	dir := t.TempDir()
	var tpl map[string]any
	var manifest string
	var synthErr error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("synth panicked: %v", r)
			}
		}()
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
		if err := build(app); err != nil {
			t.Fatal(err)
		}
		synthErr = guard.Synth(app)
	}()
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	res, err := guard.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings)+len(res.Acknowledged) > 0 {
		t.Errorf("the guard found %d errors, %d warnings, %d acknowledged: %+v %+v", res.Errors, res.Warnings, len(res.Acknowledged), res.Findings, res.Acknowledged)
	}
	b, err := os.ReadFile(filepath.Join(dir, "workload.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	m, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	manifest = string(m)
	if strings.Contains(manifest, `"aws:cdk:error"`) {
		t.Fatalf("synth has errors:\n%s", manifest)
	}
	roles, locked := map[string]bool{}, map[string]bool{}
	for id, r := range tpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		props, _ := res["Properties"].(map[string]any)
		raw, _ := json.Marshal(props)
		switch res["Type"] {
		case "AWS::IAM::Role":
			if strings.Contains(string(raw), "ec2.amazonaws.com") {
				roles[id] = true
			}
		case "AWS::IAM::Policy":
			if props["PolicyName"] == "defenders-lock" {
				for _, ref := range props["Roles"].([]any) {
					locked[ref.(map[string]any)["Ref"].(string)] = true
				}
			}
		}
	}
	if len(roles) != 5 {
		t.Errorf("want 5 EC2 roles (Web, Edge, Worker, Vault, Fleet), got %d", len(roles))
	}
	for id := range roles {
		if !locked[id] {
			t.Errorf("role %s has no lock", id)
		}
	}
	checkBundledLambdas(t, dir)
}

// checkBundledLambdas: the security stack's two functions were built from the Defenders module
// (with its own go.sum, not this module's) into linux/arm64 bootstraps.
func checkBundledLambdas(t *testing.T, dir string) {
	boots, _ := filepath.Glob(filepath.Join(dir, "asset.*", "bootstrap"))
	for _, b := range boots {
		f, err := elf.Open(b)
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s is for %v, want arm64", b, f.Machine)
		}
		f.Close()
	}
	if len(boots) != 2 {
		t.Errorf("%d bundled bootstraps (%v), want 2 (detector, locker)", len(boots), boots)
	}
}
