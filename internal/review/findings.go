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
