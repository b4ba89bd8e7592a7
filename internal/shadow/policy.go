package shadow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// MaxPolicyBytes bounds the documents CompileJSON reads: far above IAM's
// own limits (6,144 characters for a managed policy, 5,120 for an SCP), so
// only hostile input is refused.
const MaxPolicyBytes = 128 << 10

// Policy is a compiled deny-only policy document, safe for concurrent use.
type Policy struct {
	stmts []statement
}

// statement is one compiled Deny statement.
type statement struct {
	// sid is the statement's Sid, or "Statement[i]" when it has none.
	sid   string
	conds []condition
}

// Compile compiles doc (see CompileJSON for what it accepts).
func Compile(doc lockpolicy.Document) (*Policy, error) {
	b, err := doc.JSON()
	if err != nil {
		return nil, fmt.Errorf("shadow: compile: %w", err)
	}
	return CompileJSON(b)
}

// CompileJSON compiles a policy document's JSON. It accepts exactly the
// vocabulary of the documents internal/lockpolicy renders:
//
//   - Version "2012-10-17" (the 2008 language does not substitute policy
//     variables), an optional Id, and Statement (one object or a list);
//   - statements with an optional Sid (letters and digits, unique), Effect
//     "Deny", Action "*" and Resource "*" (each a string or a one-element
//     list) and an optional Condition;
//   - the condition operators StringEquals, StringNotEquals, IpAddress,
//     NotIpAddress, Bool, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike
//     (each also with IfExists) and Null, over the keys of Keys, with
//     policy variables (${key}, ${key, 'default'}, ${*}, ${?}, ${$}) in
//     string and ARN values.
//
// Anything else is ErrUnsupported naming what was found: an Allow, another
// action, NotAction, NotResource, Principal, another operator (including
// ForAnyValue/ForAllValues), another key, an operator on a key of the wrong
// type. Malformed documents (bad or duplicate JSON keys, a missing
// element, an unusable value, a bare IPv6 address without a prefix length)
// are ErrInvalidPolicy.
func CompileJSON(b []byte) (*Policy, error) {
	if len(b) > MaxPolicyBytes {
		return nil, fmt.Errorf("shadow: %w: %d bytes, more than %d", ErrInvalidPolicy, len(b), MaxPolicyBytes)
	}
	root, err := parseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("shadow: %w: %w", ErrInvalidPolicy, err)
	}
	p, err := compileDocument(root)
	if err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	return p, nil
}

// Statements returns the names of the statements (Sid, or "Statement[i]"
// for a statement without one) in document order.
func (p *Policy) Statements() []string {
	out := make([]string, len(p.stmts))
	for i, s := range p.stmts {
		out[i] = s.sid
	}
	return out
}

// Evaluate says what p would do with r. Every statement is evaluated, so a
// Denied verdict names all the statements that deny.
func (p *Policy) Evaluate(r *Request) Verdict {
	var v Verdict
	for i := range p.stmts {
		st := &p.stmts[i]
		switch t, u := st.eval(r); t {
		case tTrue:
			v.Sids = append(v.Sids, st.sid)
		case tUnknown:
			u.Sid = st.sid
			v.Unknown = append(v.Unknown, u)
		}
	}
	switch {
	case len(v.Sids) > 0:
		v.Decision = Denied
	case len(v.Unknown) > 0:
		v.Decision = Undetermined
	default:
		v.Decision = Allowed
	}
	return v
}

// eval evaluates the statement: its conditions are ANDed (Kleene).
func (st *statement) eval(r *Request) (tri, Unknown) {
	res := tTrue
	var first Unknown
	for i := range st.conds {
		switch t, u := st.conds[i].eval(r); t {
		case tFalse:
			return tFalse, Unknown{}
		case tUnknown:
			if res == tTrue {
				res, first = tUnknown, u
			}
		}
	}
	return res, first
}

// compileDocument compiles the parsed document.
func compileDocument(root jnode) (*Policy, error) {
	if root.kind != jObject {
		return nil, fmt.Errorf("%w: the document is a JSON %s, not an object", ErrInvalidPolicy, root.kindName())
	}
	var version, stmts *jnode
	for i := range root.obj {
		m := &root.obj[i]
		switch m.key {
		case "Version":
			version = &m.val
		case "Statement":
			stmts = &m.val
		case "Id":
			if m.val.kind != jString {
				return nil, fmt.Errorf("%w: Id is a JSON %s, not a string", ErrInvalidPolicy, m.val.kindName())
			}
		default:
			return nil, fmt.Errorf("%w: top-level element %q", ErrUnsupported, truncate(m.key, 64))
		}
	}
	switch {
	case version == nil:
		return nil, fmt.Errorf("%w: no Version (IAM then reads the 2008-10-17 language, which does not substitute policy variables)", ErrInvalidPolicy)
	case version.kind != jString || version.s != lockpolicy.PolicyVersion:
		return nil, fmt.Errorf("%w: Version %s, want %q", ErrUnsupported, version.describe(), lockpolicy.PolicyVersion)
	case stmts == nil:
		return nil, fmt.Errorf("%w: no Statement", ErrInvalidPolicy)
	}
	list := []jnode{*stmts}
	if stmts.kind == jArray {
		list = stmts.arr
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: Statement is empty", ErrInvalidPolicy)
	}
	p := &Policy{stmts: make([]statement, 0, len(list))}
	sids := map[string]bool{}
	for i, n := range list {
		st, err := compileStatement(i, n)
		if err != nil {
			return nil, err
		}
		if sids[st.sid] {
			return nil, fmt.Errorf("%w: Statement[%d]: Sid %q is used twice", ErrInvalidPolicy, i, st.sid)
		}
		sids[st.sid] = true
		p.stmts = append(p.stmts, st)
	}
	return p, nil
}

// compileStatement compiles the i-th statement.
func compileStatement(i int, n jnode) (statement, error) {
	at := fmt.Sprintf("Statement[%d]", i)
	if n.kind != jObject {
		return statement{}, fmt.Errorf("%w: %s is a JSON %s, not an object", ErrInvalidPolicy, at, n.kindName())
	}
	st := statement{sid: at}
	var effect, action, resource, cond *jnode
	for j := range n.obj {
		m := &n.obj[j]
		switch m.key {
		case "Sid":
			if m.val.kind != jString || !isSid(m.val.s) {
				return statement{}, fmt.Errorf("%w: %s: Sid %s is not letters and digits", ErrInvalidPolicy, at, m.val.describe())
			}
			if m.val.s != "" {
				st.sid = m.val.s
				at += fmt.Sprintf(" (Sid %s)", m.val.s)
			}
		case "Effect":
			effect = &m.val
		case "Action":
			action = &m.val
		case "Resource":
			resource = &m.val
		case "Condition":
			cond = &m.val
		case "NotAction", "NotResource", "Principal", "NotPrincipal":
			return statement{}, fmt.Errorf("%w: %s: %s (only Action \"*\" on Resource \"*\" is evaluated)", ErrUnsupported, at, m.key)
		default:
			return statement{}, fmt.Errorf("%w: %s: element %q", ErrUnsupported, at, truncate(m.key, 64))
		}
	}
	switch {
	case effect == nil:
		return statement{}, fmt.Errorf("%w: %s: no Effect", ErrInvalidPolicy, at)
	case effect.kind != jString || effect.s != "Deny":
		return statement{}, fmt.Errorf("%w: %s: Effect %s (only Deny statements are evaluated: shadow mode asks what a policy would deny)",
			ErrUnsupported, at, effect.describe())
	case action == nil:
		return statement{}, fmt.Errorf("%w: %s: no Action", ErrInvalidPolicy, at)
	case !isStar(*action):
		return statement{}, fmt.Errorf("%w: %s: Action %s (only \"*\" is evaluated: a record's action is not matched against patterns)",
			ErrUnsupported, at, action.describe())
	case resource == nil:
		return statement{}, fmt.Errorf("%w: %s: no Resource", ErrInvalidPolicy, at)
	case !isStar(*resource):
		return statement{}, fmt.Errorf("%w: %s: Resource %s (only \"*\" is evaluated)", ErrUnsupported, at, resource.describe())
	}
	if cond == nil {
		return st, nil
	}
	if cond.kind != jObject {
		return statement{}, fmt.Errorf("%w: %s: Condition is a JSON %s, not an object", ErrInvalidPolicy, at, cond.kindName())
	}
	for _, om := range cond.obj {
		cs, err := compileOperator(at, om.key, om.val)
		if err != nil {
			return statement{}, err
		}
		st.conds = append(st.conds, cs...)
	}
	return st, nil
}

// isSid reports whether s is a valid Sid: ASCII letters and digits.
func isSid(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return len(s) <= 128
}

// isStar reports whether n is "*" or ["*"].
func isStar(n jnode) bool {
	if n.kind == jArray && len(n.arr) == 1 {
		n = n.arr[0]
	}
	return n.kind == jString && n.s == "*"
}

// operator is a supported condition operator.
type operator struct {
	kind    opKind
	negated bool
}

// opKind is the family of an operator.
type opKind uint8

const (
	opString opKind = iota
	opIP
	opNull
	opBool
	opARN
)

// operators are the supported operators, without IfExists.
var operators = map[string]operator{
	"StringEquals":    {opString, false},
	"StringNotEquals": {opString, true},
	"IpAddress":       {opIP, false},
	"NotIpAddress":    {opIP, true},
	"Null":            {opNull, false},
	"Bool":            {opBool, false},
	"ArnEquals":       {opARN, false},
	"ArnNotEquals":    {opARN, true},
	"ArnLike":         {opARN, false},
	"ArnNotLike":      {opARN, true},
}

// compileOperator compiles one operator block: one condition per key.
func compileOperator(at, name string, block jnode) ([]condition, error) {
	if strings.HasPrefix(name, "ForAnyValue:") || strings.HasPrefix(name, "ForAllValues:") {
		return nil, fmt.Errorf("%w: %s: condition operator %q (set operators need multi-valued keys, which the evaluator does not derive)",
			ErrUnsupported, at, truncate(name, 64))
	}
	base, ifExists := strings.CutSuffix(name, "IfExists")
	op, ok := operators[base]
	if !ok {
		return nil, fmt.Errorf("%w: %s: condition operator %q (supported: %s, each but Null also with IfExists)",
			ErrUnsupported, at, truncate(name, 64), strings.Join(slices.Sorted(maps.Keys(operators)), ", "))
	}
	if op.kind == opNull && ifExists {
		return nil, fmt.Errorf("%w: %s: NullIfExists is not an operator", ErrInvalidPolicy, at)
	}
	if block.kind != jObject || len(block.obj) == 0 {
		return nil, fmt.Errorf("%w: %s: %s is not an object of condition keys", ErrInvalidPolicy, at, name)
	}
	out := make([]condition, 0, len(block.obj))
	seen := map[string]string{}
	for _, km := range block.obj {
		key, ok := lookupKey(km.key)
		if !ok {
			return nil, fmt.Errorf("%w: %s: %s: condition key %q (the evaluator derives only %s)",
				ErrUnsupported, at, name, truncate(km.key, 128), strings.Join(Keys(), ", "))
		}
		lower := strings.ToLower(km.key)
		if prev, dup := seen[lower]; dup {
			return nil, fmt.Errorf("%w: %s: %s: condition keys %q and %q are the same key", ErrInvalidPolicy, at, name, prev, km.key)
		}
		seen[lower] = km.key
		c, err := compileCondition(at, name, op, ifExists, key, km.val)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// compileCondition compiles one operator on one key.
func compileCondition(at, name string, op operator, ifExists bool, key keyRef, val jnode) (condition, error) {
	at = at + ": " + name + " " + key.name()
	c := condition{op: name, kind: op.kind, negated: op.negated, ifExists: ifExists, key: key}
	switch {
	case op.kind == opIP && key.kind() != kindIP,
		op.kind == opBool && key.kind() != kindBool,
		op.kind == opARN && key.kind() != kindARN:
		return condition{}, fmt.Errorf("%w: %s: the operator does not apply to this key's type", ErrUnsupported, at)
	}
	values, err := scalars(val)
	if err != nil {
		return condition{}, fmt.Errorf("%w: %s: %w", ErrInvalidPolicy, at, err)
	}
	for _, s := range values {
		switch op.kind {
		case opNull, opBool:
			if s != "true" && s != "false" {
				return condition{}, fmt.Errorf("%w: %s: value %q is not true or false", ErrInvalidPolicy, at, truncate(s, 64))
			}
			c.bools = append(c.bools, s == "true")
		case opIP:
			p, err := parseIPValue(s)
			if err != nil {
				return condition{}, fmt.Errorf("%w: %s: %w", ErrInvalidPolicy, at, err)
			}
			c.nets = append(c.nets, p)
		default:
			t, err := parseTemplate(s)
			if err != nil {
				return condition{}, fmt.Errorf("%s: %w", at, err)
			}
			if op.kind == opARN && !t.hasVars() && len(strings.SplitN(t.lit, ":", 6)) != 6 {
				return condition{}, fmt.Errorf("%w: %s: value %q is not an ARN (six colon-separated fields)", ErrInvalidPolicy, at, truncate(s, 128))
			}
			c.strs = append(c.strs, t)
		}
	}
	return c, nil
}

// scalars returns a condition value as strings: a string, boolean or
// number, or a non-empty list of them.
func scalars(n jnode) ([]string, error) {
	list := []jnode{n}
	if n.kind == jArray {
		if len(n.arr) == 0 {
			return nil, errors.New("empty value list")
		}
		list = n.arr
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		switch v.kind {
		case jString, jNumber:
			out = append(out, v.s)
		case jBool:
			out = append(out, fmt.Sprint(v.b))
		default:
			return nil, fmt.Errorf("a value is a JSON %s", v.kindName())
		}
	}
	return out, nil
}

// parseIPValue parses an IpAddress value: a CIDR, or a bare IPv4 address
// (a /32, as IAM documents). A bare IPv6 address is refused: IAM's
// documented /32 default would cover a whole allocation.
func parseIPValue(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("value %q is not a CIDR", truncate(s, 64))
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("value %q is an IPv4-mapped IPv6 prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("value %q is not an IP address or CIDR", truncate(s, 64))
	}
	if !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("value %q is a bare IPv6 address: write its prefix length (IAM documents /32 for a bare address)", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// jKind is the kind of a parsed JSON value.
type jKind uint8

const (
	jNull jKind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

// jnode is a parsed JSON value; objects keep their members in order.
type jnode struct {
	kind jKind
	s    string // jString, jNumber (its literal)
	b    bool
	arr  []jnode
	obj  []jmember
}

type jmember struct {
	key string
	val jnode
}

func (n jnode) kindName() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[n.kind]
}

// describe renders n for an error message.
func (n jnode) describe() string {
	switch n.kind {
	case jString:
		return fmt.Sprintf("%q", truncate(n.s, 64))
	case jArray:
		parts := make([]string, 0, min(len(n.arr), 4))
		for i, v := range n.arr {
			if i == 3 {
				parts = append(parts, "...")
				break
			}
			parts = append(parts, v.describe())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case jNumber:
		return truncate(n.s, 32)
	case jBool:
		return fmt.Sprint(n.b)
	default:
		return "a JSON " + n.kindName()
	}
}

// maxJSONDepth bounds nesting; a policy needs 5 levels.
const maxJSONDepth = 16

// parseJSON parses one JSON value, refusing duplicate object keys (IAM
// would not say which of two Conditions it reads) and trailing data.
func parseJSON(b []byte) (jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := parseNode(dec, 0)
	if err != nil {
		return jnode{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jnode{}, errors.New("data after the document")
	}
	return n, nil
}

func parseNode(dec *json.Decoder, depth int) (jnode, error) {
	if depth > maxJSONDepth {
		return jnode{}, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return jnode{}, err
	}
	switch t := tok.(type) {
	case nil:
		return jnode{kind: jNull}, nil
	case bool:
		return jnode{kind: jBool, b: t}, nil
	case json.Number:
		return jnode{kind: jNumber, s: t.String()}, nil
	case string:
		return jnode{kind: jString, s: t}, nil
	case json.Delim:
		switch t {
		case '[':
			n := jnode{kind: jArray}
			for dec.More() {
				v, err := parseNode(dec, depth+1)
				if err != nil {
					return jnode{}, err
				}
				n.arr = append(n.arr, v)
			}
			_, err := dec.Token()
			return n, err
		case '{':
			n := jnode{kind: jObject}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jnode{}, err
				}
				k, _ := kt.(string)
				if seen[k] {
					return jnode{}, fmt.Errorf("key %q appears twice in one object", truncate(k, 64))
				}
				seen[k] = true
				v, err := parseNode(dec, depth+1)
				if err != nil {
					return jnode{}, err
				}
				n.obj = append(n.obj, jmember{key: k, val: v})
			}
			_, err := dec.Token()
			return n, err
		}
	}
	return jnode{}, fmt.Errorf("unexpected JSON token %v", tok)
}
