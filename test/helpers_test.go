// Package test holds the cross-stack tests: snapshot (golden) templates, targeted security
// assertions and policy semantics evaluated by an independent IAM evaluator.
package test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/stacks"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

var update = flag.Bool("update", false, "rewrite the golden templates in testdata/")

// synthed is one synthesized Defenders app.
type synthed struct {
	App       *stacks.App
	Templates map[string]map[string]any // stack name -> template
	Assembly  awscdk.Stage
	Dir       string
}

// synth builds the Defenders app with the given context (plus the test defaults) exactly as
// main.go does, and synthesizes it into a temporary directory.
func synth(t *testing.T, ctx map[string]any, client *http.Client) *synthed {
	t.Helper()
	out := &synthed{Templates: map[string]map[string]any{}, Dir: t.TempDir()}
	full := map[string]any{
		// Tests never reach the internet: unless a test says otherwise, point checkip at a closed
		// local port so that the lookup fails fast and the app fails closed.
		"defenders:checkipUrl":    "http://127.0.0.1:1/",
		"aws:cdk:bundling-stacks": []any{},
	}
	for k, v := range ctx {
		full[k] = v
	}
	var err error
	cdktest.NoPanic(t, func() {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &full, Outdir: jsii.String(out.Dir)})
		out.App, err = stacks.FromContext(context.Background(), app, client)
		if err != nil {
			return
		}
		asm := app.Synth(nil)
		for _, st := range *asm.Stacks() {
			b, jerr := json.Marshal(st.Template())
			if jerr != nil {
				err = jerr
				return
			}
			var tpl map[string]any
			if jerr := json.Unmarshal(b, &tpl); jerr != nil {
				err = jerr
				return
			}
			out.Templates[*st.StackName()] = tpl
		}
	})
	if err != nil {
		t.Fatalf("synth: %v", err)
	}
	return out
}

// synthErr is like synth but expects FromContext to fail and returns its error.
func synthErr(t *testing.T, ctx map[string]any) error {
	t.Helper()
	full := map[string]any{"defenders:checkipUrl": "http://127.0.0.1:1/"}
	for k, v := range ctx {
		full[k] = v
	}
	var err error
	cdktest.NoPanic(t, func() {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &full, Outdir: jsii.String(t.TempDir())})
		_, err = stacks.FromContext(context.Background(), app, nil)
	})
	if err == nil {
		t.Fatalf("synth with %v: want an error, got none", ctx)
	}
	return err
}

var assetHashRE = regexp.MustCompile(`[0-9a-f]{64}`)

// normalise replaces asset hashes so that unrelated changes do not churn the golden files.
func normalise(b []byte) []byte {
	return assetHashRE.ReplaceAll(b, []byte("ASSET_HASH"))
}

// golden compares tpl with testdata/<name>.template.json, or rewrites it with -update.
func golden(t *testing.T, name string, tpl map[string]any) {
	t.Helper()
	got, err := json.MarshalIndent(tpl, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(normalise(got), '\n')
	path := filepath.Join("testdata", name+".template.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./test -update` to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden template; if the change is intended, run `go test ./test -update` and review the diff.\n%s",
			path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	la, lb := splitLines(a), splitLines(b)
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y)
		}
	}
	return ""
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// resources and props are shorthands for the cdktest helpers.
var (
	resources = cdktest.Resources
	props     = cdktest.Props
)
