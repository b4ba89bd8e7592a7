package review

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// addFinding records a finding of rule about origin, associated with subjects; its level is
// the rule's.
func (z *analyzer) addFinding(rule string, origin *resource, subjects []*resource, format string, args ...any) {
	z.findings = append(z.findings, &Finding{
		Rule: rule, Severity: levelOf(rule), Stack: origin.st.Name, Resource: origin.id,
		Message:  fmt.Sprintf(format, args...),
		subjects: append([]*resource{origin}, subjects...),
	})
}

// numberFindings sorts findings (errors first) and numbers them E1.., W1...
func numberFindings(fs []*Finding) []Finding {
	slices.SortFunc(fs, func(a, b *Finding) int {
		return cmp.Or(strings.Compare(string(a.Severity), string(b.Severity)), strings.Compare(a.Stack, b.Stack),
			strings.Compare(a.Resource, b.Resource), strings.Compare(a.Message, b.Message))
	})
	var merged []*Finding
	for _, f := range fs {
		if n := len(merged); n > 0 {
			last := merged[n-1]
			if last.Severity == f.Severity && last.Stack == f.Stack && last.Resource == f.Resource && last.Message == f.Message {
				last.subjects = append(last.subjects, f.subjects...)
				continue
			}
		}
		merged = append(merged, f)
	}
	out := make([]Finding, len(merged))
	var e, w int
	for i, f := range merged {
		out[i] = *f
		if f.Severity == SeverityError {
			e++
			out[i].ID = fmt.Sprintf("E%d", e)
		} else {
			w++
			out[i].ID = fmt.Sprintf("W%d", w)
		}
	}
	return out
}

// orderIDs sorts and deduplicates finding ids: E1, E2, E10, W1, A1.
func orderIDs(ids []string) []string {
	rank := func(id string) int { return strings.Index("EWA", id[:1]) }
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	})
	ids = slices.Compact(ids)
	if ids == nil {
		return []string{}
	}
	return ids
}
