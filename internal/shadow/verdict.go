package shadow

import (
	"errors"
	"fmt"
)

// Sentinel errors (wrapped); test them with errors.Is.
var (
	// ErrUnsupported means a policy document uses something outside the
	// evaluator's vocabulary (an Allow, an action other than "*", NotAction,
	// an operator or a condition key it does not evaluate). The error names
	// it.
	ErrUnsupported = errors.New("outside the shadow evaluator's vocabulary")
	// ErrInvalidPolicy means a policy document is not a valid policy: bad
	// JSON, duplicate keys, a missing element, a malformed value.
	ErrInvalidPolicy = errors.New("invalid policy document")
	// ErrMalformedRecord means a CloudTrail record lacks, or has a malformed,
	// field the request context is built from.
	ErrMalformedRecord = errors.New("malformed CloudTrail record")
	// ErrNoPrincipal means a record names no IAM principal (userIdentity
	// type AWSService or AWSAccount, without an ARN): no identity policy or
	// SCP applies to the call. A caller replaying a whole trail skips such
	// records.
	ErrNoPrincipal = errors.New("the record names no IAM principal")
	// ErrInvalidRequest means a request context given to NewRequest, or an
	// Instance or Options value, is malformed.
	ErrInvalidRequest = errors.New("invalid request context")
)

// Decision is what a policy would do with one request. The zero Decision is
// not a decision: Report counts a verdict without one as an error, never as
// allowed.
type Decision uint8

// The decisions.
const (
	// Allowed means no statement matches, whatever the request's unknown
	// values are: enforcing the policy would not break the call.
	Allowed Decision = iota + 1
	// Denied means at least one statement matches, whatever the unknown
	// values are: enforcing the policy would break the call.
	Denied
	// Undetermined means no statement surely matches but at least one
	// might, depending on values the record does not tell (Verdict.Unknown
	// says which).
	Undetermined
)

// String returns "allowed", "would-deny" or "undetermined".
func (d Decision) String() string {
	switch d {
	case Allowed:
		return "allowed"
	case Denied:
		return "would-deny"
	case Undetermined:
		return "undetermined"
	default:
		return fmt.Sprintf("Decision(%d)", uint8(d))
	}
}

// MarshalText renders d as String does; it fails for an invalid Decision.
func (d Decision) MarshalText() ([]byte, error) {
	switch d {
	case Allowed, Denied, Undetermined:
		return []byte(d.String()), nil
	}
	return nil, fmt.Errorf("shadow: invalid decision %d", uint8(d))
}

// Verdict is a policy's answer for one request.
type Verdict struct {
	// Decision is Allowed, Denied or Undetermined.
	Decision Decision
	// Sids names, in document order, every statement that surely matches
	// (only when Denied).
	Sids []string
	// Unknown says, for every statement that might match, which fact is
	// missing. It is set when Decision is Undetermined, and also lists the
	// statements still open next to a Denied decision.
	Unknown []Unknown
}

// Unknown is a fact a verdict depends on that the request does not carry.
type Unknown struct {
	// Sid names the statement (empty in Request.Unknown).
	Sid string `json:"sid,omitempty"`
	// Key is the condition key whose value is unknown.
	Key string `json:"key"`
	// Reason says why it is unknown.
	Reason string `json:"reason"`
}

// String renders u for messages.
func (u Unknown) String() string {
	if u.Sid == "" {
		return u.Key + ": " + u.Reason
	}
	return u.Sid + ": " + u.Key + ": " + u.Reason
}
