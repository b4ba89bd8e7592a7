package review

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Well-known remote administration ports.
const (
	portSSH = 22
	portRDP = 3389
)

// protocol is a parsed IpProtocol with its port range.
type protocol struct {
	proto string
	text  string // ports for display
	from  int
	to    int
	known bool // from and to are literal
	all   bool // every port (or every protocol)
}

// parseProtocol reads IpProtocol, FromPort and ToPort of an ingress rule.
func parseProtocol(m map[string]any) protocol {
	raw := strings.ToLower(Render(m["IpProtocol"]))
	p := protocol{proto: raw}
	switch raw {
	case "-1", "all":
		return protocol{proto: "all", text: "all", from: 0, to: 65535, known: true, all: true}
	case "6":
		p.proto = "tcp"
	case "17":
		p.proto = "udp"
	case "1":
		p.proto = "icmp"
	case "58":
		p.proto = "icmpv6"
	}
	fromRaw, hasFrom := m["FromPort"]
	toRaw, hasTo := m["ToPort"]
	from, fok := intOf(fromRaw)
	to, tok := intOf(toRaw)
	switch p.proto {
	case "tcp", "udp":
		switch {
		case !hasFrom && !hasTo, fok && from == -1:
			p.from, p.to, p.known, p.all, p.text = 0, 65535, true, true, "all"
		case fok && tok:
			p.from, p.to, p.known = from, to, true
			p.all = from <= 0 && to >= 65535
			switch {
			case p.all:
				p.text = "all"
			case from == to:
				p.text = strconv.Itoa(from)
			default:
				p.text = fmt.Sprintf("%d-%d", from, to)
			}
		default:
			p.text = Render(fromRaw) + "-" + Render(toRaw)
		}
	case "icmp", "icmpv6":
		switch {
		case !hasFrom || (fok && from == -1):
			p.text = "all"
		case !hasTo || (tok && to == -1):
			p.text = "type " + Render(fromRaw)
		default:
			p.text = "type " + Render(fromRaw) + " code " + Render(toRaw)
		}
	default:
		p.text = "all"
	}
	return p
}

// covers reports whether the rule surely opens tcp port n.
func (p protocol) covers(n int) bool {
	if p.proto == "all" {
		return true
	}
	return p.proto == "tcp" && p.known && p.from <= n && n <= p.to
}

// intOf reads a literal port number.
func intOf(v any) (int, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.Atoi(x.String())
		return n, err == nil
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	case float64:
		return int(x), x == float64(int(x))
	}
	return 0, false
}

// ingressFindings flags ingress rules open to the world or to wide ranges.
func (z *analyzer) ingressFindings() {
	var all []rule
	for _, rules := range z.sgRules {
		all = append(all, rules...)
	}
	for _, r := range all {
		var reach []*resource
		var names []string
		for _, c := range z.computes {
			for _, sg := range c.sgs {
				if sg == r.sg && r.sg != nil {
					reach = append(reach, c.res)
					names = append(names, c.inst.Kind+" `"+display(c.res)+"`")
				}
			}
		}
		reachText := "; no instance of this assembly uses the group"
		if len(names) > 0 {
			reachText = "; it reaches " + strings.Join(names, ", ")
		}
		cidr := r.raw["CidrIp"]
		if cidr == nil {
			cidr = r.raw["CidrIpv6"]
		}
		s, ok := literal(r.origin.st, cidr)
		if !ok {
			continue
		}
		prefix, ok := parseCIDR(s)
		if !ok {
			continue
		}
		p := parseProtocol(r.raw)
		ssh, rdp := p.covers(portSSH), p.covers(portRDP)
		what := describeOpen(p, ssh, rdp)
		where := "security group `" + r.SecurityGroup + "`"
		if r.origin != r.sg {
			where += " (rule `" + r.origin.id + "`)"
		}
		if prefix.Bits() == 0 {
			if p.all || ssh || rdp {
				z.addFinding(RuleOpenIngress, r.origin, reach,
					"%s allows %s from `%s`, the whole internet%s: restrict the source to the addresses that need it "+
						"(a single /32 or /128 per workstation), or reach the instances through SSM Session Manager instead of opening the port.",
					where, what, s, reachText)
			}
			continue
		}
		wide := (prefix.Addr().Is4() && prefix.Bits() < 24) || (prefix.Addr().Is6() && prefix.Bits() < 64)
		if wide && (ssh || rdp) {
			limit := "/24"
			if prefix.Addr().Is6() {
				limit = "/64"
			}
			z.addFinding(RuleWideIngress, r.origin, reach,
				"%s allows %s from `%s`, %s addresses (wider than %s)%s: narrow the source to the hosts that need it "+
					"(a single /32 or /128 per workstation or bastion).",
				where, what, s, addressCount(prefix.Addr().BitLen()-prefix.Bits()), limit, reachText)
		}
	}
}

// describeOpen names what an ingress rule opens.
func describeOpen(p protocol, ssh, rdp bool) string {
	switch {
	case p.proto == "all":
		return "all traffic (every protocol and port)"
	case p.all:
		return "every " + p.proto + " port, SSH (22) and RDP (3389) included"
	case ssh && rdp:
		return "tcp " + p.text + ", SSH (22) and RDP (3389) included"
	case ssh && p.text == "22":
		return "SSH (tcp 22)"
	case ssh:
		return "tcp " + p.text + ", SSH (22) included"
	case rdp && p.text == "3389":
		return "RDP (tcp 3389)"
	case rdp:
		return "tcp " + p.text + ", RDP (3389) included"
	}
	return p.proto + " " + p.text
}

// addressCount renders 2^bits with thousands separators, or as a power of
// two when it is too long to read.
func addressCount(bits int) string {
	if bits > 40 {
		return fmt.Sprintf("2^%d", bits)
	}
	s := new(big.Int).Lsh(big.NewInt(1), uint(bits)).String()
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// imdsFindings flags instances that answer IMDSv1 requests.
func (z *analyzer) imdsFindings() {
	for _, c := range z.computes {
		if c.inst.IMDS != IMDSv1Allowed {
			continue
		}
		var why string
		switch v := c.httpTok.(type) {
		case nil:
			if c.inst.LaunchTemplate == "" {
				why = "MetadataOptions.HttpTokens is not set and there is no launch template"
			} else if c.imdsSrc == "launch configuration" {
				why = "MetadataOptions.HttpTokens is not set in its launch configuration `" + c.inst.LaunchTemplate + "`"
			} else {
				why = "MetadataOptions.HttpTokens is set neither on it nor in its launch template `" + c.inst.LaunchTemplate + "`"
			}
		case string:
			why = fmt.Sprintf("HttpTokens is %q in its %s", v, c.imdsSrc)
		default:
			why = "HttpTokens in its " + c.imdsSrc + " is `" + Render(v) + "`, not the literal \"required\""
		}
		fix := "set MetadataOptions.HttpTokens to \"required\" on the instance or in its launch template (CDK: requireImdsv2: true)"
		switch {
		case c.imdsSrc == "launch configuration":
			fix = "set MetadataOptions.HttpTokens to \"required\" in its launch configuration, or move to a launch template with requireImdsv2: true"
		case c.inst.Kind == kindASG:
			fix = "set MetadataOptions.HttpTokens to \"required\" in its launch template (CDK: LaunchTemplate requireImdsv2: true)"
		}
		risk := "so a server-side request forgery can read its role credentials"
		if c.role == nil && c.inst.InstanceProfile == "" {
			risk = "so a server-side request forgery can read its metadata, and the credentials of any role it is given later"
		}
		z.addFinding(RuleIMDSv1, c.res, nil, "%s `%s` allows IMDSv1 (%s), %s: %s.",
			c.inst.Kind, display(c.res), why, risk, fix)
	}
}
