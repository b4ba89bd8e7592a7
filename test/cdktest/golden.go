package cdktest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Update is the -update flag of every test binary that imports cdktest: rewrite golden files.
var Update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var assetHashRE = regexp.MustCompile(`[0-9a-f]{64}`)

// Normalise replaces asset hashes so that unrelated changes do not churn the golden files.
func Normalise(b []byte) []byte {
	return assetHashRE.ReplaceAll(b, []byte("ASSET_HASH"))
}

// GoldenTemplate compares tpl (asset hashes normalised) with the file at path, or rewrites it
// with -update.
func GoldenTemplate(t testing.TB, path string, tpl map[string]any) {
	t.Helper()
	got, err := json.MarshalIndent(tpl, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	GoldenText(t, path, string(Normalise(got))+"\n")
}

// GoldenText compares text with the file at path, or rewrites it with -update.
func GoldenText(t testing.TB, path, text string) {
	t.Helper()
	if *Update {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(want) != text {
		t.Errorf("%s differs from the golden file; if the change is intended, rerun with -update and review the diff.\n%s",
			path, firstDiff(string(want), text))
	}
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
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
