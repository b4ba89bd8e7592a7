package lockpolicy

import (
	"bytes"
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// Size budgets of lock-shaped documents. This file is the one place that
// says how big a document may be and how its size is counted.
const (
	// MaxRolePolicySize is the number of characters IAM allows, summed over
	// all inline policies of one role (whitespace not counted, see SizeOf).
	MaxRolePolicySize = 10240
	// MaxSessionPolicySize is the plaintext limit STS puts on an inline
	// session policy (AssumeRole's Policy parameter), in characters.
	MaxSessionPolicySize = 2048
)

// SizeOf returns the number of characters IAM counts for a policy document
// against the per-role inline policy quota: the document without
// whitespace between JSON tokens. For invalid JSON it counts every
// non-whitespace character, which can only overestimate. Document.Size is
// SizeOf of the document's JSON.
func SizeOf(doc []byte) int {
	var buf bytes.Buffer
	if err := json.Compact(&buf, doc); err == nil {
		return utf8.RuneCount(buf.Bytes())
	}
	n := 0
	for _, r := range string(doc) {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}
