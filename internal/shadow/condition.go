package shadow

import (
	"fmt"
	"net/netip"
	"strings"
)

// tri is a three-valued truth value (Kleene).
type tri uint8

const (
	tFalse tri = iota
	tTrue
	tUnknown
)

// not negates t; unknown stays unknown.
func (t tri) not() tri {
	switch t {
	case tFalse:
		return tTrue
	case tTrue:
		return tFalse
	}
	return tUnknown
}

// condition is one operator applied to one key.
type condition struct {
	// op is the operator as the policy spells it, for messages.
	op       string
	kind     opKind
	negated  bool
	ifExists bool
	key      keyRef
	// Values, ORed: strs for string and ARN operators, nets for IP
	// operators, bools for Null and Bool.
	strs  []template
	nets  []netip.Prefix
	bools []bool
}

// unknownOf describes why key k's value v leaves a condition open.
func unknownOf(k keyRef, v value) Unknown {
	why := v.why
	if why == "" {
		why = "not set in the request"
	}
	return Unknown{Key: k.name(), Reason: why}
}

// eval evaluates c against r (IAM User Guide, "Condition operators"):
// positive operators are false on an absent key, negated operators and
// ...IfExists true; Null tests presence; values are ORed and a negated
// operator is true when no value matches.
func (c *condition) eval(r *Request) (tri, Unknown) {
	v := r.get(c.key)
	if c.kind == opNull {
		var isNull bool
		switch v.p {
		case absent:
			isNull = true
		case present, presentUnknownValue:
			isNull = false
		default:
			return tUnknown, unknownOf(c.key, v)
		}
		for _, b := range c.bools {
			if b == isNull {
				return tTrue, Unknown{}
			}
		}
		return tFalse, Unknown{}
	}
	switch v.p {
	case absent:
		if c.ifExists || c.negated {
			return tTrue, Unknown{}
		}
		return tFalse, Unknown{}
	case present:
	default:
		return tUnknown, unknownOf(c.key, v)
	}
	m, u := c.match(r, v)
	if c.negated {
		m = m.not()
	}
	return m, u
}

// match reports whether the present value v matches any of c's values.
func (c *condition) match(r *Request, v value) (tri, Unknown) {
	switch c.kind {
	case opIP:
		if !v.ip.IsValid() {
			return tFalse, Unknown{}
		}
		for _, p := range c.nets {
			if p.Contains(v.ip) {
				return tTrue, Unknown{}
			}
		}
		return tFalse, Unknown{}
	case opBool:
		for _, b := range c.bools {
			if (v.s == "true") == b && (v.s == "true" || v.s == "false") {
				return tTrue, Unknown{}
			}
		}
		return tFalse, Unknown{}
	}
	res := tFalse
	var first Unknown
	for i := range c.strs {
		want, u, ok := c.strs[i].resolve(r)
		if !ok {
			if res == tFalse {
				res, first = tUnknown, u
			}
			continue
		}
		var hit bool
		if c.kind == opARN {
			var valid bool
			hit, valid = arnMatch(want, v.s)
			if !valid {
				if res == tFalse {
					res, first = tUnknown, Unknown{Key: c.key.name(), Reason: fmt.Sprintf("the policy variable resolves to %q, which is not an ARN", truncate(want, 128))}
				}
				continue
			}
		} else {
			hit = want == v.s
		}
		if hit {
			return tTrue, Unknown{}
		}
	}
	return res, first
}

// template is a condition value, possibly with policy variables.
type template struct {
	// lit is the value when it has no variable.
	lit string
	// parts is the value when it has variables: literal text and
	// variables, in order.
	parts []tpart
}

// tpart is a literal (v nil) or a policy variable.
type tpart struct {
	lit    string
	v      *keyRef
	def    string
	hasDef bool
}

func (t *template) hasVars() bool { return t.parts != nil }

// parseTemplate parses a string condition value: ${key} and
// ${key, 'default'} are policy variables, ${*}, ${?} and ${$} the literal
// characters.
func parseTemplate(s string) (template, error) {
	if !strings.Contains(s, "${") {
		return template{lit: s}, nil
	}
	var parts []tpart
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			if rest != "" {
				parts = append(parts, tpart{lit: rest})
			}
			break
		}
		if i > 0 {
			parts = append(parts, tpart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return template{}, fmt.Errorf("%w: value %q: unterminated policy variable", ErrInvalidPolicy, truncate(s, 128))
		}
		inner := rest[i+2 : i+j]
		rest = rest[i+j+1:]
		switch inner {
		case "*", "?", "$":
			parts = append(parts, tpart{lit: inner})
			continue
		}
		name, def, hasDef := strings.Cut(inner, ",")
		name = strings.TrimSpace(name)
		if hasDef {
			d := strings.TrimSpace(def)
			if len(d) < 2 || d[0] != '\'' || d[len(d)-1] != '\'' {
				return template{}, fmt.Errorf("%w: value %q: the default of a policy variable must be in single quotes", ErrInvalidPolicy, truncate(s, 128))
			}
			def = d[1 : len(d)-1]
		}
		k, ok := lookupKey(name)
		if !ok {
			return template{}, fmt.Errorf("%w: value %q: policy variable ${%s} (the evaluator derives only %s)",
				ErrUnsupported, truncate(s, 128), truncate(name, 64), strings.Join(Keys(), ", "))
		}
		parts = append(parts, tpart{v: &k, def: def, hasDef: hasDef})
	}
	return template{parts: parts}, nil
}

// resolve substitutes t's variables from r. ok is false when a variable
// cannot be resolved: its key is unknown, or absent without a default
// (IAM documents only that this "might" invalidate the statement).
func (t *template) resolve(r *Request) (s string, u Unknown, ok bool) {
	if t.parts == nil {
		return t.lit, Unknown{}, true
	}
	if len(t.parts) == 1 && t.parts[0].v != nil {
		return t.part(r, &t.parts[0])
	}
	var b strings.Builder
	for i := range t.parts {
		p := &t.parts[i]
		if p.v == nil {
			b.WriteString(p.lit)
			continue
		}
		s, u, ok := t.part(r, p)
		if !ok {
			return "", u, false
		}
		b.WriteString(s)
	}
	return b.String(), Unknown{}, true
}

// part resolves one variable.
func (t *template) part(r *Request, p *tpart) (string, Unknown, bool) {
	v := r.get(*p.v)
	switch v.p {
	case present:
		return v.s, Unknown{}, true
	case absent:
		if p.hasDef {
			return p.def, Unknown{}, true
		}
		return "", Unknown{Key: p.v.name(), Reason: "the policy variable ${" + p.v.name() +
			"} names a key absent from the request: IAM documents only that the statement might then be invalid"}, false
	}
	return "", unknownOf(*p.v, v), false
}

// arnMatch matches an ARN against an ArnEquals/ArnLike pattern: each of the
// six colon-separated fields separately, with * and ? wildcards, case
// sensitively. valid is false when pattern is not an ARN pattern.
func arnMatch(pattern, arn string) (hit, valid bool) {
	pp := strings.SplitN(pattern, ":", 6)
	if len(pp) != 6 {
		return false, false
	}
	ap := strings.SplitN(arn, ":", 6)
	if len(ap) != 6 {
		return false, true
	}
	for i := range pp {
		if !glob(pp[i], ap[i]) {
			return false, true
		}
	}
	return true, true
}

// glob matches s against pattern, where * matches any run of characters
// and ? any one character.
func glob(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
