package guard_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/test/cdktest"
)

// probePlugin is the smallest Go policy validation plugin: it reports one violation of rule
// PROBE-1 on the first template's queue.
type probePlugin struct {
	calls int
	paths []string
}

func (p *probePlugin) Name() *string       { return jsii.String("probe") }
func (p *probePlugin) Version() *string    { return jsii.String("1.2.3") }
func (p *probePlugin) RuleIds() *[]*string { return &[]*string{jsii.String("PROBE-1")} }

func (p *probePlugin) Validate(ctx awscdk.IPolicyValidationContextBeta1) *awscdk.PolicyValidationPluginReportBeta1 {
	p.calls++
	for _, s := range *ctx.TemplatePaths() {
		p.paths = append(p.paths, *s)
	}
	return &awscdk.PolicyValidationPluginReportBeta1{
		Success: jsii.Bool(false),
		Violations: &[]*awscdk.PolicyViolationBeta1{{
			RuleName: jsii.String("PROBE-1"), Description: jsii.String("probe violation"), Fix: jsii.String("probe fix"),
			Severity: jsii.String("error"),
			ViolatingResources: &[]*awscdk.PolicyViolatingResourceBeta1{{
				ResourceLogicalId: jsii.String("Queue4A7E3555"), TemplatePath: jsii.String(p.paths[0]),
				Locations: &[]*string{jsii.String("Properties")},
			}},
		}},
	}
}

// cdkVersion is the aws-cdk-lib version that synthesized the assembly in dir, read from the
// construct info of the app in tree.json ("2.240.0").
func cdkVersion(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "tree.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tree struct {
		Tree struct {
			ConstructInfo struct{ Version string } `json:"constructInfo"`
		} `json:"tree"`
	}
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	return tree.Tree.ConstructInfo.Version
}

// TestPolicyValidationPlugin records what CDK's policy validation plugins do for a Go app (the
// package documentation says why the guard does not rely on them): on aws-cdk-go v2.240.0 a
// violation is reported but synth does not fail; on v2.277.0 synth fails.
func TestPolicyValidationPlugin(t *testing.T) {
	// CDK prints the plugin's report from inside the jsii kernel, and the runtime forwards it to
	// this process's stdout whenever it next reads from the kernel: in a later test, or inside an
	// Example's captured output. Run the probe in a process of its own.
	if os.Getenv("DEFENDERS_PLUGIN_PROBE") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPolicyValidationPlugin$", "-test.v")
		cmd.Env = append(os.Environ(), "DEFENDERS_PLUGIN_PROBE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the plugin probe failed: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "plugin_test.go") {
				t.Log(strings.TrimSpace(line))
			}
		}
		return
	}
	p := &probePlugin{}
	dir := t.TempDir()
	ctx := map[string]any{"@aws-cdk/core:validationReportJson": true}
	var panicked any
	cdktest.NoPanic(t, func() {
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir), Context: &ctx,
			PolicyValidationBeta1: &[]awscdk.IPolicyValidationPluginBeta1{p}})
		awssqs.NewQueue(awscdk.NewStack(app, jsii.String("S"), nil), jsii.String("Queue"), nil)
		func() {
			defer func() { panicked = recover() }()
			app.Synth(nil)
		}()
	})
	if p.calls != 1 || len(p.paths) != 1 || filepath.Base(p.paths[0]) != "S.template.json" {
		t.Fatalf("the Go plugin was called %d times with %v; want once with S.template.json", p.calls, p.paths)
	}
	ver := cdkVersion(t, dir)
	t.Logf("aws-cdk-go %s: app.Synth panicked: %v", ver, panicked)
	// The legacy JSON report (asked for by the context) names the rule and the construct path
	// CDK mapped from the logical id.
	legacy, err := os.ReadFile(filepath.Join(dir, "policy-validation-report.json"))
	if err != nil {
		t.Fatalf("no policy-validation-report.json: %v", err)
	}
	for _, want := range []string{`"ruleName": "PROBE-1"`, `"constructPath": "S/Queue/Resource"`, `"status": "failure"`} {
		if !strings.Contains(string(legacy), want) {
			t.Errorf("policy-validation-report.json lacks %s:\n%s", want, legacy)
		}
	}
	switch {
	case ver == "2.240.0" || ver == "2.250.0":
		// The synth "fails" only inside the jsii kernel (process.exitCode = 1 in the Node child):
		// the Go app carries on and exits 0.
		if panicked != nil {
			t.Errorf("aws-cdk-go %s: synth failed (%v); the guard's documentation says it does not", ver, panicked)
		}
		if _, err := os.Stat(filepath.Join(dir, "validation-report.json")); err == nil {
			t.Errorf("aws-cdk-go %s writes validation-report.json", ver)
		}
	case ver == "2.277.0":
		msg := fmt.Sprint(panicked)
		if panicked == nil || !strings.Contains(msg, "ValidationFailed") || !strings.Contains(msg, "validation-report.json") {
			t.Errorf("aws-cdk-go %s: synth did not fail as documented: %v", ver, panicked)
		}
		report, err := os.ReadFile(filepath.Join(dir, "validation-report.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"ruleName": "PROBE-1"`, `"constructPath": "S/Queue/Resource"`, `"logicalId": "Queue4A7E3555"`} {
			if !strings.Contains(string(report), want) {
				t.Errorf("validation-report.json lacks %s:\n%s", want, report)
			}
		}
	default:
		t.Logf("aws-cdk-go %s: behaviour not recorded in the guard's documentation", ver)
	}
}
