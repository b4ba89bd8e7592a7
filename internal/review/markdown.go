package review

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
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
				cell(role.Stack), roleCell(role), instancesCell(role.Instances), lockModeCell(role),
				lockedToCell(role.Lock), imdsCell(role.Instances), ingressCell(role.Instances), findingsCell(role.Findings))
		}
		for _, in := range r.OtherInstances {
			role := "no EC2 role of this assembly"
			if in.InstanceProfile != "" {
				role = "instance profile " + codeMarked(in.InstanceProfile) + ", no EC2 role of this assembly"
			}
			p("| %s | %s | %s | — | — | %s | %s | %s |\n",
				cell(in.Stack), role, instancesCell([]Instance{in}), imdsCell([]Instance{in}),
				ingressCell([]Instance{in}), findingsCell(in.Findings))
		}
		p("\n")
	}

	p("## Findings\n\n")
	if len(r.Findings) == 0 {
		p("No findings.\n\n")
	}
	for _, f := range r.Findings {
		p("- **%s %s** %s %s › %s: %s\n", f.ID, f.Severity, code(f.Rule), code(f.Stack), code(f.Resource), escapeHTML(f.Message))
	}
	if len(r.Findings) > 0 {
		p("\n")
	}

	p("## Legend\n\n")
	p("- **Lock mode**: how the role's credentials are pinned for calls over the internet (aws:SourceIp): " +
		"*instance public IP* (Fn::GetAtt of the instance's PublicIp), *Elastic IP*, *NAT egress* (the Elastic IP of a NAT gateway), " +
		"*addresses* (literal CIDRs or values not traced to a resource), *VPC endpoints only* (every internet call denied); " +
		"*none* means no lock, *exempt* that role Metadata `" + ExemptKey + "` gives the reason; *partial* means a path stays open.\n")
	p("- **Locked to**: *IP* public addresses allowed (aws:SourceIp), *VPC* VPCs whose endpoints are allowed (aws:SourceVpc), " +
		"*same host* endpoint calls must come from the instance the credentials were delivered to.\n")
	p("- **IMDS**: *IMDSv2 required* when MetadataOptions.HttpTokens is \"required\" on the instance or its launch template.\n")
	p("- **Ingress**: protocol, ports and source of every ingress rule of the instances' security groups.\n")
	p("- **Findings**: `E` errors fail the review (exit code 1), `W` warnings deserve a look; each names its rule (`DEF-...`, listed in the README) and says how to fix it.\n")
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

// lockModeCell renders the Lock mode column.
func lockModeCell(r Role) string {
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
	if l.EndpointsDenied && len(l.VPCs) == 0 {
		lines = append(lines, "VPC: none (endpoint calls denied)")
	}
	for _, v := range l.PrivateIPs {
		lines = append(lines, "private IP "+valueText(v))
	}
	if l.SameHostOnly {
		lines = append(lines, "same host")
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

// code renders s as an inline code span that is safe in a table cell.
func code(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// cell escapes prose for a table cell: pipes, HTML and line breaks. Code
// spans (`...`) inside s are kept as they are.
func cell(s string) string {
	s = escapeHTML(s)
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", "<br>")
}

// escapeHTML escapes < and > outside code spans, so that placeholders such
// as <partition> stay visible.
func escapeHTML(s string) string {
	var b strings.Builder
	inCode := false
	for _, c := range s {
		switch {
		case c == '`':
			inCode = !inCode
			b.WriteRune(c)
		case !inCode && c == '<':
			b.WriteString("&lt;")
		case !inCode && c == '>':
			b.WriteString("&gt;")
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
