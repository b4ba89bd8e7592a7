package test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/review"
)

// TestReviewReportOfOurOwnApp runs the review over the synthesized app and keeps the report as
// testdata/review.md (the README shows it): both roles reviewed, Luke locked, Matt exempt, no
// findings.
func TestReviewReportOfOurOwnApp(t *testing.T) {
	s := synth(t, pinned, nil)
	rep, err := review.Review(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.HasErrors() {
		t.Errorf("our own app has review errors")
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(md.String(), s.Dir, "cdk.out")
	for _, want := range []string{"| luke |", "instance public IP", "| matt |", "exempt: Matt is the deliberate control", "No findings."} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	goldenText(t, "review.md", text)
}
