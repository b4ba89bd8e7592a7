package review

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// WriteMarkdown writes the report as Markdown for a pull request: a
// heading, the roles table, the findings and a legend.
func (r *Report) WriteMarkdown(w io.Writer) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }

	p("# Defenders review: EC2 roles, locks and ingress\n\n")
	names := make([]string, len(r.Stacks))
	for i, s := range r.Stacks {
		names[i] = code(s.Name)
	}
	p("Reviewed %s: %s (%s), %s.\n\n", code(r.Source), plural(len(r.Stacks), "stack"), strings.Join(names, ", "),
		plural(len(r.Roles), "EC2 role"))
	switch {
	case r.Errors == 0 && r.Warnings == 0:
		p("**Result: no findings.**\n\n")
	default:
		p("**Result: %s, %s.**\n\n", plural(r.Errors, "error"), plural(r.Warnings, "warning"))
	}

	p("## Roles assumable by EC2\n\n")
	if len(r.Roles) == 0 && len(r.OtherInstances) == 0 {
		p("No role in this assembly trusts ec2.amazonaws.com, and there are no instances.\n\n")
	} else {
		p("| Stack | Role | Instances | Lock mode | Locked to | IMDS | Ingress | Findings |\n")
		p("|---|---|---|---|---|---|---|---|\n")
		for _, role := range r.Roles {
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n",
				escapeText(role.Stack), roleCell(role), instancesCell(role.Instances), lockModeCell(role),
				lockedToCell(role.Lock), imdsCell(role.Instances), ingressCell(role.Instances), findingsCell(role.Findings))
		}
		for _, in := range r.OtherInstances {
			role := "no EC2 role of this assembly"
			if in.InstanceProfile != "" {
				role = "instance profile " + codeMarked(in.InstanceProfile) + ", no EC2 role of this assembly"
			}
			p("| %s | %s | %s | — | — | %s | %s | %s |\n",
				escapeText(in.Stack), role, instancesCell([]Instance{in}), imdsCell([]Instance{in}),
				ingressCell([]Instance{in}), findingsCell(in.Findings))
		}
		p("\n")
	}

	p("## Findings\n\n")
	if len(r.Findings) == 0 {
		p("No findings.\n\n")
	}
	for _, f := range r.Findings {
		p("- **%s %s** %s %s › %s: %s\n", f.ID, f.Severity, code(f.Rule), code(f.Stack), code(f.Resource), cell(f.Message))
	}
	if len(r.Findings) > 0 {
		p("\n")
	}

	if len(r.Acknowledged) > 0 {
		p("## Acknowledged\n\n")
		p("Findings acknowledged by their resource's Metadata `%s`, with the reason given there; they count as neither errors nor warnings.\n\n", AcknowledgeKey)
		p("| Finding | Rule | Stack | Resource | Reason |\n")
		p("|---|---|---|---|---|\n")
		for _, f := range r.Acknowledged {
			title := ""
			if rule, err := RuleByID(f.Rule); err == nil {
				title = " " + escapeText(rule.Title)
			}
			p("| %s (%s) | %s%s | %s | %s | %s |\n", f.ID, f.Severity, code(f.Rule), title, escapeText(f.Stack), code(f.Resource), cell(f.Reason))
		}
		p("\n")
	}

	p("## Legend\n\n")
	p("- **Lock mode**: how the role's credentials are pinned for calls over the internet (aws:SourceIp): " +
		"*instance public IP* (Fn::GetAtt of the instance's PublicIp), *Elastic IP*, *NAT egress* (the Elastic IP of a NAT gateway), " +
		"*addresses* (literal CIDRs or values not traced to a resource), *VPC endpoints only* (every internet call denied), " +
		"*trusted egress* (the app's trusted egress prefixes, such as central NAT gateways or proxies, which the lock's policy declares in its Metadata `" + TrustKey + "`); " +
		"*none* means no lock, *exempt* that `" + RuleUnlockedRole + "` is acknowledged for the role with the reason shown; *partial* means a path stays open. " +
		"A lock statement is an explicit Deny of every action on every resource whose only conditions test where the call comes from; " +
		"a Deny limited to some actions (say `s3:*` unless `aws:SourceVpc`) is not a lock. " +
		"*tag* `" + LockModeTagKey + "` is the mode the Defenders lock construct recorded on the role, which the locker renders.\n")
	p("- **Locked to**: *IP* public addresses allowed (aws:SourceIp), *VPC* VPCs whose endpoints are allowed (aws:SourceVpc), " +
		"*shared endpoint* VPC endpoints allowed whatever VPC they are in (aws:SourceVpce: the app's shared-services endpoints), " +
		"*same host* endpoint calls must come from the instance the credentials were delivered to.\n")
	p("- **IMDS**: *IMDSv2 required* when MetadataOptions.HttpTokens is \"required\" on the instance, its launch template or launch configuration; " +
		"*IMDS disabled* when HttpEndpoint is \"disabled\"; *IMDSv1 possible* when a parameter or condition decides; *IMDS unknown* when the launch template is outside the assembly.\n")
	p("- **Ingress**: protocol, ports and source of every ingress rule of the instances' security groups.\n")
	p("- **Findings**: `E` errors fail the review (exit code 1), `W` warnings deserve a look, `A` findings are acknowledged (Metadata `" + AcknowledgeKey + "`) and count as neither; " +
		"each names its rule (`DEF-...`, listed in the README) and says how to fix it.\n")
	if err := b.Flush(); err != nil {
		return fmt.Errorf("review: write Markdown: %w", err)
	}
	return nil
}

// roleCell renders the Role column.
func roleCell(r Role) string {
	var lines []string
	if r.Path != "" {
		lines = append(lines, code(r.Path), "id "+code(r.LogicalID))
	} else {
		lines = append(lines, code(r.LogicalID))
	}
	for _, mp := range r.ManagedPolicies {
		lines = append(lines, "managed policy "+code(mp))
	}
	return strings.Join(lines, "<br>")
}

// instancesCell renders the Instances column.
func instancesCell(ins []Instance) string {
	if len(ins) == 0 {
		return "none in this assembly"
	}
	lines := make([]string, len(ins))
	for i, in := range ins {
		lines[i] = in.Kind + " " + code(instanceName(in))
		if in.LaunchTemplate != "" {
			lines[i] += " (launch template " + code(in.LaunchTemplate) + ")"
		}
	}
	return strings.Join(lines, "<br>")
}

// instanceName names an instance in a cell.
func instanceName(in Instance) string {
	if in.Path != "" {
		return in.Path
	}
	return in.Stack + "/" + in.LogicalID
}

// lockModeCell renders the Lock mode column: the mode read from the lock, then the mode the
// role's tag records, if any.
func lockModeCell(r Role) string {
	s := lockModeText(r)
	if r.LockModeTag != "" {
		tag := "tag " + code(LockModeTagKey) + ": " + code(r.LockModeTag)
		if _, err := lockpolicy.ParseMode(r.LockModeTag); err != nil {
			tag += " (not a lock mode)"
		}
		s += "<br>" + tag
	}
	return s
}

// lockModeText renders the lock's modes and status.
func lockModeText(r Role) string {
	modes := strings.Join(r.Lock.Modes, " + ")
	switch r.Lock.Status {
	case LockUnlocked:
		if r.Exemption != "" {
			return "exempt: " + cell(r.Exemption)
		}
		return "**none**"
	case LockPartial:
		if modes == "" {
			return "partial"
		}
		return modes + " (partial)"
	}
	return modes
}

// lockedToCell renders the Locked to column.
func lockedToCell(l Lock) string {
	var lines []string
	for _, v := range l.SourceIPs {
		lines = append(lines, "IP "+valueText(v))
	}
	if l.InternetDenied && len(l.SourceIPs) == 0 {
		lines = append(lines, "IP: none (internet calls denied)")
	}
	for _, v := range l.VPCs {
		lines = append(lines, "VPC "+valueText(v))
	}
	for _, v := range l.SharedVPCEndpoints {
		lines = append(lines, "shared endpoint "+valueText(v))
	}
	if l.EndpointsDenied && len(l.VPCs) == 0 && len(l.SharedVPCEndpoints) == 0 {
		lines = append(lines, "VPC: none (endpoint calls denied)")
	}
	for _, v := range l.PrivateIPs {
		lines = append(lines, "private IP "+valueText(v))
	}
	if l.SameHostOnly {
		lines = append(lines, "same host")
	}
	if len(l.ExceptActions) > 0 {
		codes := make([]string, len(l.ExceptActions))
		for i, a := range l.ExceptActions {
			codes[i] = code(a)
		}
		lines = append(lines, "except "+strings.Join(codes, ", ")+" (callable from anywhere)")
	}
	if len(lines) == 0 {
		return "—"
	}
	return strings.Join(lines, "<br>")
}

// valueText renders a locked value with what it refers to.
func valueText(v LockedValue) string {
	s := code(v.Value)
	if v.RefersTo != "" {
		s += " (" + cell(v.RefersTo) + ")"
	}
	return s
}

// imdsCell renders the IMDS column.
func imdsCell(ins []Instance) string {
	if len(ins) == 0 {
		return "—"
	}
	if len(ins) == 1 {
		return imdsText(ins[0].IMDS)
	}
	lines := make([]string, len(ins))
	for i, in := range ins {
		lines[i] = code(instanceName(in)) + ": " + imdsText(in.IMDS)
	}
	return strings.Join(lines, "<br>")
}

// imdsText emphasizes IMDSv1.
func imdsText(s string) string {
	if s == IMDSv1Allowed {
		return "**" + s + "**"
	}
	return s
}

// ingressCell renders the Ingress column: the rules reaching the
// instances, then security groups the review could not follow.
func ingressCell(ins []Instance) string {
	var lines []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			lines = append(lines, s)
		}
	}
	for _, in := range ins {
		for _, g := range in.Ingress {
			ports := g.Protocol + " " + g.Ports
			if g.Protocol == "all" {
				ports = "all traffic"
			}
			src := "no source"
			switch g.SourceType {
			case "cidr":
				src = codeMarked(g.Source)
			case "prefix list", "security group":
				src = g.SourceType + " " + codeMarked(g.Source)
			}
			add(cell(ports) + " from " + src + " via " + codeMarked(g.SecurityGroup))
		}
	}
	for _, in := range ins {
		for _, g := range in.SecurityGroups {
			switch {
			case unresolvedGroup(g):
				add("security group " + codeMarked(g))
			case !slices.ContainsFunc(in.Ingress, func(r Ingress) bool { return r.SecurityGroup == g }):
				add("no ingress rules via " + code(g))
			}
		}
	}
	if len(lines) == 0 {
		return "none"
	}
	return strings.Join(lines, "<br>")
}

// unresolvedGroup reports whether a security group entry of an Instance
// names a group the review could not follow.
func unresolvedGroup(g string) bool {
	for _, suffix := range []string{suffixUnresolved, suffixNotInAssembly, suffixDefaultSG} {
		if strings.HasSuffix(g, suffix) {
			return true
		}
	}
	return false
}

// findingsCell renders the Findings column.
func findingsCell(ids []string) string {
	if len(ids) == 0 {
		return "—"
	}
	return strings.Join(ids, ", ")
}

// plural renders "1 stack", "2 stacks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// codeMarked renders a value as code, keeping a trailing "(unresolved)"
// or "(not in this assembly)" mark as prose.
func codeMarked(s string) string {
	for _, suffix := range []string{suffixUnresolved, suffixNotInAssembly} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			return code(v) + suffix
		}
	}
	if s == suffixDefaultSG {
		return s
	}
	return code(s)
}

// Everything the report takes from the input (stack names, logical ids, construct paths,
// rendered values, reasons) goes through code, escapeText or cell, so that it cannot end a
// table cell or a code span, start a line, a heading or a list item, or inject HTML, links or
// emphasis: control characters (newlines, \r), line separators and invisible formatting
// characters are shown as escapes, Markdown punctuation is backslash-escaped, and <, >, &
// become entities.

// hidden reports whether r must be shown as an escape: control characters, line and
// paragraph separators, and invisible formatting characters (bidi overrides, zero-width).
func hidden(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r)
}

// visible replaces hidden characters by escapes: \n, \r, \t, \u202e.
func visible(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !hidden(r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// code renders s as inline code that is safe in a table cell: a backtick code span when s has
// no backtick, backslash or hidden character, else an HTML <code> element around escaped text
// (a code span cannot hold a backslash before an escaped pipe, and a GFM table would split
// the cell there).
func code(s string) string {
	if s != "" && !strings.ContainsAny(s, "`\\") && !strings.ContainsFunc(s, hidden) {
		return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
	}
	return "<code>" + escapeText(s) + "</code>"
}

// escapeText renders untrusted text as inert Markdown: hidden characters as escapes, <, > and
// & as entities, and every character that could start emphasis, a code span, a link, an
// image, strikethrough, math or a table cell backslash-escaped.
func escapeText(s string) string {
	s = visible(s)
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\\', '`', '*', '_', '[', ']', '|', '~', '$', '!':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// cell renders text of the report's own making whose code spans (`...`) hold values from the
// input (messages, what a value refers to, reasons): the code spans through code, the prose
// between them through escapeText. A value that itself holds a backtick can only move where
// a code span ends, never break out of the cell or the line.
func cell(s string) string {
	parts := strings.Split(s, "`")
	if n := len(parts); n%2 == 0 {
		// An unpaired backtick: keep it in the text.
		parts[n-2] += "`" + parts[n-1]
		parts = parts[:n-1]
	}
	var b strings.Builder
	for i, part := range parts {
		if i%2 == 1 {
			b.WriteString(code(part))
		} else {
			b.WriteString(escapeText(part))
		}
	}
	return b.String()
}
