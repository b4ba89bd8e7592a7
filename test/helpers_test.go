// Package test holds the cross-stack tests: snapshot (golden) templates, targeted security
// assertions and policy semantics evaluated by an independent IAM evaluator.
package test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/stacks"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// synthed is one synthesized Defenders app.
type synthed struct {
	App       *stacks.App
	Templates map[string]map[string]any // stack name -> template
	Assembly  awscdk.Stage
	Dir       string
}

// synthCache holds the apps synthesized without a checkip client, by context and environment:
// eleven tests read the same pinned app, which costs about 2 s per synth. Tests only read a
// cached app (its templates, its directory); TestMain removes the directories.
var synthCache = struct {
	sync.Mutex
	apps map[string]*synthed
	dirs []string
}{apps: map[string]*synthed{}}

// TestMain removes the cached apps' directories after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range synthCache.dirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}

// synth builds the Defenders app with the given context (plus the test defaults) exactly as
// main.go does, and synthesizes it into a temporary directory. Without a client the result is
// shared by every test that asks for the same context and environment (read it, never change it).
func synth(t *testing.T, ctx map[string]any, client *http.Client) *synthed {
	t.Helper()
	if client != nil {
		return synthInto(t, ctx, client, t.TempDir())
	}
	b, err := json.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := string(b) + "\x00" + os.Getenv("CDK_DEFAULT_ACCOUNT") + "\x00" + os.Getenv("CDK_DEFAULT_REGION")
	synthCache.Lock()
	defer synthCache.Unlock()
	if s, ok := synthCache.apps[key]; ok {
		return s
	}
	dir, err := os.MkdirTemp("", "defenders-test-synth-")
	if err != nil {
		t.Fatal(err)
	}
	synthCache.dirs = append(synthCache.dirs, dir)
	s := synthInto(t, ctx, nil, dir)
	synthCache.apps[key] = s
	return s
}

// synthInto synthesizes the app into dir.
func synthInto(t *testing.T, ctx map[string]any, client *http.Client, dir string) *synthed {
	t.Helper()
	out := &synthed{Templates: map[string]map[string]any{}, Dir: dir}
	full := map[string]any{
		// Tests never reach the internet: unless a test says otherwise, point checkip at a closed
		// local port so that the lookup fails fast and the app fails closed.
		"defenders:checkipUrl":    "http://127.0.0.1:1/",
		"aws:cdk:bundling-stacks": []any{},
		// As the CDK CLI does: construct paths in the templates, for reviewers and the report.
		"aws:cdk:enable-path-metadata": true,
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

// golden compares tpl with testdata/<name>.template.json, or rewrites it with -update.
func golden(t *testing.T, name string, tpl map[string]any) {
	t.Helper()
	cdktest.GoldenTemplate(t, filepath.Join("testdata", name+".template.json"), tpl)
}

// resources and props are shorthands for the cdktest helpers.
var (
	resources = cdktest.Resources
	props     = cdktest.Props
)
