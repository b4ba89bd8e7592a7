package review

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// The evaluator computes every value a template expression can take when the stack is
// deployed: parameters at their Default and at every other value they admit (AllowedValues,
// AllowedPattern, or anything), both branches of a condition it cannot decide, every entry of a
// mapping looked up with keys it cannot know. Each outcome carries the choices that lead to it
// (an environment of bindings), so that a value reached only by setting a parameter away from
// its Default can be told apart from the value deployed by default, and so that one parameter or
// condition takes one value throughout an evaluation.

// Bounds that keep evaluation linear in the size of the template whatever its shape.
const (
	// maxOutcomes bounds the outcomes of one expression; the first ones (parameters at their
	// defaults come first) are kept.
	maxOutcomes = 64
	// evalBudget bounds the steps of one top-level evaluation.
	evalBudget = 1 << 15
	// maxItemEnvs bounds the decisions kept per element of a list.
	maxItemEnvs = 16
)

// segKind is the kind of one part of a string value.
type segKind uint8

const (
	// segLit is literal text.
	segLit segKind = iota
	// segFree is a part a parameter sets to any value (that matches re).
	segFree
	// segOpaque is a part the review cannot know and no parameter sets: a resource
	// attribute, an import, the region.
	segOpaque
)

// seg is one part of a string value.
type seg struct {
	kind segKind
	// text is the literal text (segLit) or a readable placeholder (segOpaque, segFree).
	text string
	// re is the Go pattern a segFree part matches, "" for anything.
	re string
	// param names the parameter behind a segFree part.
	param string
}

// valKind is the kind of a value.
type valKind uint8

const (
	// vStr is a string (possibly with free or opaque parts).
	vStr valKind = iota
	// vList is a list of known length.
	vList
	// vListOf is a list of unknown length whose elements are like elem.
	vListOf
	// vNoValue is AWS::NoValue: the property is absent.
	vNoValue
	// vObj is an object that is not a function call (its members are not evaluated).
	vObj
)

// val is one value of a template expression.
type val struct {
	kind valKind
	segs []seg
	list []val
	elem *val
	obj  map[string]any
	// raw and st are the expression (and its stack) when the value is one reference
	// (Ref, Fn::GetAtt, Fn::ImportValue) the analysis may resolve to a resource.
	raw any
	st  *Stack
}

// litVal is a literal string.
func litVal(s string) val { return val{kind: vStr, segs: []seg{{kind: segLit, text: s}}} }

// opaqueVal is a value the review cannot know.
func opaqueVal(st *Stack, raw any, text string) val {
	return val{kind: vStr, segs: []seg{{kind: segOpaque, text: text}}, raw: raw, st: st}
}

// freeVal is a value a parameter sets to anything matching re.
func freeVal(param, re string) val {
	return val{kind: vStr, segs: []seg{{kind: segFree, text: "${" + param + "}", re: re, param: param}}}
}

// literal returns the value as a string when it is entirely literal.
func (v val) literal() (string, bool) {
	if v.kind != vStr {
		return "", false
	}
	var b strings.Builder
	for _, s := range v.segs {
		if s.kind != segLit {
			return "", false
		}
		b.WriteString(s.text)
	}
	return b.String(), true
}

// text renders the value readably: literal text as is, placeholders for what it cannot know.
func (v val) text() string {
	switch v.kind {
	case vStr:
		var b strings.Builder
		for _, s := range v.segs {
			b.WriteString(s.text)
		}
		return b.String()
	case vList:
		parts := make([]string, len(v.list))
		for i, el := range v.list {
			parts[i] = el.text()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case vListOf:
		return "[" + v.elem.text() + ", ...]"
	case vNoValue:
		return "<no-value>"
	}
	return Render(v.obj)
}

// has reports whether a string value has a part of kind k.
func (v val) has(k segKind) bool {
	for _, s := range v.segs {
		if s.kind == k {
			return true
		}
	}
	return false
}

// freeParam returns the parameter when the whole value is one free part.
func (v val) freeParam() (string, bool) {
	if v.kind == vStr && len(v.segs) == 1 && v.segs[0].kind == segFree {
		return v.segs[0].param, true
	}
	return "", false
}

// canBe reports whether the string value can be exactly s: a literal equal to it, or free parts
// that can make it up. Opaque parts can be anything but no parameter sets them: they never
// match.
func (v val) canBe(s string) bool {
	if v.kind != vStr {
		return false
	}
	if lit, ok := v.literal(); ok {
		return lit == s
	}
	if v.has(segOpaque) {
		return false
	}
	var b strings.Builder
	b.WriteString(`^(?:`)
	for _, sg := range v.segs {
		switch sg.kind {
		case segLit:
			b.WriteString(regexp.QuoteMeta(sg.text))
		case segFree:
			if sg.re == "" {
				b.WriteString(`(?s:.*)`)
			} else {
				b.WriteString(`(?:` + sg.re + `)`)
			}
		}
	}
	b.WriteString(`)$`)
	re := compilePattern(b.String())
	return re != nil && re.MatchString(s)
}

// patternCache holds compiled patterns (nil for those that do not compile).
var patternCache = newPatternCache()

// compilePattern compiles a Go pattern, caching the result; nil when it does not compile.
func compilePattern(p string) *regexp.Regexp { return patternCache.get(p) }

// concat joins string values.
func concat(vs []val, sep string) val {
	out := val{kind: vStr}
	for i, v := range vs {
		if i > 0 && sep != "" {
			out.segs = append(out.segs, seg{kind: segLit, text: sep})
		}
		out.segs = append(out.segs, v.segs...)
	}
	// Merge adjacent literal parts.
	merged := out.segs[:0:0]
	for _, s := range out.segs {
		if n := len(merged); n > 0 && s.kind == segLit && merged[n-1].kind == segLit {
			merged[n-1].text += s.text
			continue
		}
		merged = append(merged, s)
	}
	if len(merged) == 0 {
		merged = []seg{{kind: segLit}}
	}
	out.segs = merged
	return out
}

// binding is one decision an evaluation made: a parameter's value, a condition's value, or the
// side taken on something the review cannot decide.
type binding struct {
	key string
	// v is a parameter's value; b is a condition's or comparison's value.
	v val
	b bool
	// param names the parameter of a parameter binding.
	param string
	// def is true when the parameter is at its Default.
	def bool
	// how says how a non-default parameter value is admitted ("AllowedValues",
	// "AllowedPattern", "any value", "no Default", "SSM").
	how string
	// cond names the condition of a condition binding.
	cond string
	// undecided is set when the review could not decide the value and took one side: a
	// readable note ("condition `IsProd` is true").
	undecided string
}

// env is the set of decisions behind one outcome. It is immutable: with returns a copy.
type env []binding

// with returns e extended by b.
func (e env) with(b binding) env {
	n := make(env, len(e), len(e)+1)
	copy(n, e)
	return append(n, b)
}

// get returns the binding of key.
func (e env) get(key string) (binding, bool) {
	for _, b := range e {
		if b.key == key {
			return b, true
		}
	}
	return binding{}, false
}

// isDefault reports whether every parameter of e is at its Default.
func (e env) isDefault() bool {
	for _, b := range e {
		if b.param != "" && !b.def {
			return false
		}
	}
	return true
}

// choices returns the parameters set away from their Default.
func (e env) choices() []binding {
	var out []binding
	for _, b := range e {
		if b.param != "" && !b.def {
			out = append(out, b)
		}
	}
	return out
}

// defaults returns the parameters at their Default.
func (e env) defaults() []binding {
	var out []binding
	for _, b := range e {
		if b.param != "" && b.def {
			out = append(out, b)
		}
	}
	return out
}

// undecided returns the notes of the sides taken on what the review could not decide: the
// conditions and mapping entries, or the comparisons themselves when no named condition holds
// them.
func (e env) undecided() []string {
	var named, inner []string
	for _, b := range e {
		switch {
		case b.undecided == "":
		case strings.HasPrefix(b.key, "E\x00"):
			inner = append(inner, b.undecided)
		default:
			named = append(named, b.undecided)
		}
	}
	if len(named) > 0 {
		return named
	}
	return inner
}

// nUndecided counts the sides taken on what the review could not decide.
func (e env) nUndecided() int {
	n := 0
	for _, b := range e {
		if b.undecided != "" {
			n++
		}
	}
	return n
}

// outcome is one value an expression can take, with the decisions behind it.
type outcome struct {
	v val
	e env
}

// boolOutcome is one value a condition can take.
type boolOutcome struct {
	b bool
	e env
}

// evaluator evaluates template expressions; it caches parameter choices.
type evaluator struct {
	steps   int
	choices map[*Stack]map[string][]binding
}

// newEvaluator returns an evaluator.
func newEvaluator() *evaluator {
	return &evaluator{choices: map[*Stack]map[string][]binding{}}
}

// values returns every value v (in stack st) can take, starting from the decisions in e.
func (ev *evaluator) values(st *Stack, v any, e env) []outcome {
	ev.steps = 0
	return ev.eval(st, v, e, 0)
}

// condition returns every value the named condition of st can take, starting from e.
func (ev *evaluator) condition(st *Stack, name string, e env) []boolOutcome {
	ev.steps = 0
	return ev.cond(st, name, e, 0)
}

// spent reports whether the evaluation has used its budget; a spent evaluation yields opaque
// values.
func (ev *evaluator) spent(depth int) bool {
	ev.steps++
	return ev.steps > evalBudget || depth > 4*maxDepth
}

// eval evaluates v in st.
func (ev *evaluator) eval(st *Stack, v any, e env, depth int) []outcome {
	if ev.spent(depth) || st == nil {
		return []outcome{{opaqueVal(st, v, Render(v)), e}}
	}
	switch x := v.(type) {
	case nil:
		return []outcome{{val{kind: vNoValue}, e}}
	case string:
		return []outcome{{litVal(x), e}}
	case json.Number:
		return []outcome{{litVal(x.String()), e}}
	case float64:
		return []outcome{{litVal(strconv.FormatFloat(x, 'g', -1, 64)), e}}
	case bool:
		return []outcome{{litVal(strconv.FormatBool(x)), e}}
	case []any:
		var out []outcome
		for _, s := range ev.seq(st, x, e, depth) {
			l := val{kind: vList}
			for _, el := range s.vs {
				if el.kind != vNoValue {
					l.list = append(l.list, el)
				}
			}
			out = append(out, outcome{l, s.e})
		}
		return out
	case map[string]any:
		name, arg, ok := intrinsic(x)
		if !ok {
			return []outcome{{val{kind: vObj, obj: x, st: st, raw: x}, e}}
		}
		return ev.call(st, x, name, arg, e, depth)
	}
	return []outcome{{opaqueVal(st, v, Render(v)), e}}
}

// seqOutcome is one combination of values of a sequence of expressions.
type seqOutcome struct {
	vs []val
	e  env
}

// seq evaluates expressions in order, threading the decisions, and returns every combination
// (at most maxOutcomes).
func (ev *evaluator) seq(st *Stack, items []any, e env, depth int) []seqOutcome {
	outs := []seqOutcome{{nil, e}}
	for _, it := range items {
		var next []seqOutcome
		for _, o := range outs {
			for _, r := range ev.eval(st, it, o.e, depth+1) {
				vs := make([]val, len(o.vs), len(o.vs)+1)
				copy(vs, o.vs)
				next = append(next, seqOutcome{append(vs, r.v), r.e})
				if len(next) >= maxOutcomes {
					break
				}
			}
			if len(next) >= maxOutcomes {
				break
			}
		}
		outs = next
	}
	return outs
}

// call evaluates an intrinsic function call.
func (ev *evaluator) call(st *Stack, x map[string]any, name string, arg any, e env, depth int) []outcome {
	opaque := func() []outcome { return []outcome{{opaqueVal(st, x, Render(x)), e}} }
	switch name {
	case "Ref":
		id, ok := arg.(string)
		if !ok {
			return opaque()
		}
		return ev.ref(st, x, id, e, depth)
	case "Fn::GetAtt", "Fn::ImportValue":
		return []outcome{{opaqueVal(st, x, "${"+Render(x)+"}"), e}}
	case "Fn::GetAZs", "Fn::Cidr":
		el := opaqueVal(st, nil, "${"+Render(x)+"}")
		return []outcome{{val{kind: vListOf, elem: &el, raw: x, st: st}, e}}
	case "Fn::Base64":
		return ev.eval(st, arg, e, depth+1)
	case "Fn::If":
		l, ok := arg.([]any)
		if !ok || len(l) != 3 {
			return opaque()
		}
		cname, ok := l[0].(string)
		if !ok {
			return opaque()
		}
		var out []outcome
		for _, c := range ev.cond(st, cname, e, depth+1) {
			branch := l[2]
			if c.b {
				branch = l[1]
			}
			out = append(out, ev.eval(st, branch, c.e, depth+1)...)
		}
		return capOutcomes(out)
	case "Fn::Join":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return opaque()
		}
		var out []outcome
		for _, s := range ev.seq(st, l, e, depth) {
			sep, ok := s.vs[0].literal()
			if !ok {
				out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), s.e})
				continue
			}
			out = append(out, outcome{joinVal(st, x, s.vs[1], sep), s.e})
		}
		return out
	case "Fn::Sub":
		return ev.sub(st, x, arg, e, depth)
	case "Fn::Select":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return opaque()
		}
		var out []outcome
		for _, io := range ev.eval(st, l[0], e, depth+1) {
			s, ok := io.v.literal()
			i, err := strconv.Atoi(strings.TrimSpace(s))
			if !ok || err != nil || i < 0 {
				out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), io.e})
				continue
			}
			if lit, ok := l[1].([]any); ok {
				// A literal list: evaluate only the element selected.
				if i >= len(lit) {
					out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), io.e})
					continue
				}
				out = append(out, ev.eval(st, lit[i], io.e, depth+1)...)
				continue
			}
			for _, lo := range ev.eval(st, l[1], io.e, depth+1) {
				switch {
				case lo.v.kind == vList && i < len(lo.v.list):
					out = append(out, outcome{lo.v.list[i], lo.e})
				case lo.v.kind == vListOf:
					out = append(out, outcome{*lo.v.elem, lo.e})
				default:
					out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), lo.e})
				}
			}
		}
		return capOutcomes(out)
	case "Fn::Split":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return opaque()
		}
		var out []outcome
		for _, s := range ev.seq(st, l, e, depth) {
			delim, ok1 := s.vs[0].literal()
			src, ok2 := s.vs[1].literal()
			switch {
			case ok1 && ok2 && delim != "":
				lv := val{kind: vList}
				for _, p := range strings.Split(src, delim) {
					lv.list = append(lv.list, litVal(p))
				}
				out = append(out, outcome{lv, s.e})
			case s.vs[1].kind == vStr && !s.vs[1].has(segOpaque):
				el := freeVal(freeName(s.vs[1]), "")
				out = append(out, outcome{val{kind: vListOf, elem: &el}, s.e})
			default:
				el := opaqueVal(st, nil, "${"+Render(x)+"}")
				out = append(out, outcome{val{kind: vListOf, elem: &el, raw: x, st: st}, s.e})
			}
		}
		return out
	case "Fn::FindInMap":
		return ev.findInMap(st, x, arg, e, depth)
	}
	return opaque()
}

// freeName names the parameter behind a value's first free part.
func freeName(v val) string {
	for _, s := range v.segs {
		if s.kind == segFree {
			return s.param
		}
	}
	return "?"
}

// joinVal joins the elements of a list value with sep.
func joinVal(st *Stack, x map[string]any, list val, sep string) val {
	switch list.kind {
	case vList:
		parts := make([]val, 0, len(list.list))
		for _, el := range list.list {
			if el.kind != vStr {
				return opaqueVal(st, x, "${"+Render(x)+"}")
			}
			parts = append(parts, el)
		}
		return concat(parts, sep)
	case vListOf:
		if list.elem.kind == vStr && !list.elem.has(segOpaque) {
			return freeVal(freeName(*list.elem), "")
		}
	}
	return opaqueVal(st, x, "${"+Render(x)+"}")
}

// capOutcomes keeps the first maxOutcomes outcomes.
func capOutcomes(out []outcome) []outcome {
	if len(out) > maxOutcomes {
		return out[:maxOutcomes]
	}
	return out
}

// ref evaluates {"Ref": id}.
func (ev *evaluator) ref(st *Stack, x map[string]any, id string, e env, depth int) []outcome {
	switch id {
	case "AWS::NoValue":
		return []outcome{{val{kind: vNoValue}, e}}
	case "AWS::StackName":
		return []outcome{{litVal(st.StackName), e}}
	}
	if p, ok := pseudoParams[id]; ok {
		return []outcome{{opaqueVal(st, x, p), e}}
	}
	if _, ok := st.resources[id]; ok {
		return []outcome{{opaqueVal(st, x, "${"+id+"}"), e}}
	}
	if _, ok := st.params[id]; !ok {
		return []outcome{{opaqueVal(st, x, "${"+id+"}"), e}}
	}
	// A nested stack's parameter is what its parent passes, evaluated in the parent.
	if st.parentRes != nil && st.parent != nil {
		passed, _ := st.parentRes.props["Parameters"].(map[string]any)
		if pv, ok := passed[id]; ok {
			return ev.eval(st.parent, pv, e, depth+1)
		}
	}
	key := "P\x00" + st.Name + "\x00" + id
	if b, ok := e.get(key); ok {
		return []outcome{{b.v, e}}
	}
	var out []outcome
	for _, c := range ev.paramChoices(st, id) {
		c.key = key
		out = append(out, outcome{c.v, e.with(c)})
	}
	return out
}

// sub evaluates Fn::Sub.
func (ev *evaluator) sub(st *Stack, x map[string]any, arg any, e env, depth int) []outcome {
	var tmpl string
	var vars map[string]any
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) == 2 {
			tmpl, _ = a[0].(string)
			vars, _ = a[1].(map[string]any)
		}
	}
	if tmpl == "" {
		if s, ok := arg.(string); ok {
			return []outcome{{litVal(s), e}}
		}
		return []outcome{{opaqueVal(st, x, "${"+Render(x)+"}"), e}}
	}
	// Split the template into literal text and placeholders.
	var items []any
	last := 0
	for _, m := range subVar.FindAllStringSubmatchIndex(tmpl, -1) {
		items = append(items, strings.ReplaceAll(tmpl[last:m[0]], "${!", "${"))
		name := strings.TrimSpace(tmpl[m[2]:m[3]])
		var expr any
		switch {
		case vars != nil && vars[name] != nil:
			expr = vars[name]
		case strings.Contains(name, ".") && !strings.HasPrefix(name, "AWS::"):
			id, attr, _ := strings.Cut(name, ".")
			expr = map[string]any{"Fn::GetAtt": []any{id, attr}}
		default:
			expr = map[string]any{"Ref": name}
		}
		items = append(items, expr)
		last = m[1]
	}
	items = append(items, strings.ReplaceAll(tmpl[last:], "${!", "${"))
	var out []outcome
	for _, s := range ev.seq(st, items, e, depth) {
		parts := make([]val, 0, len(s.vs))
		ok := true
		for _, v := range s.vs {
			if v.kind != vStr {
				ok = false
				break
			}
			parts = append(parts, v)
		}
		if !ok {
			out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), s.e})
			continue
		}
		out = append(out, outcome{concat(parts, ""), s.e})
	}
	return out
}

// findInMap evaluates Fn::FindInMap: the exact entry when the keys are known, every entry
// they can select otherwise.
func (ev *evaluator) findInMap(st *Stack, x map[string]any, arg any, e env, depth int) []outcome {
	l, ok := arg.([]any)
	if !ok || len(l) < 3 {
		return []outcome{{opaqueVal(st, x, "${"+Render(x)+"}"), e}}
	}
	var out []outcome
	for _, s := range ev.seq(st, l[:3], e, depth) {
		mapName, ok := s.vs[0].literal()
		m, _ := st.mappings[mapName].(map[string]any)
		if !ok || m == nil {
			out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), s.e})
			continue
		}
		k1, k2 := s.vs[1], s.vs[2]
		decided := k1.kind == vStr && !k1.has(segOpaque) && k2.kind == vStr && !k2.has(segOpaque)
		seen := map[string]bool{}
		for _, top := range sortedKeys(m) {
			if !k1.canBe(top) && (k1.kind != vStr || !k1.has(segOpaque)) {
				continue
			}
			inner, _ := m[top].(map[string]any)
			for _, second := range sortedKeys(inner) {
				if !k2.canBe(second) && (k2.kind != vStr || !k2.has(segOpaque)) {
					continue
				}
				next := s.e
				if !decided {
					key := "M\x00" + st.Name + "\x00" + Render(x)
					if b, ok := next.get(key); ok {
						if b.v.text() != top+"\x00"+second {
							continue
						}
					} else {
						if seen[Render(inner[second])] {
							continue
						}
						seen[Render(inner[second])] = true
						next = next.with(binding{key: key, v: litVal(top + "\x00" + second),
							undecided: fmt.Sprintf("mapping `%s` yields its `%s`.`%s` entry", mapName, top, second)})
					}
				}
				out = append(out, ev.eval(st, inner[second], next, depth+1)...)
				if len(out) >= maxOutcomes {
					return capOutcomes(out)
				}
			}
		}
		if len(out) == 0 {
			out = append(out, outcome{opaqueVal(st, x, "${"+Render(x)+"}"), s.e})
		}
	}
	return capOutcomes(out)
}

// cond evaluates the named condition of st.
func (ev *evaluator) cond(st *Stack, name string, e env, depth int) []boolOutcome {
	key := "C\x00" + st.Name + "\x00" + name
	if b, ok := e.get(key); ok {
		return []boolOutcome{{b.b, e}}
	}
	raw, ok := st.conditions[name]
	var outs []boolOutcome
	if !ok || ev.spent(depth) {
		outs = []boolOutcome{{true, e}, {false, e}}
	} else {
		outs = ev.boolean(st, raw, e, depth+1)
	}
	res := make([]boolOutcome, 0, len(outs))
	for _, o := range outs {
		b := binding{key: key, b: o.b, cond: name}
		if o.e.nUndecided() > e.nUndecided() || !ok {
			b.undecided = fmt.Sprintf("condition `%s` is %v", name, o.b)
		}
		res = append(res, boolOutcome{o.b, o.e.with(b)})
	}
	return res
}

// boolean evaluates a condition expression.
func (ev *evaluator) boolean(st *Stack, v any, e env, depth int) []boolOutcome {
	either := func(note string) []boolOutcome {
		key := "E\x00" + st.Name + "\x00" + note
		if b, ok := e.get(key); ok {
			return []boolOutcome{{b.b, e}}
		}
		return []boolOutcome{
			{true, e.with(binding{key: key, b: true, undecided: note})},
			{false, e.with(binding{key: key, b: false, undecided: note})},
		}
	}
	if ev.spent(depth) {
		return either(Render(v))
	}
	switch x := v.(type) {
	case bool:
		return []boolOutcome{{x, e}}
	case string:
		switch strings.ToLower(x) {
		case "true":
			return []boolOutcome{{true, e}}
		case "false":
			return []boolOutcome{{false, e}}
		}
	case map[string]any:
		if c, ok := x["Condition"].(string); ok && len(x) == 1 {
			return ev.cond(st, c, e, depth+1)
		}
		name, arg, ok := intrinsic(x)
		if !ok {
			break
		}
		args, _ := arg.([]any)
		switch name {
		case "Fn::Equals":
			if len(args) != 2 {
				break
			}
			var out []boolOutcome
			for _, s := range ev.seq(st, args, e, depth) {
				eq, known, opaque := compareVals(s.vs[0], s.vs[1])
				switch {
				case known:
					out = append(out, boolOutcome{eq, s.e})
				case opaque:
					key := "E\x00" + st.Name + "\x00" + Render(x)
					if b, ok := s.e.get(key); ok {
						out = append(out, boolOutcome{b.b, s.e})
						continue
					}
					note := fmt.Sprintf("`%s` equals `%s`", s.vs[0].text(), s.vs[1].text())
					out = append(out,
						boolOutcome{true, s.e.with(binding{key: key, b: true, undecided: note})},
						boolOutcome{false, s.e.with(binding{key: key, b: false, undecided: note})})
				default:
					// A parameter's free value may or may not equal the other side: the
					// parameter's choice (already recorded) decides.
					out = append(out, boolOutcome{true, s.e}, boolOutcome{false, s.e})
				}
			}
			return out
		case "Fn::Not":
			if len(args) != 1 {
				break
			}
			outs := ev.boolean(st, args[0], e, depth+1)
			for i := range outs {
				outs[i].b = !outs[i].b
			}
			return outs
		case "Fn::And", "Fn::Or":
			if len(args) == 0 {
				break
			}
			and := name == "Fn::And"
			outs := []boolOutcome{{and, e}}
			for _, a := range args {
				var next []boolOutcome
				for _, o := range outs {
					// Short-circuit: the outcome is settled, the rest is not evaluated.
					if o.b != and {
						next = append(next, o)
						continue
					}
					for _, r := range ev.boolean(st, a, o.e, depth+1) {
						next = append(next, boolOutcome{r.b, r.e})
					}
				}
				if len(next) > maxOutcomes {
					next = next[:maxOutcomes]
				}
				outs = next
			}
			return outs
		}
	}
	return either(Render(v))
}

// compareVals compares two values as Fn::Equals does: eq when known; opaque when the review
// cannot know (a part no parameter sets); neither when a parameter's free value decides.
func compareVals(a, b val) (eq, known, opaque bool) {
	if a.kind == vList && b.kind == vList {
		if len(a.list) != len(b.list) {
			return false, true, false
		}
		all := true
		for i := range a.list {
			e, k, o := compareVals(a.list[i], b.list[i])
			if k && !e {
				return false, true, false
			}
			if !k {
				all = false
				opaque = opaque || o
			}
		}
		return all, all, opaque
	}
	if a.kind != vStr || b.kind != vStr {
		return false, false, true
	}
	la, oka := a.literal()
	lb, okb := b.literal()
	switch {
	case oka && okb:
		return la == lb, true, false
	case a.has(segOpaque) || b.has(segOpaque):
		return false, false, true
	case oka && !b.canBe(la), okb && !a.canBe(lb):
		return false, true, false
	}
	return false, false, false
}

// paramChoices returns the values parameter name of st can take, its Default first, as
// bindings (without their key).
func (ev *evaluator) paramChoices(st *Stack, name string) []binding {
	if c, ok := ev.choices[st][name]; ok {
		return c
	}
	def, _ := st.params[name].(map[string]any)
	typ, _ := def["Type"].(string)
	dv, hasDef := def["Default"]
	defText := Render(dv)
	isList := typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<") ||
		strings.HasPrefix(typ, "AWS::SSM::Parameter::Value<List<") ||
		strings.HasPrefix(typ, "AWS::SSM::Parameter::Value<CommaDelimitedList")
	wrap := func(v val) val {
		if isList {
			return val{kind: vListOf, elem: &v}
		}
		return v
	}
	var out []binding
	if strings.HasPrefix(typ, "AWS::SSM::Parameter::Value<") {
		// The value is read from Systems Manager: whatever the SSM parameter holds.
		out = append(out, binding{v: wrap(freeVal(name, "")), param: name, how: "SSM"})
	} else {
		if hasDef && dv != nil {
			var v val
			if isList {
				v = val{kind: vList}
				for _, p := range strings.Split(defText, ",") {
					v.list = append(v.list, litVal(strings.TrimSpace(p)))
				}
			} else {
				v = litVal(defText)
			}
			out = append(out, binding{v: v, param: name, def: true})
		}
		allowed := elems(def["AllowedValues"])
		pattern, _ := def["AllowedPattern"].(string)
		switch {
		case len(allowed) > 0 && isList:
			alts := make([]string, len(allowed))
			for i, a := range allowed {
				alts[i] = regexp.QuoteMeta(Render(a))
			}
			out = append(out, binding{v: wrap(freeVal(name, strings.Join(alts, "|"))), param: name, how: "AllowedValues"})
		case len(allowed) > 0:
			for _, a := range allowed {
				if hasDef && Render(a) == defText {
					continue
				}
				out = append(out, binding{v: litVal(Render(a)), param: name, how: "AllowedValues"})
			}
		default:
			re, how := "", "any value"
			if pattern != "" {
				if p, ok := cfnPattern(pattern); ok {
					re, how = p, "AllowedPattern"
				} else {
					how = "AllowedPattern (unreadable)"
				}
			} else if p := typePattern(typ); p != "" {
				re, how = p, "type "+typ
			}
			out = append(out, binding{v: wrap(freeVal(name, re)), param: name, how: how})
		}
	}
	if !hasDef || dv == nil {
		for i := range out {
			if out[i].how != "SSM" {
				out[i].how = "no Default; " + out[i].how
			}
		}
	}
	if ev.choices[st] == nil {
		ev.choices[st] = map[string][]binding{}
	}
	ev.choices[st][name] = out
	return out
}

// cfnPattern converts a CloudFormation AllowedPattern (a Java pattern that must match the
// whole value) to a Go pattern; false when Go cannot read it (possessive quantifiers,
// look-arounds, back-references...): the parameter then counts as taking any value.
func cfnPattern(p string) (string, bool) {
	p = strings.TrimPrefix(p, "^")
	if strings.HasSuffix(p, "$") && !strings.HasSuffix(p, `\$`) {
		p = strings.TrimSuffix(p, "$")
	}
	if compilePattern(`^(?:`+p+`)$`) == nil {
		return "", false
	}
	return p, true
}

// typePattern is the pattern values of an AWS-specific parameter type match, or "".
func typePattern(typ string) string {
	switch {
	case typ == "Number":
		return `[-+]?[0-9]+(?:\.[0-9]+)?`
	case strings.HasPrefix(typ, "AWS::EC2::") && strings.HasSuffix(typ, "::Id"):
		return `[a-z]+-[0-9a-zA-Z]+`
	}
	return ""
}

// choiceText says how a binding sets its parameter: "parameter `P` is set to `v` (why it can
// be)".
func choiceText(b binding, value string) string {
	how, noDefault := strings.CutPrefix(b.how, "no Default; ")
	var why string
	switch {
	case how == "SSM":
		return fmt.Sprintf("the SSM parameter read by parameter `%s` holds `%s`", b.param, value)
	case how == "AllowedValues":
		why = "one of its AllowedValues"
	case how == "AllowedPattern":
		why = "its AllowedPattern admits it"
	case how == "AllowedPattern (unreadable)":
		why = "its AllowedPattern is not a pattern Go can read, so any value counts"
	case strings.HasPrefix(how, "type "):
		why = "its " + how + " admits it"
	default:
		why = "nothing constrains it"
	}
	if noDefault {
		why += "; it has no Default"
	}
	if strings.HasPrefix(value, "a value that makes ") {
		return fmt.Sprintf("parameter `%s` is set to %s (%s)", b.param, value, why)
	}
	return fmt.Sprintf("parameter `%s` is set to `%s` (%s)", b.param, value, why)
}

// regexpCache caches compiled patterns; it is safe for concurrent use.
type regexpCache struct {
	mu sync.Mutex
	m  map[string]*regexp.Regexp
}

// newPatternCache returns an empty cache.
func newPatternCache() *regexpCache { return &regexpCache{m: map[string]*regexp.Regexp{}} }

// get compiles p once; nil when it does not compile. The cache stops growing at 4096 entries.
func (c *regexpCache) get(p string) *regexp.Regexp {
	c.mu.Lock()
	defer c.mu.Unlock()
	if re, ok := c.m[p]; ok {
		return re
	}
	re, err := regexp.Compile(p)
	if err != nil {
		re = nil
	}
	if len(c.m) < 4096 {
		c.m[p] = re
	}
	return re
}

// fieldsOutcome is one combination of values of an object's fields.
type fieldsOutcome struct {
	vals map[string]val
	e    env
}

// fields evaluates the named fields of m together (one decision per parameter or condition
// across them); a missing field is vNoValue.
func (ev *evaluator) fields(st *Stack, m map[string]any, keys []string, e env) []fieldsOutcome {
	ev.steps = 0
	items := make([]any, len(keys))
	for i, k := range keys {
		items[i] = m[k]
	}
	var out []fieldsOutcome
	for _, s := range ev.seq(st, items, e, 0) {
		vals := make(map[string]val, len(keys))
		for i, k := range keys {
			vals[k] = s.vs[i]
		}
		out = append(out, fieldsOutcome{vals, s.e})
	}
	return out
}

// exists returns the decisions under which resource r is created: every outcome of its
// Condition that is true (one empty environment when it has none); none when it never is.
func (ev *evaluator) exists(r *resource) []env {
	if r.cond == "" {
		return []env{nil}
	}
	var out []env
	for _, o := range ev.condition(r.st, r.cond, nil) {
		if o.b {
			out = append(out, o.e)
		}
	}
	return out
}

// items returns the elements a list-valued property can hold, across every outcome: objects,
// strings and references (with the stack to resolve them in), each with the decisions under
// which it is there. An element present in several outcomes is returned once, with all its
// decisions (defaults first).
func (ev *evaluator) items(st *Stack, v any, starts []env) []item {
	var out []item
	seen := map[string]int{}
	for _, e0 := range starts {
		for _, o := range ev.values(st, v, e0) {
			var els []val
			switch o.v.kind {
			case vList:
				els = o.v.list
			case vListOf:
				els = []val{*o.v.elem}
				if o.v.raw != nil {
					els = []val{{kind: vStr, segs: o.v.elem.segs, raw: o.v.raw, st: o.v.st}}
				}
			case vNoValue:
			default:
				els = []val{o.v}
			}
			for _, el := range els {
				if _, lit := el.literal(); !lit && el.kind == vStr && el.raw == nil {
					el.raw, el.st = v, st // shown as the whole expression
				}
				key := el.text()
				if el.kind == vObj {
					key = fmt.Sprintf("obj %p", el.obj)
				}
				if i, ok := seen[key]; ok {
					if len(out[i].envs) < maxItemEnvs {
						out[i].envs = append(out[i].envs, o.e)
					}
					continue
				}
				seen[key] = len(out)
				out = append(out, item{v: el, envs: []env{o.e}})
			}
		}
	}
	return out
}

// item is one element of a list-valued property and the decisions under which it is there.
type item struct {
	v    val
	envs []env
}
