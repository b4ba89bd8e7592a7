package review_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/review"
)

// corpusDir holds real third-party CloudFormation templates (sources, licences and the reading
// behind every expectation are in its README.md) and expected.json, the findings each template
// must produce: the ground truth the review is checked against.
const corpusDir = "testdata/corpus"

// corpusFinding is one expected finding: a rule and the logical id of the resource it is about.
type corpusFinding struct {
	Rule     string `json:"rule"`
	Resource string `json:"resource"`
}

func (f corpusFinding) String() string { return f.Rule + " " + f.Resource }

// loadCorpusExpectations reads expected.json, rejecting unknown fields and duplicate entries.
func loadCorpusExpectations(t *testing.T) map[string][]corpusFinding {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var want map[string][]corpusFinding
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	for file, fs := range want {
		seen := map[corpusFinding]bool{}
		for _, f := range fs {
			if _, err := review.RuleByID(f.Rule); err != nil {
				t.Errorf("expected.json: %s: %v", file, err)
			}
			if f.Resource == "" {
				t.Errorf("expected.json: %s: %s without a resource", file, f.Rule)
			}
			if seen[f] {
				t.Errorf("expected.json: %s: %s listed twice", file, f)
			}
			seen[f] = true
		}
	}
	return want
}

// corpusFiles lists the templates of the corpus (every file but the README and expected.json).
func corpusFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() || e.Name() == "README.md" || e.Name() == "expected.json" {
			continue
		}
		files = append(files, e.Name())
	}
	return files
}

// TestCorpusIsComplete checks that every template of the corpus has expectations and every
// expectation a template.
func TestCorpusIsComplete(t *testing.T) {
	want := loadCorpusExpectations(t)
	files := corpusFiles(t)
	for _, f := range files {
		if _, ok := want[f]; !ok {
			t.Errorf("%s is in %s but not in expected.json", f, corpusDir)
		}
	}
	for f := range want {
		if !slices.Contains(files, f) {
			t.Errorf("expected.json lists %s, which is not in %s", f, corpusDir)
		}
	}
	if len(files) < 25 {
		t.Errorf("the corpus has %d templates, want at least 25", len(files))
	}
}

// TestCorpusFindings reviews every template of the corpus and compares the set of
// (rule, resource) of its findings with expected.json, exactly: a missing finding and an
// unexpected one both fail, and the failure lists both.
func TestCorpusFindings(t *testing.T) {
	want := loadCorpusExpectations(t)
	files := make([]string, 0, len(want))
	for f := range want {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			a, err := review.Load(filepath.Join(corpusDir, file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			rep := review.Analyze(a)
			got := map[corpusFinding][]review.Finding{}
			for _, f := range rep.Findings {
				k := corpusFinding{Rule: f.Rule, Resource: f.Resource}
				got[k] = append(got[k], f)
			}
			expected := map[corpusFinding]bool{}
			var missing, unexpected []string
			for _, f := range want[file] {
				expected[f] = true
				if _, ok := got[f]; !ok {
					missing = append(missing, f.String())
				}
			}
			for k, fs := range got {
				if expected[k] {
					continue
				}
				for _, f := range fs {
					unexpected = append(unexpected, fmt.Sprintf("%s (%s: %s)", k, f.Severity, shorten(f.Message, 200)))
				}
			}
			if len(missing) == 0 && len(unexpected) == 0 {
				return
			}
			slices.Sort(missing)
			slices.Sort(unexpected)
			var b strings.Builder
			fmt.Fprintf(&b, "%s: the findings differ from expected.json (see %s/README.md for the reading behind each expectation)", file, corpusDir)
			for _, m := range missing {
				fmt.Fprintf(&b, "\n  missing:    %s", m)
			}
			for _, u := range unexpected {
				fmt.Fprintf(&b, "\n  unexpected: %s", u)
			}
			t.Error(b.String())
		})
	}
}

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
