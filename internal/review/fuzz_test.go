package review

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzReviewNeverPanics feeds arbitrary templates (JSON, or YAML when they
// do not start with "{") through loading, analysis and both renderers:
// malformed input must give an error, never a panic. A YAML template that
// decodes must decode to plain JSON data.
func FuzzReviewNeverPanics(f *testing.F) {
	for _, file := range []string{
		"testdata/assemblies/locked-instance/luke.template.json",
		"testdata/assemblies/asg-shared-role/fleet.template.json",
		"testdata/assemblies/ssh-open-to-world/web.template.json",
		"testdata/assemblies/nested-stack/platform.template.json",
		"testdata/templates/bastion.template.json",
		"testdata/yaml/ec2-instance-with-security-group.yaml",
		"testdata/yaml/elb-locked-down-asg.yaml",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": {"Effect": "Allow"}}}}}}`))
	f.Add([]byte("Resources:\n  S:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: !Sub 'https://${B}.s3.amazonaws.com/c.yaml'\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	empty := f.TempDir() // the input directory: nested templates are looked up here, and found missing
	f.Fuzz(func(t *testing.T, b []byte) {
		const name = "fuzz.template"
		v, err := decodeTemplate(b, name)
		if err != nil {
			return
		}
		if t := bytes.TrimLeft(b, " \t\r\n\xef\xbb\xbf"); len(t) == 0 || t[0] != '{' {
			js, err := json.Marshal(v)
			if err != nil {
				panic("YAML decoded to something JSON cannot hold: " + err.Error())
			}
			back, err := decodeJSON(js)
			if err != nil || !reflect.DeepEqual(back, v) {
				panic("YAML decoded to something that does not round-trip through JSON")
			}
		}
		tmpl, ok := v.(map[string]any)
		if !ok {
			return
		}
		l := &loader{root: empty, shown: "fuzz", names: map[string]int{}, loading: map[string]bool{}, loaded: map[string]*Stack{}}
		if _, err := l.build(filepath.Join(empty, name), tmpl, "fuzz", "fuzz", "", nil, nil, 0); err != nil {
			return
		}
		renderBoth(t, Analyze(&Assembly{Path: name, Stacks: l.stacks}))
	})
}

// FuzzAssemblyNeverPanics writes a few files the fuzzer chooses (a
// manifest, templates, nested templates: see archive) into a directory and
// reviews it: no panic, no hang, no read outside the directory; errors are
// fine.
func FuzzAssemblyNeverPanics(f *testing.F) {
	for _, dir := range []string{
		"testdata/assemblies/nested-stack",
		"testdata/assemblies/stage",
		"testdata/assemblies/locked-instance",
		"testdata/yaml/nested",
	} {
		f.Add(archiveOf(f, dir))
	}
	f.Add([]byte(`-- manifest.json --
{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "../outside.template.json"}}}}
`))
	f.Add([]byte(`-- a.yaml --
Resources:
  B: {Type: AWS::CloudFormation::Stack, Properties: {TemplateURL: b.yaml}}
  B2: {Type: AWS::CloudFormation::Stack, Properties: {TemplateURL: ./b.yaml}}
-- b.yaml --
Resources:
  C: {Type: AWS::CloudFormation::Stack, Properties: {TemplateURL: sub/c.json}}
  A: {Type: AWS::CloudFormation::Stack, Properties: {TemplateURL: https://example.com/a.yaml}}
-- sub/c.json --
{"Resources": {"B": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "../b.yaml"}}}}
`))
	f.Fuzz(func(t *testing.T, ar []byte) {
		dir := t.TempDir()
		for name, content := range parseArchive(ar) {
			file := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				return // a name that is also a directory's
			}
			if err := os.WriteFile(file, content, 0o644); err != nil {
				return
			}
		}
		rep, err := Review(dir)
		if err != nil {
			return
		}
		renderBoth(t, rep)
	})
}

// renderBoth writes both renderings of rep.
func renderBoth(t *testing.T, rep *Report) {
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
}

// The fuzz archive is a list of files, each introduced by a line
// "-- name --" (as txtar writes them). Names are slash-separated paths of at
// most two levels inside the directory; others, and files past the eighth,
// are dropped.
const (
	archiveMaxFiles = 8
	archiveMaxName  = 64
)

// parseArchive splits an archive into its files.
func parseArchive(ar []byte) map[string][]byte {
	files := map[string][]byte{}
	var name string
	var content []byte
	flush := func() {
		if name != "" && len(files) < archiveMaxFiles {
			files[name] = content
		}
	}
	for line := range bytes.Lines(ar) {
		s := strings.TrimRight(string(line), "\r\n")
		if n, ok := strings.CutPrefix(s, "-- "); ok {
			if n, ok = strings.CutSuffix(n, " --"); ok {
				flush()
				name, content = "", nil
				if n = strings.TrimSpace(n); validArchiveName(n) {
					name = n
				}
				continue
			}
		}
		if name != "" {
			content = append(content, line...)
		}
	}
	flush()
	return files
}

// validArchiveName accepts local slash-separated paths of at most two
// levels, without backslashes or hidden elements.
func validArchiveName(n string) bool {
	if n == "" || len(n) > archiveMaxName || strings.ContainsAny(n, "\\:\x00") || !fs.ValidPath(n) || strings.Count(n, "/") > 1 {
		return false
	}
	for _, el := range strings.Split(n, "/") {
		if strings.HasPrefix(el, ".") {
			return false
		}
	}
	return filepath.IsLocal(filepath.FromSlash(n))
}

// archiveOf packs the files of dir (two levels at most) into an archive.
func archiveOf(tb testing.TB, dir string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return err
		}
		buf.WriteString("-- " + path.Clean(p) + " --\n")
		buf.Write(b)
		if !bytes.HasSuffix(b, []byte("\n")) {
			buf.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
