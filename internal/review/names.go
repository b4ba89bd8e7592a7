package review

import (
	"strings"
)

// Suffixes of values the review could not follow.
const (
	suffixUnresolved    = " (unresolved)"
	suffixNotInAssembly = " (not in this assembly)"
	suffixDefaultSG     = "default security group of the VPC (not in the template)"
)

// unresolvedText renders a value that could not be traced to a resource
// of the assembly, saying so.
func unresolvedText(v any) string {
	if _, ok := v.(string); ok {
		return Render(v) + suffixNotInAssembly
	}
	return Render(v) + suffixUnresolved
}

// cdkPath returns the resource's construct path without a trailing
// "/Resource" or "/Default", or "".
func cdkPath(r *resource) string {
	p, _ := r.meta["aws:cdk:path"].(string)
	p = strings.TrimSuffix(p, "/Resource")
	return strings.TrimSuffix(p, "/Default")
}

// display names a resource for people: its construct path, or
// "<stack>/<logical id>".
func display(r *resource) string {
	if p := cdkPath(r); p != "" {
		return p
	}
	return r.st.Name + "/" + r.id
}
