package review

import (
	"bytes"
	"io/fs"
	"os"
	"testing"
)

// FuzzReviewNeverPanics feeds arbitrary templates through loading,
// analysis and both renderers: malformed input must give an error, never a
// panic.
func FuzzReviewNeverPanics(f *testing.F) {
	for _, file := range []string{
		"testdata/assemblies/locked-instance/luke.template.json",
		"testdata/assemblies/asg-shared-role/fleet.template.json",
		"testdata/assemblies/ssh-open-to-world/web.template.json",
		"testdata/assemblies/nested-stack/platform.template.json",
		"testdata/templates/bastion.template.json",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": {"Effect": "Allow"}}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := &loader{root: ".", names: map[string]int{}, readFile: func(name string) ([]byte, error) {
			if name == "fuzz.template.json" {
				return b, nil
			}
			return nil, fs.ErrNotExist
		}}
		if _, err := l.stack("fuzz.template.json", "fuzz", "fuzz", "", nil, nil, 0); err != nil {
			return
		}
		rep := Analyze(&Assembly{Path: "fuzz.template.json", Stacks: l.stacks})
		var buf bytes.Buffer
		if err := rep.WriteMarkdown(&buf); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
	})
}
