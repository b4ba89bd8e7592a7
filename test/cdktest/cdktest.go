// Package cdktest holds the helpers shared by the CDK tests: synthesize an app into a temporary
// cloud assembly, read its templates and annotations, and turn jsii panics into test failures.
package cdktest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/iameval"
)

// NoPanic runs f and turns a panic (a failed jsii call or assertion panics instead of calling
// t.Fail, and would take the whole test binary down) into t.Fatal.
func NoPanic(t testing.TB, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("jsii call panicked: %v\n%s", r, debug.Stack())
		}
	}()
	f()
}

// NewApp is an app that synthesizes into a temporary directory, with Lambda bundling skipped
// and the given context.
func NewApp(t testing.TB, ctx map[string]any) awscdk.App {
	t.Helper()
	full := map[string]any{"aws:cdk:bundling-stacks": []any{}}
	for k, v := range ctx {
		full[k] = v
	}
	var app awscdk.App
	NoPanic(t, func() {
		app = awscdk.NewApp(&awscdk.AppProps{Context: &full, Outdir: jsii.String(t.TempDir())})
	})
	return app
}

// Assembly is a synthesized app.
type Assembly struct {
	// Dir is the cloud assembly directory.
	Dir string
	// Templates maps stack artifact id (nested stacks: their template file name) to template.
	Templates map[string]map[string]any
	// Messages are the annotations (info, warning, error) of every construct.
	Messages []Message
}

// Message is one annotation from the manifest.
type Message struct {
	Path, Level, Data string
}

// Synth synthesizes app and loads every template (nested ones too) and annotation.
func Synth(t testing.TB, app awscdk.App) *Assembly {
	t.Helper()
	var dir string
	NoPanic(t, func() { dir = *app.Synth(nil).Directory() })
	a := &Assembly{Dir: dir, Templates: map[string]map[string]any{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tpl map[string]any
		if err := json.Unmarshal(b, &tpl); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		a.Templates[strings.TrimSuffix(filepath.Base(f), ".template.json")] = tpl
	}
	a.Messages = ReadMessages(t, dir)
	return a
}

// ReadMessages reads every annotation from the manifest of the cloud assembly in dir.
func ReadMessages(t testing.TB, dir string) []Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Artifacts map[string]struct {
			Metadata map[string][]struct {
				Type string `json:"type"`
				Data any    `json:"data"`
			} `json:"metadata"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []Message
	for _, art := range m.Artifacts {
		for path, entries := range art.Metadata {
			for _, e := range entries {
				if !strings.HasPrefix(e.Type, "aws:cdk:") || e.Type == "aws:cdk:logicalId" {
					continue
				}
				d, _ := json.Marshal(e.Data)
				out = append(out, Message{Path: path, Level: strings.TrimPrefix(e.Type, "aws:cdk:"), Data: string(d)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Errors returns the error annotations whose text contains substr.
func (a *Assembly) Errors(substr string) []Message { return a.level("error", substr) }

// Warnings returns the warning annotations whose text contains substr.
func (a *Assembly) Warnings(substr string) []Message { return a.level("warning", substr) }

func (a *Assembly) level(level, substr string) []Message {
	var out []Message
	for _, m := range a.Messages {
		if m.Level == level && strings.Contains(m.Data, substr) {
			out = append(out, m)
		}
	}
	return out
}

// Resources returns the resources of tpl whose Type is typ, by logical id.
func Resources(tpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	rs, _ := tpl["Resources"].(map[string]any)
	for id, r := range rs {
		m, _ := r.(map[string]any)
		if m["Type"] == typ {
			out[id] = m
		}
	}
	return out
}

// Props returns the Properties of a resource.
func Props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// Keys returns the sorted keys of m.
func Keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Substitute replaces every CloudFormation intrinsic in v ({"Ref": ...}, {"Fn::GetAtt": ...},
// {"Fn::ImportValue": ...}, ...) by the value that values maps its compact JSON to, and fails the
// test on any intrinsic it does not know, so that a new reference cannot slip by unevaluated.
func Substitute(t testing.TB, v any, values map[string]any) any {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if join, ok := x["Fn::Join"].([]any); ok && len(x) == 1 && len(join) == 2 {
			// Fn::Join of parts that substitute to strings is evaluated, e.g. an address + "/32".
			sep, _ := join[0].(string)
			parts, _ := Substitute(t, join[1], values).([]any)
			var strs []string
			for _, p := range parts {
				s, ok := p.(string)
				if !ok {
					t.Fatalf("Fn::Join part %v is not a string after substitution", p)
				}
				strs = append(strs, s)
			}
			return strings.Join(strs, sep)
		}
		if len(x) == 1 {
			for k := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					b, _ := json.Marshal(x)
					if val, ok := values[string(b)]; ok {
						return val
					}
					t.Fatalf("no value for intrinsic %s (have %v)", b, Keys(values))
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = Substitute(t, e, values)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Substitute(t, e, values)
		}
		return out
	}
	return v
}

// PolicyDocuments returns the document of every AWS::IAM::Policy in tpl, with intrinsics
// replaced by Substitute, ready for the IAM evaluator.
func PolicyDocuments(t testing.TB, tpl map[string]any, values map[string]any) []iameval.Policy {
	t.Helper()
	var docs []iameval.Policy
	for _, id := range Keys(Resources(tpl, "AWS::IAM::Policy")) {
		p := Resources(tpl, "AWS::IAM::Policy")[id]
		doc, err := json.Marshal(Substitute(t, Props(p)["PolicyDocument"], values))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, iameval.Policy{Name: id, Document: doc})
	}
	if len(docs) == 0 {
		t.Fatal("no AWS::IAM::Policy in the template")
	}
	return docs
}

// Decision is one request and the decision the IAM evaluator must reach.
type Decision struct {
	Action, Resource, Want string
}

// ExpectDecisions evaluates every case for principal, whose policies are docs, in one run of
// the independent IAM evaluator, and reports each mismatch as a subtest failure.
func ExpectDecisions(t *testing.T, principal string, docs []iameval.Policy, cases []Decision) {
	t.Helper()
	var reqs []iameval.Request
	for _, c := range cases {
		reqs = append(reqs, iameval.Request{Name: c.Action + " on " + c.Resource, Principal: principal,
			Action: c.Action, Resource: c.Resource, Context: map[string]any{}, IdentityPolicies: docs})
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := cases[i].Want
		t.Run(r.Name, func(t *testing.T) {
			if r.Decision != want {
				t.Errorf("%s, want %s", r.Decision, want)
			}
		})
	}
}
