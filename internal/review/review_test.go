package review

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCases are the hand-written assemblies under testdata and what their
// reports must count.
var goldenCases = []struct {
	name     string
	golden   string
	path     string
	errors   int
	warnings int
}{
	{"a locked instance with a VPC and security group imported from another stack has no findings",
		"locked-instance", "testdata/assemblies/locked-instance", 0, 0},
	{"an unlocked role without an exemption is an error",
		"unlocked-instance", "testdata/assemblies/unlocked-instance", 1, 0},
	{"an exempted role shows the reason instead of an error",
		"exempt-role", "testdata/assemblies/exempt-role", 0, 0},
	{"a role shared by an Auto Scaling group and an instance through one launch template is locked to NAT egress",
		"asg-shared-role", "testdata/assemblies/asg-shared-role", 0, 0},
	{"SSH, RDP and all traffic open to the world are errors",
		"ssh-open-to-world", "testdata/assemblies/ssh-open-to-world", 3, 0},
	{"SSH from ranges wider than a /24 or a /64 is a warning",
		"ssh-wide-cidr", "testdata/assemblies/ssh-wide-cidr", 0, 2},
	{"instances that allow IMDSv1 are errors",
		"imdsv1", "testdata/assemblies/imdsv1", 2, 0},
	{"a lock that allows another instance's address is an error",
		"lock-other-instance", "testdata/assemblies/lock-other-instance", 1, 0},
	{"a VPC-endpoints-only lock denies every internet call",
		"endpoints-only", "testdata/assemblies/endpoints-only", 0, 0},
	{"a nested stack is read and its parameters are followed to the parent",
		"nested-stack", "testdata/assemblies/nested-stack", 0, 0},
	{"a stage's nested assembly is read and an Elastic IP lock is traced to its instance",
		"stage", "testdata/assemblies/stage", 0, 0},
	{"a single hand-written template is reviewed without a manifest",
		"single-template", "testdata/templates/bastion.template.json", 1, 2},
}

func TestReviewMatchesTheGoldenFiles(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Review(tc.path)
			if err != nil {
				t.Fatalf("Review(%s): %v", tc.path, err)
			}
			var md, js bytes.Buffer
			if err := rep.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "golden", tc.golden+".md"), md.Bytes())
			golden(t, filepath.Join("testdata", "golden", tc.golden+".json"), js.Bytes())
			if rep.Errors != tc.errors || rep.Warnings != tc.warnings {
				t.Errorf("got %d errors and %d warnings, want %d and %d", rep.Errors, rep.Warnings, tc.errors, tc.warnings)
			}
			if rep.HasErrors() != (tc.errors > 0) {
				t.Errorf("HasErrors() = %v with %d errors", rep.HasErrors(), rep.Errors)
			}
		})
	}
}

func TestReportsAreStableAcrossRuns(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			var first []byte
			for i := range 5 {
				rep, err := Review(tc.path)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := rep.WriteMarkdown(&buf); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = buf.Bytes()
				} else if !bytes.Equal(first, buf.Bytes()) {
					t.Fatalf("run %d differs from run 0", i)
				}
			}
		})
	}
}

func TestTheJSONReportRoundTrips(t *testing.T) {
	rep, err := Review("testdata/assemblies/locked-instance")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("report JSON does not parse: %v", err)
	}
	if len(back.Roles) != 1 || back.Roles[0].Lock.Status != LockLocked || back.Roles[0].Lock.Modes[0] != ModeInstanceIP {
		t.Fatalf("round trip lost the lock: %+v", back.Roles)
	}
}

func TestMalformedTemplatesFailWithAClearError(t *testing.T) {
	t.Run("the golden malformed assembly names the file and both resources", func(t *testing.T) {
		_, err := Review("testdata/assemblies/malformed-template")
		if err == nil {
			t.Fatal("want an error")
		}
		golden(t, filepath.Join("testdata", "golden", "malformed-template.err"), []byte(err.Error()+"\n"))
	})

	tests := []struct {
		name  string
		files map[string]string
		arg   string // relative to the temporary directory; "" means the directory
		want  []string
	}{
		{
			name:  "invalid JSON is reported with its line and column",
			files: map[string]string{"t.template.json": "{\n  \"Resources\": {\n    \"A\": {\"Type\": \"AWS::IAM::Role\",, }\n  }\n}"},
			arg:   "t.template.json",
			want:  []string{"t.template.json", "line 3, column"},
		},
		{
			name:  "a template without Resources is rejected",
			files: map[string]string{"t.template.json": `{"Outputs": {}}`},
			arg:   "t.template.json",
			want:  []string{"t.template.json", "no Resources section"},
		},
		{
			name:  "a resource without a Type names the resource",
			files: map[string]string{"t.template.json": `{"Resources": {"Broken": {"Properties": {}}}}`},
			arg:   "t.template.json",
			want:  []string{"t.template.json", "resource Broken", "no Type"},
		},
		{
			name: "a policy statement with a malformed Condition names the path",
			files: map[string]string{"t.template.json": `{"Resources": {"Lock": {"Type": "AWS::IAM::Policy", "Properties": {
				"PolicyDocument": {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"NotIpAddress": "1.2.3.4"}}]},
				"Roles": [{"Ref": "R"}]}}}}`},
			arg:  "t.template.json",
			want: []string{"resource Lock (AWS::IAM::Policy)", "Properties.PolicyDocument.Statement[0].Condition.NotIpAddress"},
		},
		{
			name:  "an ingress rule without IpProtocol names the rule",
			files: map[string]string{"t.template.json": `{"Resources": {"SG": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"SecurityGroupIngress": [{"CidrIp": "0.0.0.0/0"}]}}}}`},
			arg:   "t.template.json",
			want:  []string{"resource SG (AWS::EC2::SecurityGroup)", "Properties.SecurityGroupIngress[0].IpProtocol: missing"},
		},
		{
			name: "an exemption without a reason is rejected",
			files: map[string]string{"t.template.json": `{"Resources": {"R": {"Type": "AWS::IAM::Role", "Metadata": {"defenders:exempt": ""},
				"Properties": {"AssumeRolePolicyDocument": {"Statement": []}}}}}`},
			arg:  "t.template.json",
			want: []string{"resource R (AWS::IAM::Role)", "Metadata.defenders:exempt", "non-empty reason"},
		},
		{
			name:  "a YAML template with an alias is refused as CloudFormation refuses it",
			files: map[string]string{"t.template.yaml": "Resources:\n  A: &a {Type: AWS::SNS::Topic}\n  B: *a\n"},
			arg:   "t.template.yaml",
			want:  []string{"t.template.yaml", "line 3", "does not support YAML aliases"},
		},
		{
			name:  "a manifest passed as a template points to its directory",
			files: map[string]string{"manifest.json": `{"version": "48.0.0", "artifacts": {}}`},
			arg:   "manifest.json",
			want:  []string{"cloud assembly manifest", "pass its directory"},
		},
		{
			name:  "a directory without a manifest or templates is not a cloud assembly",
			files: map[string]string{"README": "hello", "package.json": `{"name": "app"}`},
			want:  []string{"is not a cloud assembly", "no CloudFormation template"},
		},
		{
			name:  "a path that does not exist suggests cdk synth",
			files: map[string]string{},
			arg:   "cdk.out",
			want:  []string{"does not exist", "cdk synth"},
		},
		{
			name:  "a corrupt manifest is reported with its position",
			files: map[string]string{"manifest.json": `{"artifacts": {"s": {"type": 7}}}`},
			want:  []string{"parse manifest", `artifact "s"`},
		},
		{
			name:  "a stack artifact without a template file is named",
			files: map[string]string{"manifest.json": `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {}}}}`},
			want:  []string{"parse manifest", `artifact "app"`, "templateFile"},
		},
		{
			name:  "a stack whose template is missing names the template",
			files: map[string]string{"manifest.json": `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "app.template.json"}}}}`},
			want:  []string{"read template", "app.template.json"},
		},
		{
			name: "a nested stack whose template is outside the assembly names the stack and the path",
			files: map[string]string{
				"manifest.json": `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "app.template.json"}}}}`,
				"app.template.json": `{"Resources": {"Child": {"Type": "AWS::CloudFormation::Stack", "Properties": {},
					"Metadata": {"aws:asset:path": "../child.nested.template.json"}}}}`,
			},
			want: []string{"app.template.json", "resource Child", "../child.nested.template.json", "outside"},
		},
		{
			name: "a nested stack that includes itself is a cycle, not a hang",
			files: map[string]string{
				"manifest.json": `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "app.template.json"}}}}`,
				"app.template.json": `{"Resources": {"A": {"Type": "AWS::CloudFormation::Stack", "Metadata": {"aws:asset:path": "app.template.json"}},
					"B": {"Type": "AWS::CloudFormation::Stack", "Metadata": {"aws:asset:path": "app.template.json"}}}}`,
			},
			want: []string{"app.template.json includes itself"},
		},
		{
			name: "a nested assembly is searched for its own manifest",
			files: map[string]string{
				"manifest.json": `{"artifacts": {"assembly-Dev": {"type": "cdk:cloud-assembly", "properties": {"directoryName": "assembly-Dev"}}}}`,
			},
			want: []string{"read manifest", "assembly-Dev"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Review(filepath.Join(dir, tc.arg))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "review: ") {
				t.Errorf("error %q does not start with the package prefix", err)
			}
		})
	}
}

// golden compares got with the file, or rewrites the file with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read golden file (run go test ./internal/review -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run go test ./internal/review -update if the change is intended):\n--- got ---\n%s", file, got)
	}
}

// TestReadmeListsEveryRule keeps the README's rules table equal to the catalogue.
func TestReadmeListsEveryRule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range Rules {
		if seen[r.ID] {
			t.Errorf("rule %s is listed twice", r.ID)
		}
		seen[r.ID] = true
		row := fmt.Sprintf("| `%s` | %s | %s | %s | %s |", r.ID, r.Level, r.Title, r.Why, r.Fix)
		if !strings.Contains(string(b), row) {
			t.Errorf("README.md lacks the row of %s:\n%s", r.ID, row)
		}
	}
}
