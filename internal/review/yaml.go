package review

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeYAML parses a YAML template into the form decodeJSON gives: maps,
// lists, strings, json.Number, booleans and nil, with CloudFormation's
// short forms turned into their JSON intrinsic form (!Ref X is
// {"Ref": "X"}, !GetAtt A.B is {"Fn::GetAtt": ["A", "B"]}, !Sub s is
// {"Fn::Sub": s}, and any other !Name is {"Fn::Name": ...}).
//
// It reads YAML the way CloudFormation documents it: YAML 1.1 (so yes, no,
// on and off are booleans and 017 is octal; sexagesimal 1:20 stays a
// string, as YAML 1.2 has it), one document, and none of what
// CloudFormation refuses: aliases (which also rules out exponential alias
// expansion), hash merges (<<), and the binary, omap, pairs, set and
// timestamp tags (2010-09-09 is a string). Mapping keys are strings, and a
// key given twice is an error (a reviewer and CloudFormation could each
// read a different one).
func decodeYAML(b []byte) (v any, err error) {
	defer func() {
		if r := recover(); r != nil { // a parser bug must not take the review down
			v, err = nil, fmt.Errorf("invalid YAML: the parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty YAML document")
		}
		return nil, yamlError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, fmt.Errorf("invalid YAML at line %d: a second document; a template is one document", next.Line)
	case !errors.Is(err, io.EOF):
		return nil, yamlError(err)
	}
	return fromYAML(&doc)
}

// yamlError rewords a parser error ("yaml: line 3: ...").
func yamlError(err error) error {
	return errors.New("invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "))
}

// yamlErrorf reports a problem at node n.
func yamlErrorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("invalid YAML at line %d, column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))
}

// shortTag matches CloudFormation's short form tags (!Ref, !GetAtt, ...).
var shortTag = regexp.MustCompile(`^![A-Za-z][A-Za-z0-9]*$`)

// jsonNumber matches a number as JSON writes it.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// yaml11Bools are the plain scalars YAML 1.1 reads as booleans that YAML
// 1.2 (and the parser) read as strings.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// fromYAML converts one node.
func fromYAML(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return nil, yamlErrorf(n, "alias *%s: CloudFormation does not support YAML aliases", n.Value)
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromYAML(n.Content[0])
	}
	tag := n.ShortTag()
	if shortTag.MatchString(tag) {
		var arg any
		var err error
		if n.Kind == yaml.ScalarNode {
			arg = n.Value // the argument of a short form is a string: !GetAZs '' and !GetAZs alike
		} else if arg, err = fromUntagged(n); err != nil {
			return nil, err
		}
		return shortForm(tag[1:], arg), nil
	}
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!timestamp":
	default:
		return nil, yamlErrorf(n, "tag %s: CloudFormation does not support it", tag)
	}
	if tag == "!!timestamp" && n.Style&yaml.TaggedStyle != 0 {
		return nil, yamlErrorf(n, "tag !!timestamp: CloudFormation does not support it")
	}
	return fromUntagged(n)
}

// fromUntagged converts a node whose tag is a standard one (or ignored).
func fromUntagged(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		lines := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.AliasNode {
				return nil, yamlErrorf(k, "alias *%s: CloudFormation does not support YAML aliases", k.Value)
			}
			if k.Kind != yaml.ScalarNode {
				return nil, yamlErrorf(k, "a mapping key must be a string")
			}
			if k.ShortTag() == "!!merge" {
				return nil, yamlErrorf(k, "hash merge (<<): CloudFormation does not support it")
			}
			if t := k.ShortTag(); k.Style&yaml.TaggedStyle != 0 && t != "!!str" {
				return nil, yamlErrorf(k, "a mapping key must be a string, not %s", t)
			}
			if first, dup := lines[k.Value]; dup {
				return nil, yamlErrorf(k, "key %q appears twice (first at line %d)", k.Value, first)
			}
			lines[k.Value] = k.Line
			v, err := fromYAML(val)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, el := range n.Content {
			v, err := fromYAML(el)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, yamlErrorf(n, "unexpected YAML node")
}

// scalar converts a scalar by its resolved tag: numbers to json.Number as
// JSON would write them, YAML 1.1 booleans to bool, timestamps and
// everything else to strings.
func scalar(n *yaml.Node) (any, error) {
	plain := n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, yamlErrorf(n, "%q is not a boolean", n.Value)
		}
		return b, nil
	case "!!int", "!!float":
		if jsonNumber.MatchString(n.Value) {
			return json.Number(n.Value), nil
		}
		var x any
		if err := n.Decode(&x); err != nil {
			return nil, yamlErrorf(n, "%q is not a number", n.Value)
		}
		switch x := x.(type) {
		case int:
			return json.Number(strconv.Itoa(x)), nil
		case int64:
			return json.Number(strconv.FormatInt(x, 10)), nil
		case uint64:
			return json.Number(strconv.FormatUint(x, 10)), nil
		case float64:
			if s := strconv.FormatFloat(x, 'g', -1, 64); jsonNumber.MatchString(s) {
				return json.Number(s), nil
			}
		}
		return n.Value, nil // .inf, .nan: no JSON number
	case "!!str":
		if b, ok := yaml11Bools[n.Value]; ok && plain {
			return b, nil
		}
	}
	return n.Value, nil
}

// shortForm builds the JSON form of the short form !name arg.
func shortForm(name string, arg any) any {
	switch name {
	case "Ref", "Condition":
		return map[string]any{name: arg}
	case "GetAtt":
		// !GetAtt A.B.C is {"Fn::GetAtt": ["A", "B.C"]}: the logical id has no dot.
		if s, ok := arg.(string); ok {
			if id, attr, ok := strings.Cut(s, "."); ok {
				return map[string]any{"Fn::GetAtt": []any{id, attr}}
			}
		}
	}
	return map[string]any{"Fn::" + name: arg}
}
