package shadow

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// maxRoleCellBytes bounds a role ARN as the Markdown table shows it.
const maxRoleCellBytes = 512

// WriteMarkdown renders the report for a review: a summary line, then per
// account a table with one row per role (calls, would deny, undetermined,
// counts by statement, example calls), the Other bucket, and the records
// that could not be evaluated. Everything taken from records is escaped
// (it cannot end a cell or a line, start a heading, link, emphasis or HTML)
// and cut to a bounded length.
func (r *Report) WriteMarkdown(w io.Writer) error {
	return r.Summary().WriteMarkdown(w)
}

// WriteMarkdown renders s as Report.WriteMarkdown does.
func (s Summary) WriteMarkdown(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "## Shadow mode: what the policy would deny\n\n")
	fmt.Fprintf(b, "%s evaluated: %d would be denied, %d undetermined", plural(s.Calls, "call"), s.WouldDeny, s.Undetermined)
	if s.Errors > 0 {
		fmt.Fprintf(b, "; %s could not be evaluated", plural(s.Errors, "record"))
	}
	b.WriteString(".\n")
	if s.Trimmed {
		b.WriteString("\nSome reports were too large for one log line: examples were dropped or roles counted under Other roles; the counts are exact.\n")
	}
	if s.Undetermined > 0 {
		b.WriteString("\nAn undetermined call depends on a fact its record does not carry (the example says which): it is neither allowed nor denied.\n")
	}
	for _, a := range s.Accounts {
		fmt.Fprintf(b, "\n### Account %s\n\n", code(a.Account))
		fmt.Fprintf(b, "%s, %s: %d would be denied, %d undetermined.\n\n", plural(int64(len(a.Roles)), "role"),
			plural(a.Calls, "call"), a.WouldDeny, a.Undetermined)
		tableHeader(b)
		for _, rs := range a.Roles {
			tableRow(b, code(clip(rs.Role, maxRoleCellBytes)), rs)
		}
	}
	if s.Other != nil {
		fmt.Fprintf(b, "\n### Other roles\n\nCalls of the (account, role) pairs beyond the %d listed one by one, counted together.\n\n", s.MaxRoles)
		tableHeader(b)
		tableRow(b, "(other roles)", *s.Other)
	}
	if s.Errors > 0 {
		fmt.Fprintf(b, "\n### Records that could not be evaluated\n\n%s", plural(s.Errors, "record"))
		if len(s.ErrorExamples) > 0 {
			fmt.Fprintf(b, ", among them:\n\n")
			for _, e := range s.ErrorExamples {
				b.WriteString("- ")
				if e.EventTime != "" || e.EventID != "" {
					fmt.Fprintf(b, "%s %s: ", code(e.EventTime), code(e.EventID))
				}
				b.WriteString(code(e.Error))
				b.WriteString("\n")
			}
		} else {
			b.WriteString(".\n")
		}
	}
	return b.Flush()
}

func tableHeader(b *bufio.Writer) {
	b.WriteString("| Role | Calls | Would deny | Undetermined | By statement | Examples |\n")
	b.WriteString("| --- | ---: | ---: | ---: | --- | --- |\n")
}

// tableRow writes one role's row; role is already escaped.
func tableRow(b *bufio.Writer, role string, rs RoleSummary) {
	var by, examples []string
	for _, st := range rs.Statements {
		counts := []string{}
		if st.WouldDeny > 0 {
			counts = append(counts, fmt.Sprintf("%d would deny", st.WouldDeny))
		}
		if st.Undetermined > 0 {
			counts = append(counts, fmt.Sprintf("%d undetermined", st.Undetermined))
		}
		by = append(by, code(st.Sid)+": "+strings.Join(counts, ", "))
		for _, e := range st.Examples {
			examples = append(examples, code(st.Sid)+": "+exampleText(e))
		}
	}
	for _, e := range rs.UndeterminedExamples {
		examples = append(examples, "undetermined: "+exampleText(e)+", because "+code(e.Reason))
	}
	fmt.Fprintf(b, "| %s | %d | %d | %d | %s | %s |\n", role, rs.Calls, rs.WouldDeny, rs.Undetermined,
		orDash(strings.Join(by, "<br>")), orDash(strings.Join(examples, "<br>")))
}

// exampleText renders an example call, escaped.
func exampleText(e Example) string {
	s := code(e.EventTime) + " " + code(e.EventSource) + " " + code(e.EventName) + " from " + code(e.SourceIPAddress)
	if e.VPCEndpointID != "" {
		s += " via " + code(e.VPCEndpointID)
	}
	if e.InstanceID != "" {
		s += ", instance " + code(e.InstanceID)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Everything a report takes from records (accounts, ARNs, statement
// names, event fields, reasons, error messages) goes through code, so
// that it cannot end a table cell or a line, start a heading or a list, or
// inject HTML, links, autolinks or emphasis: a code span renders its text
// literally.

// hidden reports whether r must be shown as an escape: control characters,
// line and paragraph separators, invisible formatting characters (bidi
// overrides, zero-width).
func hidden(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r)
}

// code renders s as inline code that is safe in a table cell: a backtick
// code span (with | escaped, which GFM tables require even in code) when s
// has no backtick, backslash or hidden character, else an HTML <code>
// element around escaped text.
func code(s string) string {
	if s != "" && !strings.ContainsAny(s, "`\\") && !strings.ContainsFunc(s, hidden) {
		return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
	}
	return "<code>" + escapeText(s) + "</code>"
}

// escapeText renders untrusted text as inert Markdown: hidden characters
// as escapes (\n, \u202e), <, > and & as entities, and every character
// that could start emphasis, a code span, a link, an image,
// strikethrough, math or end a table cell backslash-escaped; : and @ too,
// so that no autolink forms.
func escapeText(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case hidden(c):
			switch c {
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				fmt.Fprintf(&b, `\u%04x`, c)
			}
		case c == '<':
			b.WriteString("&lt;")
		case c == '>':
			b.WriteString("&gt;")
		case c == '&':
			b.WriteString("&amp;")
		case strings.ContainsRune("\\`*_[]|~$!:@", c):
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
