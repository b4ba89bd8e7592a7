package review

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeOne parses one YAML value through the template decoder.
func decodeOne(t *testing.T, src string) any {
	t.Helper()
	v, err := decodeYAML([]byte(src))
	if err != nil {
		t.Fatalf("decodeYAML(%q): %v", src, err)
	}
	return v
}

// jsonValue parses JSON as decodeJSON does.
func jsonValue(t *testing.T, src string) any {
	t.Helper()
	v, err := decodeJSON([]byte(src))
	if err != nil {
		t.Fatalf("decodeJSON(%q): %v", src, err)
	}
	return v
}

func TestYAMLShortFormsBecomeTheirJSONForm(t *testing.T) {
	tests := []struct{ yaml, json string }{
		{`v: !Ref SSHLocation`, `{"v": {"Ref": "SSHLocation"}}`},
		{`v: !GetAtt Sg.GroupId`, `{"v": {"Fn::GetAtt": ["Sg", "GroupId"]}}`},
		{`v: !GetAtt Network.Outputs.SshGroupId`, `{"v": {"Fn::GetAtt": ["Network", "Outputs.SshGroupId"]}}`},
		{`v: !GetAtt [Sg, GroupId]`, `{"v": {"Fn::GetAtt": ["Sg", "GroupId"]}}`},
		{`v: !Sub 'ec2.${AWS::URLSuffix}'`, `{"v": {"Fn::Sub": "ec2.${AWS::URLSuffix}"}}`},
		{"v: !Sub\n  - '${Host}/32'\n  - Host: !GetAtt Eip.PublicIp", `{"v": {"Fn::Sub": ["${Host}/32", {"Host": {"Fn::GetAtt": ["Eip", "PublicIp"]}}]}}`},
		{`v: !If [Open, 0.0.0.0/0, !Ref AWS::NoValue]`, `{"v": {"Fn::If": ["Open", "0.0.0.0/0", {"Ref": "AWS::NoValue"}]}}`},
		{`v: !FindInMap [Cidrs, !Ref Env, Ssh]`, `{"v": {"Fn::FindInMap": ["Cidrs", {"Ref": "Env"}, "Ssh"]}}`},
		{`v: !Join ['', [arn:, !Ref AWS::Partition, ':s3:::b']]`, `{"v": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::b"]]}}`},
		{`v: !Select [1, !Split [',', !ImportValue Cidrs]]`, `{"v": {"Fn::Select": [1, {"Fn::Split": [",", {"Fn::ImportValue": "Cidrs"}]}]}}`},
		{`v: !Equals [!Ref Env, prod]`, `{"v": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}}`},
		{`v: !And [!Condition A, !Or [!Condition B, !Not [!Condition C]]]`,
			`{"v": {"Fn::And": [{"Condition": "A"}, {"Fn::Or": [{"Condition": "B"}, {"Fn::Not": [{"Condition": "C"}]}]}]}}`},
		{"v: !Base64\n  Fn::Sub: |\n    #!/bin/bash\n    echo ${AWS::Region}\n", `{"v": {"Fn::Base64": {"Fn::Sub": "#!/bin/bash\necho ${AWS::Region}\n"}}}`},
		{`v: !Cidr [!GetAtt Vpc.CidrBlock, 4, 8]`, `{"v": {"Fn::Cidr": [{"Fn::GetAtt": ["Vpc", "CidrBlock"]}, 4, 8]}}`},
		{`v: !GetAZs ''`, `{"v": {"Fn::GetAZs": ""}}`},
		{"v: !GetAZs\nw: 1", `{"v": {"Fn::GetAZs": ""}, "w": 1}`},
		{"v: !GetAZs\n  Ref: AWS::Region", `{"v": {"Fn::GetAZs": {"Ref": "AWS::Region"}}}`},
		{"v: !Transform\n  Name: AWS::Include\n  Parameters: {Location: s3://b/k}", `{"v": {"Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "s3://b/k"}}}}`},
		{`v: !ToJsonString {a: 1}`, `{"v": {"Fn::ToJsonString": {"a": 1}}}`},
		{`v: !Ref 22`, `{"v": {"Ref": "22"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			got, want := decodeOne(t, tc.yaml), jsonValue(t, tc.json)
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Errorf("got %s, want %s", g, tc.json)
			}
		})
	}
}

func TestYAMLScalarsAreReadAsCloudFormationReadsThem(t *testing.T) {
	tests := []struct{ yaml, json string }{
		{"v: 22", `{"v": 22}`},
		{"v: '22'", `{"v": "22"}`},
		{"v: -1", `{"v": -1}`},
		{"v: 1.50", `{"v": 1.50}`},
		{"v: 0x16", `{"v": 22}`},
		{"v: 017", `{"v": 15}`},
		{"v: .inf", `{"v": ".inf"}`},
		{"v: 2012-10-17", `{"v": "2012-10-17"}`},
		{"v: 0.0.0.0/0", `{"v": "0.0.0.0/0"}`},
		{"v: true", `{"v": true}`},
		{"v: yes", `{"v": true}`},
		{"v: Off", `{"v": false}`},
		{"v: 'yes'", `{"v": "yes"}`},
		{"v: ~", `{"v": null}`},
		{"v:", `{"v": null}`},
		{"22: a", `{"22": "a"}`},
		{"v: |\n  a\n  b\n", `{"v": "a\nb\n"}`},
		{"\xef\xbb\xbfv: 1", `{"v": 1}`},
		{"v: &anchor 1", `{"v": 1}`},
		{"---\nv: 1\n...\n", `{"v": 1}`},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			v, err := decodeTemplate([]byte(tc.yaml), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if want := jsonValue(t, tc.json); !reflect.DeepEqual(v, want) {
				g, _ := json.Marshal(v)
				t.Errorf("got %s, want %s", g, tc.json)
			}
		})
	}
}

func TestYAMLThatCloudFormationRefusesIsAnError(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"an alias", "a: &x [1]\nb: *x\n", "line 2, column 4: alias *x: CloudFormation does not support YAML aliases"},
		{"a billion laughs", "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n", "does not support YAML aliases"},
		{"a hash merge", "a: {x: 1}\nb:\n  <<: {y: 2}\n", "line 3, column 3: hash merge (<<)"},
		{"a binary tag", "a: !!binary aGVsbG8=\n", "tag !!binary"},
		{"a set", "a: !!set {x: null}\n", "tag !!set"},
		{"an explicit timestamp", "a: !!timestamp 2010-09-09\n", "tag !!timestamp"},
		{"a key given twice", "Resources:\n  A: 1\n  A: 2\n", "line 3, column 3: key \"A\" appears twice (first at line 2)"},
		{"a list as a key", "? [a]\n: 1\n", "a mapping key must be a string"},
		{"two documents", "a: 1\n---\nb: 2\n", "a second document"},
		{"a syntax error", "Resources:\n  A: [\n", "invalid YAML"},
		{"a tab indent", "Resources:\n\tA: 1\n", "invalid YAML"},
		{"an empty file", "", "empty YAML document"},
		{"an unknown tag", "a: !<tag:example.com,2000:x> 1\n", "CloudFormation does not support it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeTemplate([]byte(tc.yaml), "t.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// findingsOf reviews path and returns its findings as comparable lines.
func findingsOf(t *testing.T, path string) []string {
	t.Helper()
	rep, err := Review(path)
	if err != nil {
		t.Fatalf("Review(%s): %v", path, err)
	}
	var out []string
	for _, f := range rep.Findings {
		out = append(out, fmt.Sprintf("%s %s %s %s/%s: %s", f.ID, f.Rule, f.Severity, f.Stack, f.Resource, f.Message))
	}
	return out
}

func TestRealYAMLTemplatesMatchTheirJSONEquivalents(t *testing.T) {
	for _, name := range []string{"ec2-instance-with-security-group", "elb-locked-down-asg", "ecs-public-vpc"} {
		t.Run(name, func(t *testing.T) {
			yamlFile, jsonFile := filepath.Join("testdata", "yaml", name+".yaml"), filepath.Join("testdata", "yaml", name+".json")
			yb, err := os.ReadFile(yamlFile)
			if err != nil {
				t.Fatal(err)
			}
			jb, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			yv, err := decodeTemplate(yb, yamlFile)
			if err != nil {
				t.Fatal(err)
			}
			jv, err := decodeTemplate(jb, jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(yv, jv) {
				g, _ := json.MarshalIndent(yv, "", "  ")
				t.Fatalf("%s does not decode to %s:\n%s", yamlFile, jsonFile, g)
			}
			yf, jf := findingsOf(t, yamlFile), findingsOf(t, jsonFile)
			if !slices.Equal(yf, jf) {
				t.Errorf("findings differ\nYAML:\n%s\nJSON:\n%s", strings.Join(yf, "\n"), strings.Join(jf, "\n"))
			}
			if len(yf) == 0 {
				t.Errorf("%s has no findings: the comparison proves little", yamlFile)
			}
		})
	}
}

// stackNames returns the names and parents of an assembly's stacks.
func stackNames(a *Assembly) []string {
	var out []string
	for _, st := range a.Stacks {
		out = append(out, st.Name+" <- "+st.Parent+" ("+st.File+")")
	}
	return out
}

func TestADirectoryOfTemplatesFollowsNestedStacksByLocalPath(t *testing.T) {
	dir := filepath.Join("testdata", "yaml", "nested")
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"parent <-  (parent.yaml)",
		"parent/Compute <- parent (compute/instance.yaml)",
		"parent/Network <- parent (network.yaml)",
	}
	if got := stackNames(a); !slices.Equal(got, want) {
		t.Fatalf("stacks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rep := Analyze(a)
	var unreviewed []Finding
	for _, f := range rep.Findings {
		if f.Rule == RuleUnreviewedStack {
			unreviewed = append(unreviewed, f)
		}
	}
	if len(unreviewed) != 1 || unreviewed[0].Resource != "Monitoring" || unreviewed[0].Severity != SeverityWarning ||
		!strings.Contains(unreviewed[0].Message, "nested stack `parent/Monitoring` was not reviewed") ||
		!strings.Contains(unreviewed[0].Message, "https://${ArtifactBucket}.s3.<region>.amazonaws.com/monitoring.yaml") {
		t.Errorf("want one DEF-TPL-1 warning about parent/Monitoring's S3 URL, got %+v", unreviewed)
	}
	// The nested instance is reviewed: it allows IMDSv1.
	if !slices.ContainsFunc(rep.Findings, func(f Finding) bool {
		return f.Rule == RuleIMDSv1 && f.Stack == "parent/Compute" && f.Resource == "WebServer"
	}) {
		t.Errorf("no IMDSv1 finding on the nested instance: %v", findingsOf(t, dir))
	}
	// Loading the parent template alone gives the same stacks.
	b, err := Load(filepath.Join(dir, "parent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := stackNames(b); !slices.Equal(got, want) {
		t.Errorf("parent.yaml alone: stacks\n%s", strings.Join(got, "\n"))
	}
}

// writeFiles writes files (slash-separated names) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		file := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// nestedStackYAML is a template nesting one stack by TemplateURL url.
func nestedStackYAML(url string) string {
	return "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: " + url + "\n"
}

func TestANestedStackThatCannotBeReadIsAWarningNamingIt(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"an S3 URL", map[string]string{"app.yaml": nestedStackYAML("https://bucket.s3.amazonaws.com/child.yaml")},
			"its TemplateURL `https://bucket.s3.amazonaws.com/child.yaml` is not a local file"},
		{"an s3:// URL", map[string]string{"app.yaml": nestedStackYAML("s3://bucket/child.yaml")},
			"its TemplateURL `s3://bucket/child.yaml` is not a local file"},
		{"a computed URL", map[string]string{"app.yaml": nestedStackYAML("!Join ['', [!Ref Base, /child.yaml]]")},
			"its TemplateURL `${Base}/child.yaml` is computed"},
		{"a missing file", map[string]string{"app.yaml": nestedStackYAML("child.yaml")},
			"its template `child.yaml` does not exist"},
		{"no TemplateURL", map[string]string{"app.yaml": "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n"},
			"it has no TemplateURL"},
		{"a CDK asset that is missing", map[string]string{
			"manifest.json": `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "app.template.json"}}}}`,
			"app.template.json": `{"Resources": {"Child": {"Type": "AWS::CloudFormation::Stack", "Properties": {},
				"Metadata": {"aws:asset:path": "child.nested.template.json"}}}}`},
			"its template `child.nested.template.json` does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			rep, err := Review(dir)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Warnings != 1 || len(rep.Findings) != 1 {
				t.Fatalf("want exactly one warning, got %+v", rep.Findings)
			}
			f := rep.Findings[0]
			if f.Rule != RuleUnreviewedStack || f.Stack != "app" || f.Resource != "Child" ||
				!strings.Contains(f.Message, "nested stack `app/Child` was not reviewed: "+tc.want) {
				t.Errorf("got %+v, want a DEF-TPL-1 warning on app/Child saying %q", f, tc.want)
			}
		})
	}
}

func TestADirectorySkipsFilesThatAreNotTemplates(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.yaml":           "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n",
		"package.json":       `{"name": "app", "version": "1.0.0"}`,
		"tsconfig.json":      "{\n  // comments are no JSON\n  \"compilerOptions\": {}\n}\n",
		"buildspec.yml":      "version: 0.2\nphases:\n  build:\n    commands: [make]\n",
		".cfnlintrc.yaml":    "Resources: [\n", // hidden: skipped even though broken
		"notes.txt":          "Resources:",
		"sub/other.yaml":     "Resources: [\n", // subdirectories are not read
		"big.json":           `{"x": "` + strings.Repeat("a", MaxTemplateSize) + `"}`,
		"mkdocs.yml":         "site_name: x\nmarkdown_extensions:\n  - !!python/name:material.extensions.emoji.twemoji\n",
		"empty.template":     "",
		"list.template.json": `[1, 2]`,
	})
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := stackNames(a); !slices.Equal(got, []string{"app <-  (app.yaml)"}) {
		t.Errorf("stacks: %v", got)
	}
	// A broken file that looks like a template is an error, not a silent skip.
	writeFiles(t, dir, map[string]string{"broken.yaml": "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  A: [\n"})
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "broken.yaml") || !strings.Contains(err.Error(), "invalid YAML") {
		t.Errorf("want an error naming broken.yaml, got %v", err)
	}
}

func TestBadInputIsAClearErrorWithoutReadingOutsideTheInput(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.template.json": `{"Resources": {}}`, "secret.yaml": "Resources: {}\n"})
	manifest := func(templateFile string) string {
		return `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "` + templateFile + `"}}}}`
	}
	big := "Resources:\n  T:\n    Type: AWS::SNS::Topic\n    Metadata:\n      Pad: " + strings.Repeat("x", MaxTemplateSize) + "\n"
	tests := []struct {
		name  string
		files map[string]string
		links map[string]string // link name -> target
		arg   string
		want  []string
	}{
		{name: "a template over 1 MB", files: map[string]string{"app.yaml": big}, arg: "app.yaml",
			want: []string{"app.yaml", "1 MB, CloudFormation's own limit for a template in S3"}},
		{name: "a template over 1 MB in a directory", files: map[string]string{"app.yaml": big},
			want: []string{"app.yaml", "1 MB"}},
		{name: "a manifest templateFile through ..", files: map[string]string{"manifest.json": manifest("OUTSIDE/secret.template.json")},
			want: []string{`templateFile "../`, "leads outside the input directory"}},
		{name: "an absolute manifest templateFile", files: map[string]string{"manifest.json": manifest(filepath.ToSlash(filepath.Join(outside, "secret.template.json")))},
			want: []string{"is an absolute path"}},
		{name: "a manifest templateFile that is a symbolic link out", files: map[string]string{"manifest.json": manifest("app.template.json")},
			links: map[string]string{"app.template.json": filepath.Join(outside, "secret.template.json")},
			want:  []string{"symbolic link that leads outside the input directory"}},
		{name: "a nested assembly outside", files: map[string]string{"manifest.json": `{"artifacts": {"s": {"type": "cdk:cloud-assembly", "properties": {"directoryName": ".."}}}}`},
			want: []string{"directoryName", "leads outside"}},
		{name: "a nested TemplateURL through ..", files: map[string]string{"app.yaml": nestedStackYAML("OUTSIDE/secret.yaml")},
			want: []string{"app.yaml: resource Child (AWS::CloudFormation::Stack)", "leads outside the input directory"}},
		{name: "an absolute nested TemplateURL", files: map[string]string{"app.yaml": nestedStackYAML("/etc/passwd")},
			want: []string{"resource Child", `"/etc/passwd" is an absolute path`}},
		{name: "a nested TemplateURL that is a symbolic link out", files: map[string]string{"app.yaml": nestedStackYAML("child.yaml")},
			links: map[string]string{"child.yaml": filepath.Join(outside, "secret.yaml")},
			arg:   "app.yaml", want: []string{"resource Child", "symbolic link that leads outside"}},
		{name: "a nested TemplateURL out of a single template's directory", files: map[string]string{"sub/app.yaml": nestedStackYAML("../other.yaml"), "other.yaml": "Resources: {}\n"},
			arg: "sub/app.yaml", want: []string{"leads outside"}},
		{name: "a template in a directory that is a symbolic link out", files: map[string]string{},
			links: map[string]string{"app.yaml": filepath.Join(outside, "secret.yaml")},
			want:  []string{"app.yaml", "symbolic link that leads outside"}},
		{name: "a nested stack that includes itself", files: map[string]string{"app.yaml": nestedStackYAML("app.yaml")},
			arg: "app.yaml", want: []string{"app.yaml includes itself"}},
		{name: "a cycle of two templates in a directory", files: map[string]string{"a.yaml": nestedStackYAML("b.yaml"), "b.yaml": nestedStackYAML("a.yaml")},
			want: []string{"includes itself"}},
		{name: "a cycle of three through a subdirectory", files: map[string]string{"a.yaml": nestedStackYAML("sub/b.yaml"), "sub/b.yaml": nestedStackYAML("c.yaml"), "sub/c.yaml": nestedStackYAML("../a.yaml")},
			arg: "a.yaml", want: []string{"a.yaml includes itself"}},
		{name: "a manifest that is a symbolic link out", links: map[string]string{"manifest.json": filepath.Join(outside, "secret.template.json")},
			want: []string{"manifest.json", "symbolic link that leads outside"}},
		{name: "a manifest.json that is not CDK's", files: map[string]string{"manifest.json": `{"name": "extension", "manifest_version": 3}`, "app.yaml": "Resources: {}\n"},
			want: []string{"neither version nor artifacts; is this a cloud assembly?"}},
		{name: "a nested template that is a directory", files: map[string]string{"app.yaml": nestedStackYAML("sub"), "sub/x": ""},
			want: []string{"sub: a directory, not a regular file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rel, err := filepath.Rel(dir, outside)
			if err != nil {
				t.Fatal(err)
			}
			for name, content := range tc.files {
				tc.files[name] = strings.ReplaceAll(content, "OUTSIDE", filepath.ToSlash(rel))
			}
			writeFiles(t, dir, tc.files)
			for name, target := range tc.links {
				if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
					t.Skipf("symbolic links: %v", err)
				}
			}
			_, err = Load(filepath.Join(dir, tc.arg))
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

// sharedNestingAssembly writes a cloud assembly of files templates, each of
// which nests the next one refs times (CDK style, by aws:asset:path), and
// pads them to about size bytes in all. Walked without memoisation it has
// refs^(files-1) nested stacks.
func sharedNestingAssembly(t *testing.T, files, refs, size int) string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{"manifest.json": `{"version": "48.0.0", "artifacts": {"app": {"type": "aws:cloudformation:stack",
		"environment": "aws://123456789012/eu-west-3", "properties": {"templateFile": "t0.template.json"}}}}`}
	for i := range files {
		res := map[string]any{
			"Role": map[string]any{"Type": "AWS::IAM::Role", "Properties": map[string]any{"AssumeRolePolicyDocument": map[string]any{
				"Statement": []any{map[string]any{"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}}}},
			"Profile": map[string]any{"Type": "AWS::IAM::InstanceProfile", "Properties": map[string]any{"Roles": []any{map[string]any{"Ref": "Role"}}}},
			"Server": map[string]any{"Type": "AWS::EC2::Instance", "Properties": map[string]any{
				"IamInstanceProfile": map[string]any{"Ref": "Profile"}, "SecurityGroupIds": []any{map[string]any{"Ref": "Group"}}}},
			"Group": map[string]any{"Type": "AWS::EC2::SecurityGroup", "Properties": map[string]any{"SecurityGroupIngress": []any{
				map[string]any{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": map[string]any{"Ref": "Ssh"}}}}},
		}
		tmpl := map[string]any{"Parameters": map[string]any{"Ssh": map[string]any{"Type": "String"}}, "Resources": res,
			"Outputs": map[string]any{"GroupId": map[string]any{"Value": map[string]any{"Fn::GetAtt": []any{"Group", "GroupId"}}}}}
		if i+1 < files {
			for r := range refs {
				res[fmt.Sprintf("Child%d", r)] = map[string]any{"Type": "AWS::CloudFormation::Stack",
					"Properties": map[string]any{"Parameters": map[string]any{"Ssh": map[string]any{"Ref": "Ssh"}},
						"TemplateURL": "https://s3.amazonaws.com/bucket/child.json"},
					"Metadata": map[string]any{"aws:asset:path": fmt.Sprintf("t%d.template.json", i+1)}}
			}
		}
		b, err := json.Marshal(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if pad := size/files - len(b) - 40; pad > 0 {
			tmpl["Metadata"] = map[string]any{"Pad": strings.Repeat("x", pad)}
			b, _ = json.Marshal(tmpl)
		}
		out[fmt.Sprintf("t%d.template.json", i)] = string(b)
	}
	writeFiles(t, dir, out)
	return dir
}

func TestNestedStacksSharedByManyParentsAreReadOnce(t *testing.T) {
	dir := sharedNestingAssembly(t, 10, 8, 48<<10)
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, _ := e.Info()
		total += fi.Size()
	}
	start := time.Now()
	rep, err := Review(dir)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files, %d bytes, 8 nested references each: loaded and analysed in %v", len(entries), total, elapsed)
	if total < 40<<10 || total > 56<<10 {
		t.Errorf("the assembly has %d bytes, want about 48 KB", total)
	}
	if len(rep.Stacks) != 10 {
		t.Errorf("want each of the 10 templates once, got %d stacks", len(rep.Stacks))
	}
	if elapsed > 500*time.Millisecond {
		t.Errorf("took %v, want well under a second", elapsed)
	}
}

func TestATemplateNestedTwiceIsOneStackJudgedOnItsOwnParameters(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.yaml": `Resources:
  Office:
    Type: AWS::CloudFormation::Stack
    Properties: {TemplateURL: ssh.yaml, Parameters: {Source: 198.51.100.0/24}}
  World:
    Type: AWS::CloudFormation::Stack
    Properties: {TemplateURL: ./ssh.yaml, Parameters: {Source: 0.0.0.0/0}}
  Once:
    Type: AWS::CloudFormation::Stack
    Properties: {TemplateURL: once.yaml}
`,
		"ssh.yaml":  "Parameters:\n  Source: {Type: String}\nResources:\n  Sg: {Type: AWS::EC2::SecurityGroup}\n",
		"once.yaml": "Resources:\n  Topic: {Type: AWS::SNS::Topic}\n",
	})
	a, err := Load(filepath.Join(dir, "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"app <-  (app.yaml)", "app/Office <- app (ssh.yaml)", "app/Once <- app (once.yaml)"}
	if got := stackNames(a); !slices.Equal(got, want) {
		t.Fatalf("stacks %v, want %v", got, want)
	}
	byName := map[string]*Stack{}
	for _, st := range a.Stacks {
		byName[st.Name] = st
	}
	app := byName["app"]
	if app.resources["Office"].childStack != byName["app/Office"] || app.resources["World"].childStack != byName["app/Office"] {
		t.Error("both stack resources must lead to the one nested stack")
	}
	if byName["app/Office"].parentRes != nil {
		t.Error("a template nested twice must not take the parameters of one of its parents")
	}
	if byName["app/Once"].parentRes != app.resources["Once"] {
		t.Error("a template nested once takes its parent's parameters")
	}
}
