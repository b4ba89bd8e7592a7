package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata is where internal/review keeps its hand-written assemblies.
const testdata = "../../internal/review/testdata"

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "a locked assembly prints the report and exits 0",
			args:       []string{testdata + "/assemblies/locked-instance"},
			wantCode:   0,
			wantStdout: "| Stack | Role | Instances | Lock mode | Locked to | IMDS | Ingress | Findings |",
		},
		{
			name:       "an unlocked role exits 1 and says so on stderr",
			args:       []string{testdata + "/assemblies/unlocked-instance"},
			wantCode:   1,
			wantStdout: "**E1 error**",
			wantStderr: "1 error finding(s)",
		},
		{
			name:       "warnings alone exit 0",
			args:       []string{testdata + "/assemblies/ssh-wide-cidr"},
			wantCode:   0,
			wantStdout: "**W1 warning**",
		},
		{
			name:       "--json prints JSON and keeps the exit code",
			args:       []string{"--json", testdata + "/assemblies/imdsv1"},
			wantCode:   1,
			wantStdout: `"imds": "IMDSv1 allowed"`,
		},
		{
			name:       "a single template file is accepted",
			args:       []string{testdata + "/templates/bastion.template.json"},
			wantCode:   1,
			wantStdout: "`bastion`",
		},
		{
			name:       "a YAML template with short forms is accepted",
			args:       []string{testdata + "/yaml/ecs-public-vpc.yaml"},
			wantCode:   1,
			wantStdout: "`DEF-LOCK-1` `ecs-public-vpc` › `EC2Role`",
		},
		{
			name:       "a directory of templates is reviewed with its nested stacks, and an unreadable one is a warning",
			args:       []string{testdata + "/yaml/nested"},
			wantCode:   1,
			wantStdout: "nested stack `parent/Monitoring` was not reviewed",
		},
		{
			name:       "a malformed template exits 2 naming the file and the resource",
			args:       []string{testdata + "/assemblies/malformed-template"},
			wantCode:   2,
			wantStderr: "malformed-template/app.template.json: resource appRole1A2B3C4D (AWS::IAM::Role)",
		},
		{
			name:       "a missing directory exits 2",
			args:       []string{filepath.Join(t.TempDir(), "cdk.out")},
			wantCode:   2,
			wantStderr: "does not exist",
		},
		{
			name:       "two paths exit 2 with the usage",
			args:       []string{"a", "b"},
			wantCode:   2,
			wantStderr: "usage: review",
		},
		{
			name:       "an unknown flag exits 2",
			args:       []string{"--markdown"},
			wantCode:   2,
			wantStderr: "flag provided but not defined",
		},
		{
			name:       "-h prints the usage and exits 0",
			args:       []string{"-h"},
			wantCode:   0,
			wantStderr: "usage: review",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("run(%q) = %d, want %d\nstderr: %s", tc.args, code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout does not contain %q:\n%s", tc.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantStderr, stderr.String())
			}
			if tc.wantCode == 2 && stdout.Len() > 0 {
				t.Errorf("a failed run printed a report:\n%s", stdout.String())
			}
		})
	}
}

func TestRunJSONIsValid(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--json", testdata + "/assemblies/asg-shared-role"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr: %s", code, stderr.String())
	}
	var v struct {
		Roles []struct {
			Instances []struct{ Kind string } `json:"instances"`
		} `json:"roles"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("--json output does not parse: %v", err)
	}
	if len(v.Roles) != 1 || len(v.Roles[0].Instances) != 2 {
		t.Fatalf("want one role shared by two instances, got %+v", v.Roles)
	}
}

func TestRunReadsCdkOutByDefault(t *testing.T) {
	dir := t.TempDir()
	src := testdata + "/assemblies/exempt-role"
	if err := os.CopyFS(filepath.Join(dir, "cdk.out"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "Reviewed `cdk.out`") {
		t.Fatalf("report does not name cdk.out:\n%s", stdout.String())
	}
}

func TestRunRefusesBadInputWithExitCode2(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		arg        string
		wantStderr string
	}{
		{
			name:       "a template over 1 MB",
			files:      map[string]string{"big.yaml": "Resources: {}\n#" + strings.Repeat("x", 1<<20)},
			arg:        "big.yaml",
			wantStderr: "CloudFormation's own limit for a template in S3",
		},
		{
			name: "a manifest whose templateFile leaves the assembly",
			files: map[string]string{"cdk.out/manifest.json": `{"artifacts": {"app": {"type": "aws:cloudformation:stack",
				"properties": {"templateFile": "../app.template.json"}}}}`, "app.template.json": `{"Resources": {}}`},
			arg:        "cdk.out",
			wantStderr: "leads outside the input directory",
		},
		{
			name:       "a nested stack that nests itself",
			files:      map[string]string{"app.yaml": "Resources:\n  Self: {Type: AWS::CloudFormation::Stack, Properties: {TemplateURL: ./app.yaml}}\n"},
			arg:        "app.yaml",
			wantStderr: "includes itself",
		},
		{
			name:       "a YAML alias",
			files:      map[string]string{"app.yaml": "Resources:\n  A: &a {Type: AWS::SNS::Topic}\n  B: *a\n"},
			arg:        "app.yaml",
			wantStderr: "CloudFormation does not support YAML aliases",
		},
		{
			name:       "a device",
			arg:        "/dev/null",
			wantStderr: "is a device",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				file := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			arg := tc.arg
			if strings.HasPrefix(arg, "/dev/") {
				if _, err := os.Stat(arg); err != nil || filepath.Separator != '/' {
					t.Skip("no", arg)
				}
			} else {
				arg = filepath.Join(dir, arg)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{arg}, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantStderr, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("a refused input printed a report:\n%s", stdout.String())
			}
		})
	}
}
