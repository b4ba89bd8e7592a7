package review

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// pseudoParams renders CloudFormation pseudo parameters readably.
var pseudoParams = map[string]string{
	"AWS::AccountId":        "<account>",
	"AWS::NoValue":          "<no-value>",
	"AWS::NotificationARNs": "<notification-arns>",
	"AWS::Partition":        "<partition>",
	"AWS::Region":           "<region>",
	"AWS::StackId":          "<stack-id>",
	"AWS::StackName":        "<stack-name>",
	"AWS::URLSuffix":        "<url-suffix>",
}

// intrinsic reports whether m is an intrinsic function call ({"Ref": x} or
// {"Fn::Name": args}) and returns its name and argument.
func intrinsic(m map[string]any) (string, any, bool) {
	if len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, v, true
		}
	}
	return "", nil, false
}

// Render returns a compact, readable rendering of a template value:
// literals as is, {"Ref": "X"} as "Ref X", {"Fn::GetAtt": ["X", "A"]} as
// "X.A", {"Fn::ImportValue": "N"} as "import N", pseudo parameters as
// "<partition>" and friends, Fn::Join and Fn::Sub as the joined text with
// "${X}" placeholders, and other functions as "Name(args)".
func Render(v any) string { return render(v, false) }

// render renders v; inText is true inside Fn::Join and Fn::Sub, where
// references become ${...} placeholders.
func render(v any, inText bool) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, el := range x {
			parts[i] = render(el, false)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		if name, arg, ok := intrinsic(x); ok {
			return renderIntrinsic(name, arg, inText)
		}
		b, err := json.Marshal(x)
		if err != nil {
			return "{...}"
		}
		return string(b)
	}
	return "?"
}

// renderIntrinsic renders one intrinsic function call.
func renderIntrinsic(name string, arg any, inText bool) string {
	wrap := func(s string) string {
		if inText {
			return "${" + s + "}"
		}
		return s
	}
	switch name {
	case "Ref":
		s, ok := arg.(string)
		if !ok {
			break
		}
		if p, ok := pseudoParams[s]; ok {
			return p
		}
		if inText {
			return "${" + s + "}"
		}
		return "Ref " + s
	case "Fn::GetAtt":
		if s, ok := arg.(string); ok {
			return wrap(s)
		}
		if l, ok := arg.([]any); ok && len(l) == 2 {
			return wrap(render(l[0], false) + "." + render(l[1], false))
		}
	case "Fn::ImportValue":
		return wrap("import " + render(arg, false))
	case "Fn::Join":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			break
		}
		sep, ok := l[0].(string)
		if !ok {
			break
		}
		parts, ok := l[1].([]any)
		if !ok {
			return "Join(" + strconv.Quote(sep) + ", " + render(l[1], false) + ")"
		}
		out := make([]string, len(parts))
		for i, p := range parts {
			out[i] = render(p, true)
		}
		return strings.Join(out, sep)
	case "Fn::Sub":
		switch a := arg.(type) {
		case string:
			return subPseudo(a, nil)
		case []any:
			if len(a) == 2 {
				if s, ok := a[0].(string); ok {
					vars, _ := a[1].(map[string]any)
					return subPseudo(s, vars)
				}
			}
		}
	}
	return callName(name) + "(" + renderArgs(arg) + ")"
}

// subVar matches a ${...} placeholder of Fn::Sub (not the ${!literal} escape).
var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// subPseudo renders an Fn::Sub string: pseudo parameters readably, the
// given variables by their rendered values, other placeholders unchanged.
func subPseudo(s string, vars map[string]any) string {
	return subVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			return render(v, true)
		}
		if p, ok := pseudoParams[name]; ok {
			return p
		}
		return m
	})
}

// callName turns "Fn::Select" into "Select".
func callName(name string) string { return strings.TrimPrefix(name, "Fn::") }

// renderArgs renders the arguments of a generic function call.
func renderArgs(arg any) string {
	l, ok := arg.([]any)
	if !ok {
		l = []any{arg}
	}
	out := make([]string, len(l))
	for i, a := range l {
		if s, ok := a.(string); ok && s == "" {
			out[i] = `""`
			continue
		}
		out[i] = render(a, false)
	}
	return strings.Join(out, ", ")
}

// literal returns v as a string when it is a literal or folds to one in
// stack st: Fn::Join and Fn::Sub of literals and AWS::StackName.
func literal(st *Stack, v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case map[string]any:
		name, arg, ok := intrinsic(x)
		if !ok {
			return "", false
		}
		switch name {
		case "Ref":
			if arg == "AWS::StackName" && st != nil {
				return st.StackName, true
			}
		case "Fn::Join":
			l, ok := arg.([]any)
			if !ok || len(l) != 2 {
				return "", false
			}
			sep, ok1 := l[0].(string)
			parts, ok2 := l[1].([]any)
			if !ok1 || !ok2 {
				return "", false
			}
			out := make([]string, len(parts))
			for i, p := range parts {
				s, ok := literal(st, p)
				if !ok {
					return "", false
				}
				out[i] = s
			}
			return strings.Join(out, sep), true
		case "Fn::Sub":
			s, ok := arg.(string)
			if !ok || st == nil {
				return "", false
			}
			s = strings.ReplaceAll(s, "${AWS::StackName}", st.StackName)
			if subVar.MatchString(s) {
				return "", false
			}
			return strings.ReplaceAll(s, "${!", "${"), true
		}
	}
	return "", false
}

// ref is a template value resolved to the resource it refers to.
type ref struct {
	res  *resource
	attr string // "" for Ref
}

// export is one stack output with an Export.Name.
type export struct {
	st    *Stack
	value any
}

// resolver follows references between resources, nested stacks and
// exports of one assembly.
type resolver struct {
	exports map[string][]export
}

// newResolver indexes the exports of every stack.
func newResolver(stacks []*Stack) *resolver {
	rv := &resolver{exports: map[string][]export{}}
	for _, st := range stacks {
		for _, id := range sortedKeys(st.outputs) {
			out, _ := st.outputs[id].(map[string]any)
			exp, _ := out["Export"].(map[string]any)
			name, ok := literal(st, exp["Name"])
			if !ok || out["Value"] == nil {
				continue
			}
			rv.exports[name] = append(rv.exports[name], export{st: st, value: out["Value"]})
		}
	}
	return rv
}

// importName returns the literal export name of an Fn::ImportValue, if v is one.
func importName(st *Stack, v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	name, arg, ok := intrinsic(m)
	if !ok || name != "Fn::ImportValue" {
		return "", false
	}
	return literal(st, arg)
}

// resolve follows v, a value in stack st, to the resource it refers to:
// Ref and Fn::GetAtt of a resource, a nested stack's parameter (to the
// value its parent passes), a nested stack's output (Fn::GetAtt
// Stack.Outputs.X), and Fn::ImportValue of an export of the assembly.
func (rv *resolver) resolve(st *Stack, v any) (ref, bool) {
	return rv.resolveDepth(st, v, 0)
}

// resolveDepth is resolve with a recursion bound.
func (rv *resolver) resolveDepth(st *Stack, v any, depth int) (ref, bool) {
	if depth > maxDepth || st == nil {
		return ref{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return ref{}, false
	}
	name, arg, ok := intrinsic(m)
	if !ok {
		return ref{}, false
	}
	switch name {
	case "Ref":
		id, ok := arg.(string)
		if !ok {
			return ref{}, false
		}
		if r, ok := st.resources[id]; ok {
			return ref{res: r}, true
		}
		if _, ok := st.params[id]; ok && st.parentRes != nil {
			params, _ := st.parentRes.props["Parameters"].(map[string]any)
			if pv, ok := params[id]; ok {
				return rv.resolveDepth(st.parent, pv, depth+1)
			}
		}
	case "Fn::GetAtt":
		var id, attr string
		switch a := arg.(type) {
		case string:
			id, attr, _ = strings.Cut(a, ".")
		case []any:
			if len(a) == 2 {
				id, _ = a[0].(string)
				attr, _ = a[1].(string)
			}
		}
		r, ok := st.resources[id]
		if !ok {
			return ref{}, false
		}
		if out, ok := strings.CutPrefix(attr, "Outputs."); ok && r.typ == typeNestedStack {
			if child := r.child(); child != nil {
				o, _ := child.outputs[out].(map[string]any)
				if o != nil {
					return rv.resolveDepth(child, o["Value"], depth+1)
				}
			}
		}
		return ref{res: r, attr: attr}, true
	case "Fn::ImportValue":
		n, ok := literal(st, arg)
		if !ok {
			return ref{}, false
		}
		exps := rv.exports[n]
		if len(exps) == 0 {
			return ref{}, false
		}
		e := exps[0]
		for _, x := range exps {
			if x.st.Environment == st.Environment {
				e = x
				break
			}
		}
		return rv.resolveDepth(e.st, e.value, depth+1)
	}
	return ref{}, false
}

// refsIn returns every resource reference inside v, outermost first: a
// value that resolves as a whole yields one reference; otherwise the
// arguments of its functions are searched.
func (rv *resolver) refsIn(st *Stack, v any) []ref {
	var out []ref
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > maxDepth {
			return
		}
		switch x := v.(type) {
		case []any:
			for _, el := range x {
				walk(el, depth+1)
			}
		case map[string]any:
			if r, ok := rv.resolve(st, x); ok {
				out = append(out, r)
				return
			}
			for _, k := range sortedKeys(x) {
				walk(x[k], depth+1)
			}
		}
	}
	walk(v, 0)
	return out
}

// child returns the nested stack a AWS::CloudFormation::Stack resource creates.
func (r *resource) child() *Stack {
	return r.childStack
}

// elems returns the elements of a list value, or the value itself when it
// is not a list.
func elems(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}

// stringsOf returns the literal strings of a string-or-list value.
func stringsOf(v any) []string {
	var out []string
	for _, el := range elems(v) {
		if s, ok := el.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// containsStar reports whether a string-or-list value contains "*".
func containsStar(v any) bool { return slices.Contains(stringsOf(v), "*") }
