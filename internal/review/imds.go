package review

import (
	"fmt"
	"slices"
	"strings"
)

// IMDS of instances, Auto Scaling groups, launch templates and launch configurations.
//
// MetadataOptions can be set in several places; for each key (HttpTokens, HttpEndpoint) the
// most specific place that sets it wins: the AWS::EC2::Instance itself, then its launch
// template; for an Auto Scaling group, its launch template or its launch configuration.
// An unset HttpTokens is "optional" (IMDSv1 allowed) and an unset HttpEndpoint "enabled".
// HttpEndpoint "disabled" means no metadata service at all: nothing to steal, no finding.
//
// A value that depends on a parameter or a condition is judged on every value it can take:
// if the template's defaults allow IMDSv1 the finding is DEF-IMDS-1 (error); if only other
// values allow it, DEF-IMDS-2 (warning).
//
// A finding names the resource where MetadataOptions lives or should live: the launch
// template or launch configuration the instances come from (judged on its own, even when
// nothing in the assembly uses it, as an EKS node group's template), else the instance;
// never the Auto Scaling group. An instance that sets MetadataOptions itself is judged with
// its launch template's values filling in what it does not set.

// imdsLayer is one place MetadataOptions can be set, with the stack that holds it.
type imdsLayer struct {
	src   string // "instance", "launch template", "launch configuration", "Auto Scaling group"
	st    *Stack
	props map[string]any
	res   *resource // the resource holding props, nil when outside the assembly
}

// imdsOption is the value of one MetadataOptions key.
type imdsOption struct {
	raw   any       // the value as written, nil when no layer sets it
	layer imdsLayer // the layer that sets it (the first layer when none does)
	vals  valueSet
}

// imdsVerdict is an IMDS setting judged over its layers.
type imdsVerdict struct {
	layers           []imdsLayer
	tokens, endpoint imdsOption
	// defaultV1 is true when the template's defaults allow IMDSv1 (DEF-IMDS-1).
	defaultV1 bool
	// possibleV1 is true when some deployable values allow IMDSv1 (DEF-IMDS-2 when not
	// defaultV1).
	possibleV1 bool
	// state is IMDSv2Required, IMDSv1Allowed, IMDSDisabled or IMDSv1Possible.
	state string
}

// AWS defaults of the MetadataOptions keys.
const (
	tokensRequired   = "required"
	tokensOptional   = "optional"
	endpointDisabled = "disabled"
	endpointEnabled  = "enabled"
)

// setIMDS decides the IMDS setting of c from its layers, most specific first.
func (c *compute) setIMDS(layers ...imdsLayer) {
	c.imds = judgeIMDS(layers...)
	c.inst.IMDS = c.imds.state
}

// judgeIMDS judges MetadataOptions over layers, most specific first.
func judgeIMDS(layers ...imdsLayer) imdsVerdict {
	v := imdsVerdict{
		layers:   layers,
		tokens:   optionOf(layers, "HttpTokens", tokensOptional, tokensRequired, tokensOptional),
		endpoint: optionOf(layers, "HttpEndpoint", endpointEnabled, endpointDisabled, endpointEnabled),
	}
	tokD, endD := v.tokens.vals.dflt, v.endpoint.vals.dflt
	// The defaults allow IMDSv1 when every default combination surely does (an
	// unevaluable value counts as allowing it: fail closed).
	if len(tokD) > 0 && len(endD) > 0 {
		v.defaultV1 = true
		for _, t := range tokD {
			for _, e := range endD {
				if imdsAllows(t, e) != allowYes {
					v.defaultV1 = false
				}
			}
		}
	}
	for _, t := range v.tokens.vals.all() {
		for _, e := range v.endpoint.vals.all() {
			if imdsAllows(t, e) != allowNo {
				v.possibleV1 = true
			}
		}
	}
	switch {
	case v.defaultV1:
		v.state = IMDSv1Allowed
	case len(endD) > 0 && !slices.ContainsFunc(endD, func(e string) bool { return !strings.EqualFold(e, endpointDisabled) }):
		v.state = IMDSDisabled
	case len(tokD) > 0 && !slices.ContainsFunc(tokD, func(t string) bool { return !strings.EqualFold(t, tokensRequired) }):
		v.state = IMDSv2Required
	case !v.possibleV1:
		// Every combination either requires tokens or disables the endpoint.
		v.state = IMDSv2Required
	default:
		v.state = IMDSv1Possible
	}
	return v
}

// Whether a (HttpTokens, HttpEndpoint) pair allows IMDSv1.
const (
	allowNo = iota
	allowMaybe
	allowYes
)

// imdsAllows says whether HttpTokens t with HttpEndpoint e allows IMDSv1.
func imdsAllows(t, e string) int {
	switch {
	case strings.EqualFold(e, endpointDisabled), strings.EqualFold(t, tokensRequired):
		return allowNo
	case e == anyValue, t == anyValue:
		return allowMaybe
	}
	return allowYes
}

// optionOf returns MetadataOptions[key] across layers: the first layer that sets it wins,
// and a layer whose value is AWS::NoValue (also inside Fn::If) falls through to the next.
func optionOf(layers []imdsLayer, key, awsDefault string, probes ...string) imdsOption {
	var rest func(i int) (imdsOption, bool)
	rest = func(i int) (imdsOption, bool) {
		for ; i < len(layers); i++ {
			v, ok := metadataOption(layers[i].props, key)
			if !ok || isNoValue(v) {
				continue
			}
			next := i + 1
			fallback := func() valueSet {
				if o, ok := rest(next); ok {
					return o.vals
				}
				return literalValues(awsDefault)
			}
			return imdsOption{raw: v, layer: layers[i], vals: deployValues(layers[i].st, v, fallback, probes...)}, true
		}
		return imdsOption{}, false
	}
	if o, ok := rest(0); ok {
		return o
	}
	o := imdsOption{vals: literalValues(awsDefault)}
	if len(layers) > 0 {
		o.layer = layers[0]
	}
	return o
}

// metadataOption returns MetadataOptions[key] of a property map. A MetadataOptions written
// as Fn::If yields an Fn::If of the key's value in each branch (AWS::NoValue where a
// branch lacks it).
func metadataOption(props map[string]any, key string) (any, bool) {
	mo, ok := props["MetadataOptions"].(map[string]any)
	if !ok {
		return nil, false
	}
	if name, arg, fn := intrinsic(mo); fn {
		l, ok := arg.([]any)
		if name != "Fn::If" || !ok || len(l) != 3 {
			return nil, false
		}
		branch := func(b any) any {
			if m, ok := b.(map[string]any); ok {
				if v, ok := metadataOption(map[string]any{"MetadataOptions": m}, key); ok {
					return v
				}
			}
			return map[string]any{"Ref": "AWS::NoValue"}
		}
		return map[string]any{"Fn::If": []any{l[0], branch(l[1]), branch(l[2])}}, true
	}
	v, ok := mo[key]
	return v, ok
}

// isNoValue reports whether v is {"Ref": "AWS::NoValue"}.
func isNoValue(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	name, arg, fn := intrinsic(m)
	return fn && name == "Ref" && arg == "AWS::NoValue"
}

// Markers of valueSet entries that are not literal values.
const (
	// anyValue is a value a deployer chooses freely (an unconstrained parameter).
	anyValue = "\x00any"
	// unknownValue is a value the review cannot evaluate (an import, an attribute):
	// judged as the worst case.
	unknownValue = "\x00unknown"
)

// valueSet is what a template value can be when the stack is deployed.
type valueSet struct {
	// dflt are the values it takes with the template's defaults; more than one when the
	// review cannot tell which (a condition it does not evaluate); none when a parameter
	// without a default must be given at deploy time.
	dflt []string
	// other are the further values other deployments can give it.
	other []string
	// via names the parameters and conditions it depends on, for messages.
	via []string
}

// all returns every value of s.
func (s valueSet) all() []string {
	out := slices.Concat(s.dflt, s.other)
	slices.Sort(out)
	return slices.Compact(out)
}

// literalValues is the value set of one literal.
func literalValues(s string) valueSet { return valueSet{dflt: []string{s}} }

// deployValues is what v, a value in stack st, can be at deploy time, judged through the
// evaluator of parameters and conditions (eval.go): an outcome with every parameter at its
// Default is a default value (several when the evaluator had to take both sides of a
// condition it cannot decide), any other outcome a further value. A
// parameter part that admits anything is tested against probes (the values that matter to
// the caller) and yields anyValue when none can be told; a part no parameter sets (an
// import, an attribute) is unknownValue. noValue gives the values that apply when v is
// AWS::NoValue (the property falls back to the next layer or to AWS's default).
func deployValues(st *Stack, v any, noValue func() valueSet, probes ...string) valueSet {
	var out valueSet
	add := func(list *[]string, xs ...string) {
		for _, x := range xs {
			if !slices.Contains(*list, x) {
				*list = append(*list, x)
			}
		}
	}
	for _, o := range newEvaluator().values(st, v, nil) {
		for _, b := range o.e {
			switch {
			case b.param != "":
				add(&out.via, "parameter `"+b.param+"`")
			case b.cond != "":
				add(&out.via, "condition `"+b.cond+"`")
			}
		}
		var vals []string
		switch {
		case o.v.kind == vNoValue:
			nv := noValue()
			add(&out.via, nv.via...)
			if o.e.isDefault() {
				add(&out.dflt, nv.dflt...)
				add(&out.other, nv.other...)
			} else {
				add(&out.other, nv.all()...)
			}
			continue
		case o.v.kind != vStr || o.v.has(segOpaque):
			vals = []string{unknownValue}
		default:
			if lit, ok := o.v.literal(); ok {
				vals = []string{lit}
				break
			}
			for _, p := range probes {
				if o.v.canBe(p) {
					vals = append(vals, p)
				}
			}
			if len(vals) == 0 || len(vals) == len(probes) {
				vals = []string{anyValue}
			}
		}
		// A default outcome that depends on an undecided condition is one of several
		// candidates; an outcome with a parameter away from its Default is another value.
		if o.e.isDefault() {
			add(&out.dflt, vals...)
		} else {
			add(&out.other, vals...)
		}
	}
	out.other = slices.DeleteFunc(out.other, func(x string) bool { return slices.Contains(out.dflt, x) })
	slices.Sort(out.via)
	return out
}

// imdsAnchor returns the resource an IMDS finding about c names: the instance when it sets
// MetadataOptions itself or has no launch template; its launch template or launch
// configuration otherwise. ok is false when that template or configuration is outside the
// assembly: the setting is decided (and judged) where it is defined.
func (c *compute) imdsAnchor() (*resource, bool) {
	for _, o := range []imdsOption{c.imds.tokens, c.imds.endpoint} {
		if o.raw != nil && o.layer.res == c.res {
			return c.res, true
		}
	}
	for _, l := range c.imds.layers {
		if l.res != nil && l.res != c.res {
			return l.res, true
		}
	}
	p := c.res.props
	if p["LaunchTemplate"] != nil || p["MixedInstancesPolicy"] != nil || p["LaunchConfigurationName"] != nil || p["InstanceId"] != nil {
		return nil, false
	}
	return c.res, true
}

// imdsFindings records DEF-IMDS-1 and DEF-IMDS-2: about each launch template and launch
// configuration on its own, with the instances and groups launched from it as subjects, and
// about each instance that sets MetadataOptions itself or has no launch template.
func (z *analyzer) imdsFindings() {
	users := map[*resource][]*compute{}
	overriders := map[*resource][]*compute{}
	for _, c := range z.computes {
		anchor, ok := c.imdsAnchor()
		for _, l := range c.imds.layers {
			if ok && l.res != nil && l.res != c.res && l.res != anchor {
				overriders[l.res] = append(overriders[l.res], c)
			}
		}
		switch {
		case !ok:
			c.inst.IMDS = IMDSUnknown
		case anchor == c.res:
			kind := c.inst.Kind
			risk := "so a server-side request forgery can read its role credentials"
			if c.role == nil && c.inst.InstanceProfile == "" {
				risk = "so a server-side request forgery can read its metadata, and the credentials of any role it is given later"
			}
			fix := "set MetadataOptions.HttpTokens to \"required\" on the instance or in its launch template (CDK: requireImdsv2: true)"
			z.imdsFinding(c.res, kind, c.imds, c.imdsWhy(), risk, fix, nil)
		default:
			users[anchor] = append(users[anchor], c)
		}
	}
	for _, typ := range []string{typeLaunchTmpl, typeLaunchConfig} {
		for _, r := range z.byType[typ] {
			kind, props := "launch configuration", r.props
			fix := "set MetadataOptions.HttpTokens to \"required\" in the launch configuration, or move to a launch template with requireImdsv2: true"
			if typ == typeLaunchTmpl {
				kind = "launch template"
				props, _ = r.props["LaunchTemplateData"].(map[string]any)
				fix = "set MetadataOptions.HttpTokens to \"required\" in the launch template (CDK: requireImdsv2: true)"
			}
			v := judgeIMDS(imdsLayer{src: kind, st: r.st, props: props, res: r})
			var subjects []*resource
			var names []string
			for _, c := range users[r] {
				subjects = append(subjects, c.res)
				names = append(names, c.inst.Kind+" `"+display(c.res)+"`")
			}
			risk := "so a server-side request forgery can read the role credentials of every instance launched from it (" + strings.Join(names, ", ") + ")"
			if len(names) == 0 {
				var others []string
				for _, c := range overriders[r] {
					others = append(others, c.inst.Kind+" `"+display(c.res)+"`")
				}
				risk = "so a server-side request forgery can read the role credentials of any instance launched from it " +
					"(nothing in this assembly launches from it: an EKS node group or another stack may)"
				if len(others) > 0 {
					risk = "so a server-side request forgery can read the role credentials of any instance launched from it " +
						"without its own MetadataOptions (" + strings.Join(others, ", ") + " sets its own)"
				}
			}
			why := "MetadataOptions.HttpTokens is not set in it"
			if v.tokens.raw != nil {
				why = tokensWhy(v.tokens, "it")
			}
			z.imdsFinding(r, kind, v, why, risk, fix, subjects)
		}
	}
}

// imdsFinding records the IMDS finding of one resource, if any.
func (z *analyzer) imdsFinding(r *resource, kind string, v imdsVerdict, why, risk, fix string, subjects []*resource) {
	switch {
	case v.defaultV1:
		z.addFinding(RuleIMDSv1, r, subjects, "%s `%s` allows IMDSv1 (%s), %s: %s.", kind, display(r), why, risk, fix)
	case v.possibleV1:
		z.addFinding(RuleIMDSv1Possible, r, subjects, "%s `%s` %s %s: a deployment with other values allows IMDSv1, %s: %s.",
			kind, display(r), imdsDefaultText(v.state), v.depends(), risk,
			"hard-code MetadataOptions.HttpTokens \"required\" (or allow only \"required\" in the parameter's AllowedValues)")
	}
}

// imdsDefaultText says what the defaults give, for DEF-IMDS-2.
func imdsDefaultText(state string) string {
	switch state {
	case IMDSDisabled:
		return "has no metadata service with the template's defaults, but"
	case IMDSv2Required:
		return "requires IMDSv2 with the template's defaults, but"
	}
	return "gets its metadata options from values chosen at deploy time:"
}

// imdsWhy explains why the defaults of an instance's settings allow IMDSv1.
func (c *compute) imdsWhy() string {
	t := c.imds.tokens
	if t.raw == nil {
		if c.inst.LaunchTemplate == "" {
			return "MetadataOptions.HttpTokens is not set and there is no launch template"
		}
		return "MetadataOptions.HttpTokens is set neither on it nor in its launch template `" + c.inst.LaunchTemplate + "`"
	}
	where := "its " + t.layer.src
	if t.layer.res == c.res {
		where = "the " + t.layer.src + " itself"
	}
	return tokensWhy(t, where)
}

// tokensWhy explains how a set HttpTokens allows IMDSv1 with the defaults; where names the
// place it is set ("its instance", "it").
func tokensWhy(t imdsOption, where string) string {
	if s, ok := t.raw.(string); ok {
		return fmt.Sprintf("HttpTokens is %q in %s", s, where)
	}
	why := "HttpTokens in " + where + " is `" + Render(t.raw) + "`"
	if len(t.vals.via) > 0 && !slices.Contains(t.vals.dflt, unknownValue) {
		return why + fmt.Sprintf(", which is %s with the template's defaults (%s)", quoteValues(t.vals.dflt), strings.Join(t.vals.via, ", "))
	}
	return why + ", not the literal \"required\""
}

// depends says which deployable values allow IMDSv1, for DEF-IMDS-2.
func (v imdsVerdict) depends() string {
	var parts []string
	for _, o := range []struct {
		key string
		opt imdsOption
		bad func(string) bool
	}{
		{"HttpTokens", v.tokens, func(s string) bool { return !strings.EqualFold(s, tokensRequired) }},
		{"HttpEndpoint", v.endpoint, func(s string) bool { return !strings.EqualFold(s, endpointDisabled) }},
	} {
		if len(o.opt.vals.via) == 0 {
			continue
		}
		var bad []string
		for _, s := range o.opt.vals.all() {
			if o.bad(s) {
				bad = append(bad, s)
			}
		}
		if len(bad) == 0 {
			continue
		}
		where := "its " + o.opt.layer.src
		switch {
		case o.opt.layer.res != nil && len(v.layers) == 1:
			where = "it"
		case o.opt.layer.res != nil && o.opt.layer.res == v.layers[0].res:
			where = "the " + o.opt.layer.src + " itself"
		}
		parts = append(parts, fmt.Sprintf("%s in %s is `%s`, which can be %s (%s)",
			o.key, where, Render(o.opt.raw), quoteValues(bad), strings.Join(o.opt.vals.via, ", ")))
	}
	if len(parts) == 0 {
		return "its metadata options depend on values the review cannot evaluate"
	}
	return strings.Join(parts, ", and ")
}

// quoteValues renders values for a message: "optional", "optional" or "x", any value.
func quoteValues(vals []string) string {
	out := make([]string, 0, len(vals))
	for _, s := range vals {
		switch s {
		case anyValue:
			out = append(out, "any value")
		case unknownValue:
			out = append(out, "a value the review cannot evaluate")
		default:
			out = append(out, fmt.Sprintf("%q", s))
		}
	}
	return strings.Join(out, " or ")
}
