package review

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// ExemptKey is the resource Metadata key that exempts an EC2 role from
// needing a lock; its value is the reason, shown in the report.
const ExemptKey = contract.ExemptMetadataKey

// validator checks the shape of the template parts the review reads, so
// that analysis can rely on it and malformed templates fail with an error
// that names the file and the resource.
type validator struct {
	file string
	errs []error
}

// err returns every problem found, or nil.
func (v *validator) err() error { return errors.Join(v.errs...) }

// section returns a top-level template section that must be an object.
func (v *validator) section(tmpl map[string]any, name string) map[string]any {
	raw, ok := tmpl[name]
	if !ok {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		v.errs = append(v.errs, fmt.Errorf("review: template %s: %s: want an object, got %s", v.file, name, kindOf(raw)))
	}
	return m
}

// resource validates one Resources entry and returns it, or nil when it is
// too broken to use.
func (v *validator) resource(st *Stack, id string, raw any) *resource {
	c := checker{v: v, where: "resource " + id}
	m, ok := raw.(map[string]any)
	if !ok {
		c.errf("", "want an object, got %s", kindOf(raw))
		return nil
	}
	typ, ok := m["Type"].(string)
	if !ok {
		if _, present := m["Type"]; !present {
			c.errf("", "no Type")
		} else {
			c.errf("Type", "want a string, got %s", kindOf(m["Type"]))
		}
		return nil
	}
	c.where = fmt.Sprintf("resource %s (%s)", id, typ)
	r := &resource{st: st, id: id, typ: typ}
	r.props = c.object(m, "Properties", "Properties", false)
	r.meta = c.object(m, "Metadata", "Metadata", false)
	r.cond, _ = m["Condition"].(string)
	if reason, ok := r.meta[ExemptKey]; ok {
		if s, ok := reason.(string); !ok || strings.TrimSpace(s) == "" {
			c.errf("Metadata."+ExemptKey, "want a non-empty reason string, got %s", kindOf(reason))
		}
	}
	p := r.props
	switch typ {
	case "AWS::IAM::Role":
		c.policyDocValue(p, "AssumeRolePolicyDocument", "Properties.AssumeRolePolicyDocument")
		c.list(p, "ManagedPolicyArns", "Properties.ManagedPolicyArns")
		for i, pol := range c.objects(p, "Policies", "Properties.Policies") {
			path := fmt.Sprintf("Properties.Policies[%d]", i)
			c.policyDocValue(pol, "PolicyDocument", path+".PolicyDocument")
		}
	case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", typeRolePolicy:
		c.policyDocValue(p, "PolicyDocument", "Properties.PolicyDocument")
		c.list(p, "Roles", "Properties.Roles")
	case "AWS::IAM::InstanceProfile":
		if _, ok := p["Roles"]; !ok {
			c.errf("Properties.Roles", "missing; an instance profile needs its role")
		}
		c.list(p, "Roles", "Properties.Roles")
	case "AWS::EC2::Instance":
		c.list(p, "SecurityGroupIds", "Properties.SecurityGroupIds")
		c.list(p, "SecurityGroups", "Properties.SecurityGroups")
		for i, ni := range c.objects(p, "NetworkInterfaces", "Properties.NetworkInterfaces") {
			c.list(ni, "GroupSet", fmt.Sprintf("Properties.NetworkInterfaces[%d].GroupSet", i))
		}
		c.object(p, "LaunchTemplate", "Properties.LaunchTemplate", false)
		c.object(p, "MetadataOptions", "Properties.MetadataOptions", false)
	case "AWS::EC2::LaunchTemplate":
		d := c.object(p, "LaunchTemplateData", "Properties.LaunchTemplateData", true)
		if d != nil {
			c.object(d, "IamInstanceProfile", "Properties.LaunchTemplateData.IamInstanceProfile", false)
			c.list(d, "SecurityGroupIds", "Properties.LaunchTemplateData.SecurityGroupIds")
			c.list(d, "SecurityGroups", "Properties.LaunchTemplateData.SecurityGroups")
			for i, ni := range c.objects(d, "NetworkInterfaces", "Properties.LaunchTemplateData.NetworkInterfaces") {
				c.list(ni, "Groups", fmt.Sprintf("Properties.LaunchTemplateData.NetworkInterfaces[%d].Groups", i))
			}
			c.object(d, "MetadataOptions", "Properties.LaunchTemplateData.MetadataOptions", false)
		}
	case "AWS::AutoScaling::LaunchConfiguration":
		c.list(p, "SecurityGroups", "Properties.SecurityGroups")
		c.object(p, "MetadataOptions", "Properties.MetadataOptions", false)
	case "AWS::AutoScaling::AutoScalingGroup":
		c.object(p, "LaunchTemplate", "Properties.LaunchTemplate", false)
		if mip := c.object(p, "MixedInstancesPolicy", "Properties.MixedInstancesPolicy", false); mip != nil {
			if lt := c.object(mip, "LaunchTemplate", "Properties.MixedInstancesPolicy.LaunchTemplate", false); lt != nil {
				c.object(lt, "LaunchTemplateSpecification", "Properties.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification", false)
			}
		}
	case "AWS::EC2::SecurityGroup":
		for i, rule := range c.objects(p, "SecurityGroupIngress", "Properties.SecurityGroupIngress") {
			c.ingress(rule, fmt.Sprintf("Properties.SecurityGroupIngress[%d]", i))
		}
	case "AWS::EC2::SecurityGroupIngress":
		c.ingress(p, "Properties")
	case typeNestedStack:
		c.object(p, "Parameters", "Properties.Parameters", false)
	}
	return r
}

// checker reports problems of one resource.
type checker struct {
	v     *validator
	where string
}

// errf records a problem at path (a dotted property path, or "").
func (c checker) errf(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.v.errs = append(c.v.errs, fmt.Errorf("review: template %s: %s: %s", c.v.file, c.where, msg))
}

// object returns m[key] when it is an object. A missing value is an error
// only when required; an intrinsic function is accepted but yields nil.
func (c checker) object(m map[string]any, key, path string, required bool) map[string]any {
	raw, ok := m[key]
	if !ok {
		if required {
			c.errf(path, "missing")
		}
		return nil
	}
	o, ok := raw.(map[string]any)
	if !ok {
		c.errf(path, "want an object, got %s", kindOf(raw))
		return nil
	}
	if _, _, ok := intrinsic(o); ok {
		return nil
	}
	return o
}

// list checks that m[key], if present, is a list or an intrinsic function
// (which may produce one), and returns the list.
func (c checker) list(m map[string]any, key, path string) []any {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	switch x := raw.(type) {
	case []any:
		return x
	case map[string]any:
		if _, _, ok := intrinsic(x); ok {
			return nil
		}
	}
	c.errf(path, "want a list, got %s", kindOf(raw))
	return nil
}

// objects returns the object elements of the list m[key], skipping
// intrinsic functions (Fn::If) and reporting anything else.
func (c checker) objects(m map[string]any, key, path string) []map[string]any {
	var out []map[string]any
	for i, el := range c.list(m, key, path) {
		o, ok := el.(map[string]any)
		if !ok {
			c.errf(fmt.Sprintf("%s[%d]", path, i), "want an object, got %s", kindOf(el))
			continue
		}
		if _, _, ok := intrinsic(o); ok {
			continue
		}
		out = append(out, o)
	}
	return out
}

// ingress checks one ingress rule.
func (c checker) ingress(rule map[string]any, path string) {
	if _, ok := rule["IpProtocol"]; !ok {
		c.errf(path+".IpProtocol", "missing")
	}
	for _, k := range []string{"FromPort", "ToPort"} {
		if raw, ok := rule[k]; ok && !scalarOrIntrinsic(raw) {
			c.errf(path+"."+k, "want a number, got %s", kindOf(raw))
		}
	}
}

// policyDocument checks an IAM policy document's statements.
func (c checker) policyDocument(doc map[string]any, path string) {
	raw, ok := doc["Statement"]
	if !ok {
		c.errf(path+".Statement", "missing")
		return
	}
	var stmts []any
	switch x := raw.(type) {
	case []any:
		stmts = x
	case map[string]any:
		stmts = []any{x}
	default:
		c.errf(path+".Statement", "want a list or an object, got %s", kindOf(raw))
		return
	}
	for i, s := range stmts {
		sp := fmt.Sprintf("%s.Statement[%d]", path, i)
		m, ok := s.(map[string]any)
		if !ok {
			c.errf(sp, "want an object, got %s", kindOf(s))
			continue
		}
		if _, _, ok := intrinsic(m); ok {
			continue
		}
		if e, ok := m["Effect"]; !ok {
			c.errf(sp+".Effect", "missing")
		} else if !scalarOrIntrinsic(e) {
			c.errf(sp+".Effect", "want a string, got %s", kindOf(e))
		}
		for _, k := range []string{"Action", "NotAction", "Resource", "NotResource"} {
			if a, ok := m[k]; ok {
				if _, isList := a.([]any); !isList && !scalarOrIntrinsic(a) {
					c.errf(sp+"."+k, "want a string or a list, got %s", kindOf(a))
				}
			}
		}
		if p, ok := m["Principal"]; ok {
			if _, isObj := p.(map[string]any); !isObj && p != "*" {
				c.errf(sp+".Principal", "want an object or \"*\", got %s", kindOf(p))
			}
		}
		if cond, ok := m["Condition"]; ok {
			cm, ok := cond.(map[string]any)
			if !ok {
				c.errf(sp+".Condition", "want an object, got %s", kindOf(cond))
				continue
			}
			for _, op := range sortedKeys(cm) {
				if _, ok := cm[op].(map[string]any); !ok {
					c.errf(sp+".Condition."+op, "want an object of condition keys, got %s", kindOf(cm[op]))
				}
			}
		}
	}
}

// scalarOrIntrinsic reports whether v is a string, number, boolean or an
// intrinsic function.
func scalarOrIntrinsic(v any) bool {
	switch x := v.(type) {
	case string, json.Number, bool, float64:
		return true
	case map[string]any:
		_, _, ok := intrinsic(x)
		return ok
	}
	return false
}

// kindOf describes a JSON value for an error message.
func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return "string " + strconv.Quote(x)
	case json.Number:
		return "number " + x.String()
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
