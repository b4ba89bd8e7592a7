package review

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// gfmPipes counts the cell separators of a table row as GitHub's parser (cmark-gfm) sees them:
// a backslash escapes the next ASCII punctuation character, a backslash included.
func gfmPipes(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", rune(line[i+1])):
			i++
		case line[i] == '|':
			n++
		}
	}
	return n
}

// danglingBacktick reports whether a line has an unescaped backtick run without a closing run
// of the same length (CommonMark code spans), outside <code> elements.
func danglingBacktick(line string) bool {
	line = regexp.MustCompile(`<code>.*?</code>`).ReplaceAllString(line, "")
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' && i+1 < len(line) {
			i++
			continue
		}
		if line[i] != '`' {
			continue
		}
		j := i
		for j < len(line) && line[j] == '`' {
			j++
		}
		run := line[i:j]
		k := strings.Index(line[j:], run)
		for k >= 0 && j+k+len(run) < len(line) && line[j+k+len(run)] == '`' {
			next := strings.Index(line[j+k+len(run):], run)
			if next < 0 {
				k = -1
				break
			}
			k += len(run) + next
		}
		if k < 0 {
			return true
		}
		i = j + k + len(run) - 1
	}
	return false
}

func TestMarkdownCannotBeForgedByNamesPathsOrValues(t *testing.T) {
	rep := reviewPath(t, "testdata/assemblies/hostile-names")
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	lines := strings.Split(md, "\n")

	t.Run("the only headings are the report's own", func(t *testing.T) {
		var got []string
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimLeft(l, " "), "#") {
				got = append(got, l)
			}
		}
		want := []string{"# Defenders review: EC2 roles, locks and ingress", "## Roles assumable by EC2", "## Findings", "## Acknowledged", "## Legend"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("headings:\n%s", strings.Join(got, "\n"))
		}
	})
	t.Run("every line is one the report writes", func(t *testing.T) {
		starts := []string{"#", "|", "- **", "Reviewed ", "**Result", "Findings acknowledged", "No findings."}
		for _, l := range lines {
			ok := l == ""
			for _, s := range starts {
				ok = ok || strings.HasPrefix(l, s)
			}
			if !ok {
				t.Errorf("unexpected line %q", l)
			}
		}
		if n := strings.Count(md, "- **E"); n != rep.Errors {
			t.Errorf("%d error items for %d errors: a forged finding?", n, rep.Errors)
		}
	})
	t.Run("table rows keep their number of cells", func(t *testing.T) {
		rows := 0
		cols := 0
		for _, l := range lines {
			if !strings.HasPrefix(l, "|") {
				cols = 0
				continue
			}
			if cols == 0 {
				cols = gfmPipes(l)
			}
			if got := gfmPipes(l); got != cols {
				t.Errorf("row has %d separators, header %d: %q", got, cols, l)
			}
			rows++
		}
		if rows < 6 {
			t.Errorf("only %d table rows", rows)
		}
	})
	t.Run("no raw HTML, control or invisible characters get through", func(t *testing.T) {
		tags := regexp.MustCompile(`<(/?)([a-zA-Z]+)`)
		for _, m := range tags.FindAllStringSubmatch(md, -1) {
			if tag := strings.ToLower(m[2]); tag != "br" && tag != "code" {
				t.Errorf("raw HTML tag <%s%s", m[1], m[2])
			}
		}
		for _, r := range []string{"\r", "\u2028", "\u2029", "\u202e", "\x00"} {
			if strings.Contains(md, r) {
				t.Errorf("output contains %q", r)
			}
		}
	})
	t.Run("code spans are closed on the line they open", func(t *testing.T) {
		for _, l := range lines {
			if danglingBacktick(l) {
				t.Errorf("dangling backtick in %q", l)
			}
		}
	})
	t.Run("the hostile text stays visible, escaped", func(t *testing.T) {
		for _, want := range []string{`Injected heading`, `\\n`, `\\u202e`, `&lt;script&gt;`, `forged finding`} {
			if !strings.Contains(md, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
}

func TestCodeAndTextEscaping(t *testing.T) {
	for _, tc := range []struct{ in, code, text string }{
		{"plain/path", "`plain/path`", "plain/path"},
		{"a|b", "`a\\|b`", `a\|b`},
		{"a\\|b", `<code>a\\\|b</code>`, `a\\\|b`},
		{"x`y", "<code>x\\`y</code>", "x\\`y"},
		{"l1\nl2\r", `<code>l1\\nl2\\r</code>`, `l1\\nl2\\r`},
		{"<b>&", "`<b>&`", "&lt;b&gt;&amp;"},
		{"", "<code></code>", ""},
	} {
		if got := code(tc.in); got != tc.code {
			t.Errorf("code(%q) = %q, want %q", tc.in, got, tc.code)
		}
		if got := escapeText(tc.in); got != tc.text {
			t.Errorf("escapeText(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
}
