package review

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// typeRolePolicy is an inline policy of one role declared as its own resource.
const typeRolePolicy = "AWS::IAM::RolePolicy"

// Policy documents: CloudFormation accepts a PolicyDocument (and an AssumeRolePolicyDocument)
// as a JSON object or as a string holding the JSON; a string can also be an Fn::Sub or an
// Fn::Join whose placeholders become references. docOf reads all of them into one shape.

// docOf returns the policy document v (in stack st) as an object, or nil when it cannot be
// read: an object as written, a JSON string decoded, or an Fn::Sub / Fn::Join of JSON text
// decoded with its placeholders turned back into Ref, Fn::GetAtt or Fn::Join values.
func docOf(st *Stack, v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		name, arg, fn := intrinsic(x)
		if !fn {
			return x
		}
		text, vals, ok := templateText(st, name, arg)
		if !ok {
			return nil
		}
		doc, _ := decodeDoc(text)
		if doc == nil {
			return nil
		}
		return restorePlaceholders(doc, vals).(map[string]any)
	case string:
		doc, _ := decodeDoc(x)
		return doc
	}
	return nil
}

// decodeDoc decodes a JSON policy document held in a string.
func decodeDoc(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON document")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", kindOf(v))
	}
	return m, nil
}

// Placeholders stand for template values inside JSON text while it is decoded; they use
// private-use characters that JSON passes through and templates do not contain.
const (
	phOpen  = "\ue000"
	phClose = "\ue001"
)

// templateText renders an Fn::Sub or Fn::Join as text in which every value that is not a
// literal is a placeholder, and returns the values in placeholder order.
func templateText(st *Stack, name string, arg any) (string, []any, bool) {
	var vals []any
	hold := func(v any) string {
		vals = append(vals, v)
		return fmt.Sprintf("%s%d%s", phOpen, len(vals)-1, phClose)
	}
	switch name {
	case "Fn::Sub":
		var s string
		var vars map[string]any
		switch a := arg.(type) {
		case string:
			s = a
		case []any:
			if len(a) != 2 {
				return "", nil, false
			}
			s, _ = a[0].(string)
			vars, _ = a[1].(map[string]any)
		default:
			return "", nil, false
		}
		out := subVar.ReplaceAllStringFunc(s, func(m string) string {
			v := m[2 : len(m)-1]
			if x, ok := vars[v]; ok {
				if lit, ok := literal(st, x); ok {
					return jsonInner(lit)
				}
				return hold(x)
			}
			if v == "AWS::StackName" && st != nil {
				return jsonInner(st.StackName)
			}
			if id, attr, ok := strings.Cut(v, "."); ok {
				return hold(map[string]any{"Fn::GetAtt": []any{id, attr}})
			}
			return hold(map[string]any{"Ref": v})
		})
		return strings.ReplaceAll(out, "${!", "${"), vals, true
	case "Fn::Join":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return "", nil, false
		}
		sep, ok1 := l[0].(string)
		parts, ok2 := l[1].([]any)
		if !ok1 || !ok2 {
			return "", nil, false
		}
		var b strings.Builder
		for i, p := range parts {
			if i > 0 {
				b.WriteString(sep)
			}
			if s, ok := p.(string); ok {
				b.WriteString(s)
			} else if lit, ok := literal(st, p); ok {
				b.WriteString(jsonInner(lit))
			} else {
				b.WriteString(hold(p))
			}
		}
		return b.String(), vals, true
	}
	return "", nil, false
}

// jsonInner escapes s for use inside a JSON string literal.
func jsonInner(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSpace(b.String())
	return out[1 : len(out)-1]
}

// restorePlaceholders replaces placeholders in the decoded document: a string that is one
// placeholder becomes its value, a string with text around placeholders an Fn::Join.
func restorePlaceholders(v any, vals []any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, el := range x {
			out[k] = restorePlaceholders(el, vals)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = restorePlaceholders(el, vals)
		}
		return out
	case string:
		if !strings.Contains(x, phOpen) {
			return x
		}
		var parts []any
		rest := x
		for {
			i := strings.Index(rest, phOpen)
			if i < 0 {
				break
			}
			j := strings.Index(rest[i:], phClose)
			if j < 0 {
				break
			}
			var n int
			if _, err := fmt.Sscanf(rest[i+len(phOpen):i+j], "%d", &n); err != nil || n < 0 || n >= len(vals) {
				break
			}
			if i > 0 {
				parts = append(parts, rest[:i])
			}
			parts = append(parts, vals[n])
			rest = rest[i+j+len(phClose):]
		}
		if rest != "" {
			parts = append(parts, rest)
		}
		if len(parts) == 1 {
			return parts[0]
		}
		return map[string]any{"Fn::Join": []any{"", parts}}
	}
	return v
}

// managedPolicyOf resolves a ManagedPolicyArns entry to a customer managed policy of the
// assembly: a reference to it, or its ARN written out with its ManagedPolicyName.
func (z *analyzer) managedPolicyOf(st *Stack, v any) *resource {
	if mp := z.resolveTo(st, v, typeManagedPolicy, nil); mp != nil {
		return mp
	}
	var text string
	if s, ok := literal(st, v); ok {
		text = s
	} else if m, ok := v.(map[string]any); ok {
		if name, arg, fn := intrinsic(m); fn && (name == "Fn::Sub" || name == "Fn::Join") {
			text, _, _ = templateText(st, name, arg)
		}
	}
	if _, name, ok := strings.Cut(text, ":policy/"); ok && !strings.Contains(text, ":iam::aws:policy/") {
		name = name[strings.LastIndex(name, "/")+1:]
		return z.mpByName[name]
	}
	return nil
}

// profileOf resolves an IamInstanceProfile value (name, ARN or reference) to an instance
// profile of the assembly.
func (z *analyzer) profileOf(st *Stack, v any) *resource {
	if p := z.resolveTo(st, v, typeProfile, z.profileByName); p != nil {
		return p
	}
	var text string
	if s, ok := literal(st, v); ok {
		text = s
	} else if m, ok := v.(map[string]any); ok {
		if name, arg, fn := intrinsic(m); fn && (name == "Fn::Sub" || name == "Fn::Join") {
			var vals []any
			text, vals, _ = templateText(st, name, arg)
			// An ARN built around a reference to the profile.
			for _, x := range vals {
				if r, ok := z.rv.resolve(st, x); ok && r.res.typ == typeProfile {
					return r.res
				}
			}
		}
	}
	if _, name, ok := strings.Cut(text, ":instance-profile/"); ok {
		name = name[strings.LastIndex(name, "/")+1:]
		return z.profileByName[name]
	}
	return nil
}

// outsideText says where a value the review cannot follow to a resource of the assembly
// (an instance profile or a role) comes from.
func (z *analyzer) outsideText(st *Stack, v any, what string) string {
	if s, ok := literal(st, v); ok {
		how := "created elsewhere and named here"
		if what == "role" {
			how = "an existing role named here, as CDK's Role.fromRoleArn or Role.fromRoleName produce"
		}
		return fmt.Sprintf("`%s`, which is not defined in this assembly (%s)", s, how)
	}
	if n, ok := importName(st, v); ok {
		return fmt.Sprintf("`%s`, imported from a stack outside this assembly (export `%s`)", Render(v), n)
	}
	if m, ok := v.(map[string]any); ok {
		if name, arg, _ := intrinsic(m); name == "Ref" {
			if id, ok := arg.(string); ok {
				if _, isParam := st.params[id]; isParam {
					return fmt.Sprintf("`%s`, given by parameter `%s` at deploy time", Render(v), id)
				}
			}
		}
	}
	return fmt.Sprintf("`%s`, which the review cannot resolve to a %s of this assembly", Render(v), what)
}

// roleFindings records DEF-ROLE-1 for instances and Auto Scaling groups whose role the
// review cannot see.
func (z *analyzer) roleFindings() {
	for _, c := range z.computes {
		if c.unjudged == "" {
			continue
		}
		var subjects []*resource
		if c.profile != nil {
			subjects = append(subjects, c.profile)
		}
		z.addFinding(RuleUnjudgedRole, c.res, subjects,
			"%s `%s` gets credentials from a role the review cannot judge: %s. Whether those credentials are locked "+
				"is decided outside this review: define the role in this app (with a lock), or review the template that defines it.",
			c.inst.Kind, display(c.res), c.unjudged)
	}
}

// policyDocValue checks the policy document m[key]: required; an object, a string holding a
// JSON object (CloudFormation accepts both), or an intrinsic function (not checked).
func (c checker) policyDocValue(m map[string]any, key, path string) {
	raw, ok := m[key]
	if !ok {
		c.errf(path, "missing")
		return
	}
	switch x := raw.(type) {
	case string:
		doc, err := decodeDoc(x)
		if err != nil {
			c.errf(path, "a string that is not a JSON policy document: %v", err)
			return
		}
		c.policyDocument(doc, path)
	case map[string]any:
		if _, _, fn := intrinsic(x); fn {
			return
		}
		c.policyDocument(x, path)
	default:
		c.errf(path, "want an object or a JSON string, got %s", kindOf(raw))
	}
}

// candidates returns the resources of type typ (a role or an instance profile) that v, a
// value in stack st, can refer to on any path of parameters and conditions, and describes
// the values it can take that are not such a resource of the assembly (a literal name
// defined elsewhere, an import, a parameter). AWS::NoValue is neither.
func (z *analyzer) candidates(st *Stack, v any, typ string) ([]*resource, []string) {
	what := map[string]string{typeRole: "role", typeProfile: "instance profile"}[typ]
	resolve := func(st *Stack, v any) *resource {
		if typ == typeProfile {
			return z.profileOf(st, v)
		}
		return z.resolveTo(st, v, typeRole, z.roleByName)
	}
	if r := resolve(st, v); r != nil {
		return []*resource{r}, nil
	}
	var found []*resource
	var outside []string
	addOutside := func(s string) {
		if !slices.Contains(outside, s) {
			outside = append(outside, s)
		}
	}
	var visit func(x val)
	visit = func(x val) {
		switch {
		case x.kind == vNoValue:
		case x.kind == vList:
			for _, el := range x.list {
				visit(el)
			}
		case x.kind == vListOf && x.elem != nil:
			visit(*x.elem)
		case x.raw != nil:
			if r := resolve(x.st, x.raw); r != nil {
				if !slices.Contains(found, r) {
					found = append(found, r)
				}
				return
			}
			addOutside(z.outsideText(x.st, x.raw, what))
		default:
			if lit, ok := x.literal(); ok {
				if r := resolve(st, lit); r != nil {
					if !slices.Contains(found, r) {
						found = append(found, r)
					}
					return
				}
				addOutside(z.outsideText(st, lit, what))
				return
			}
			if p, ok := x.freeParam(); ok {
				addOutside(fmt.Sprintf("`%s`, given by parameter `%s` at deploy time", x.text(), p))
				return
			}
			addOutside(fmt.Sprintf("`%s`, which the review cannot resolve to a %s of this assembly", x.text(), what))
		}
	}
	for _, o := range newEvaluator().values(st, v, nil) {
		visit(o.v)
	}
	return found, outside
}
