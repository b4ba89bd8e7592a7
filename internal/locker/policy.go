package locker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// DecodePolicyDocument turns the PolicyDocument of an IAM GetRolePolicy
// answer, which IAM URL-encodes (RFC 3986), back into JSON. A document that
// already is JSON (starts with "{") is returned unchanged.
func DecodePolicyDocument(doc string) ([]byte, error) {
	if t := strings.TrimSpace(doc); strings.HasPrefix(t, "{") {
		return []byte(t), nil
	}
	// IAM percent-encodes every reserved character (a space is %20, a plus
	// %2B). Decode like botocore and the AWS CLI (Python's unquote): a
	// literal "+" stays a plus.
	s, err := url.PathUnescape(doc)
	if err != nil {
		return nil, fmt.Errorf("locker: URL-decode policy document: %w", err)
	}
	if !json.Valid([]byte(s)) {
		return nil, errors.New("locker: decoded policy document is not JSON")
	}
	return []byte(s), nil
}

// CanonicalPolicy returns a normal form of an IAM policy document, so that
// documents that mean the same to IAM compare equal: whitespace and key
// order do not matter, a single statement object equals a one-element list,
// an Action, Resource or condition value given as a string equals a
// one-element list, condition values are sorted and deduplicated (IAM
// treats them as a set) and so are statements.
func CanonicalPolicy(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("locker: parse policy document: %w", err)
	}
	if dec.More() {
		return "", errors.New("locker: parse policy document: trailing data")
	}
	var stmts []any
	switch s := v["Statement"].(type) {
	case []any:
		stmts = s
	case map[string]any:
		stmts = []any{s}
	case nil:
	default:
		return "", fmt.Errorf("locker: parse policy document: Statement is a %T", s)
	}
	canon := make([]string, 0, len(stmts))
	for _, st := range stmts {
		m, ok := st.(map[string]any)
		if !ok {
			return "", fmt.Errorf("locker: parse policy document: statement is a %T", st)
		}
		for _, k := range []string{"Action", "NotAction", "Resource", "NotResource"} {
			if x, ok := m[k]; ok {
				m[k] = stringSet(x)
			}
		}
		if cond, ok := m["Condition"].(map[string]any); ok {
			for _, kv := range cond {
				if keys, ok := kv.(map[string]any); ok {
					for k, x := range keys {
						keys[k] = stringSet(x)
					}
				}
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return "", fmt.Errorf("locker: encode statement: %w", err)
		}
		canon = append(canon, string(b))
	}
	slices.Sort(canon)
	canon = slices.Compact(canon)
	version, err := json.Marshal(v["Version"])
	if err != nil {
		return "", fmt.Errorf("locker: encode version: %w", err)
	}
	return fmt.Sprintf(`{"Version":%s,"Statement":[%s]}`, version, strings.Join(canon, ",")), nil
}

// stringSet turns a JSON string, number, bool or list of them into a
// sorted, deduplicated []string; anything else is returned unchanged.
func stringSet(x any) any {
	var items []any
	switch t := x.(type) {
	case []any:
		items = t
	default:
		items = []any{t}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		switch s := it.(type) {
		case string:
			out = append(out, s)
		case json.Number:
			out = append(out, s.String())
		case bool:
			out = append(out, fmt.Sprint(s))
		default:
			return x
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// samePolicy reports whether two documents mean the same; a document that
// cannot be parsed is never the same as anything.
func samePolicy(a, b []byte) bool {
	if a == nil || b == nil {
		return false
	}
	ca, err := CanonicalPolicy(a)
	if err != nil {
		return false
	}
	cb, err := CanonicalPolicy(b)
	return err == nil && ca == cb
}

// LockedVPCs returns the VPC ids a lock document lets endpoint calls come
// from: the aws:SourceVpc values of its DenyEndpointCallsFromOtherVpcs
// statement, sorted. It returns nil if the document is not a lock, cannot
// be parsed, or lists no valid VPC id.
func LockedVPCs(doc []byte) []string {
	var d struct {
		Statement []struct {
			Sid       string
			Condition map[string]map[string]json.RawMessage
		}
	}
	if json.Unmarshal(doc, &d) != nil {
		return nil
	}
	var vpcs []string
	for _, st := range d.Statement {
		if st.Sid != lockpolicy.SidDenyEndpointCallsFromOtherVpcs {
			continue
		}
		raw, ok := st.Condition["StringNotEquals"]["aws:SourceVpc"]
		if !ok {
			continue
		}
		var one string
		var many []string
		if json.Unmarshal(raw, &one) == nil {
			many = []string{one}
		} else if json.Unmarshal(raw, &many) != nil {
			continue
		}
		for _, v := range many {
			if lockpolicy.IsVPCID(v) {
				vpcs = append(vpcs, v)
			}
		}
	}
	slices.Sort(vpcs)
	return slices.Compact(vpcs)
}

// looksLikeLock reports whether a document carries lock statements (any Sid
// that lockpolicy uses). The locker uses it to warn about a second, stale
// lock under another policy name.
func looksLikeLock(doc []byte) bool {
	var d struct {
		Statement []struct{ Sid string }
	}
	if json.Unmarshal(doc, &d) != nil {
		return false
	}
	for _, st := range d.Statement {
		switch st.Sid {
		case lockpolicy.SidDenyPublicCallsFromOtherAddresses, lockpolicy.SidDenyPublicCallsFromAnyAddress,
			lockpolicy.SidDenyEndpointCallsFromOtherVpcs, lockpolicy.SidDenyEndpointCallsFromAnyVpc:
			return true
		}
	}
	return false
}
