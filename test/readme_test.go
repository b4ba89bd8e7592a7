package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeShowsTheEvidenceTheTestsProduce keeps the README honest: the attack/defence table and
// the review report it shows are the ones the tests write (testdata/attack-table.md,
// testdata/review.md; the report's headings are demoted to fit the README).
func TestReadmeShowsTheEvidenceTheTestsProduce(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"attack-table.md", "review.md"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSpace(string(b))
		if f == "review.md" {
			want = strings.Replace(strings.ReplaceAll(want, "\n## ", "\n#### "), "# Defenders review", "#### Defenders review", 1)
		}
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not show the current testdata/%s; paste it in (review.md with #### headings)", f)
		}
	}
}
