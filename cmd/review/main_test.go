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
