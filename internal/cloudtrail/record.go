package cloudtrail

import (
	"bytes"
	"fmt"
	"time"
	"unsafe"
)

// Record holds the fields of one CloudTrail record that detection needs,
// plus the raw record for the alert.
//
// String fields hold "" when the key is absent or null. They are substrings
// of one private copy of the record made at decode time, so a record costs a
// single allocation for all of its strings; code that keeps one field for a
// long time (a cache key, for example) should strings.Clone it so the rest of
// the record can be collected.
type Record struct {
	// raw is the record JSON (JSON returns it), or, when escaped is set,
	// the record still escaped inside a CloudWatch Logs message, which
	// JSON unescapes on demand: only alerts need it.
	raw     []byte
	escaped bool

	EventVersion         string // eventVersion, e.g. "1.09"
	EventID              string // eventID
	EventTime            string // eventTime, RFC 3339 in UTC
	EventSource          string // eventSource, e.g. "s3.amazonaws.com"
	EventName            string // eventName, e.g. "ListBuckets"
	EventType            string // eventType, e.g. "AwsApiCall"
	AWSRegion            string // awsRegion
	SourceIPAddress      string // sourceIPAddress: an IP address or an AWS service name
	UserAgent            string // userAgent
	VPCEndpointID        string // vpcEndpointId, set when the call came through a VPC endpoint
	VPCEndpointAccountID string // vpcEndpointAccountId, the endpoint owner (newer records only)
	RecipientAccountID   string // recipientAccountId
	ErrorCode            string // errorCode, set when the call failed

	UserIdentity UserIdentity // userIdentity

	// Source says which decoder produced the record.
	Source Source
	// DeliveryID identifies the item that carried the record: the
	// CloudWatch Logs log event id or the EventBridge event id.
	DeliveryID string
	// SequenceNumber is the Kinesis sequence number of the record that
	// carried this one (Kinesis input only), for partial batch failure
	// reports.
	SequenceNumber string
}

// UserIdentity is the CloudTrail userIdentity element.
type UserIdentity struct {
	Type           string         // type, e.g. "AssumedRole", "IAMUser", "AWSService"
	PrincipalID    string         // principalId; "AROA...:i-0123456789abcdef0" for an instance profile
	ARN            string         // arn
	AccountID      string         // accountId
	AccessKeyID    string         // accessKeyId
	UserName       string         // userName
	InvokedBy      string         // invokedBy, set when an AWS service made the call
	SessionContext SessionContext // sessionContext
}

// SessionContext is the CloudTrail userIdentity.sessionContext element.
type SessionContext struct {
	SessionIssuer SessionIssuer // sessionIssuer
	// EC2RoleDelivery is "1.0" (IMDSv1) or "2.0" (IMDSv2) when the session
	// credentials were delivered to an EC2 instance by the instance
	// metadata service.
	EC2RoleDelivery string
	SourceIdentity  string // sourceIdentity
}

// SessionIssuer is the CloudTrail userIdentity.sessionContext.sessionIssuer
// element: for a role session, the IAM role.
type SessionIssuer struct {
	Type        string // type, e.g. "Role"
	PrincipalID string // principalId, the role id
	ARN         string // arn, the IAM role ARN
	AccountID   string // accountId
	UserName    string // userName, the role name
}

// JSON returns the CloudTrail record JSON. Do not modify it: for EventBridge
// input it aliases the caller's buffer (which must then not be modified while
// the record is in use either), and for a record the decoder had to unescape
// it is the buffer the string fields are read from. For CloudWatch Logs and
// Kinesis input it is usually a new copy on each call: the record is kept
// escaped, as it arrived, until an alert needs it.
func (r *Record) JSON() []byte {
	if !r.escaped {
		return r.raw
	}
	out, err := appendUnescape(make([]byte, 0, len(r.raw)), r.raw)
	if err != nil { // never: the decoder validated the string
		return nil
	}
	return out
}

// SetJSON sets the record JSON that JSON returns, for records built by hand
// (tests, replays); it does not parse it.
func (r *Record) SetJSON(raw []byte) {
	r.raw, r.escaped = raw, false
}

// Time parses EventTime.
func (r *Record) Time() (time.Time, error) {
	t, err := time.Parse(time.RFC3339, r.EventTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("cloudtrail: eventTime: %w", err)
	}
	return t, nil
}

var (
	patInstance     = []byte(":i-")
	patRoleDelivery = []byte("RoleDelivery") // of "ec2RoleDelivery"; 'R' is rare, so this is the faster search
	patUnicode      = []byte(`\u`)
)

// MayBeInstanceSession is the hot-path pre-filter: it reports whether the
// CloudTrail record in raw could have been made with EC2 instance-profile
// credentials. raw may be plain record JSON or the record still escaped
// inside a JSON string (a CloudWatch Logs message); the test works on both.
//
// It has no false negatives: it returns true for every record whose
// principalId contains ":i-" or which has an ec2RoleDelivery key, and for any
// record containing a \u escape (which could spell either). It has false
// positives (for example ":i-" inside request parameters), which decoding and
// detection then reject.
func MayBeInstanceSession(raw []byte) bool {
	return mayBeInstanceSession(raw) || bytes.Contains(raw, patUnicode)
}

// mayBeInstanceSession is MayBeInstanceSession for input already known to
// contain no \u escape (the scanner reports those while finding the end of
// a string, which is cheaper than searching for backslashes again in
// escaped JSON).
func mayBeInstanceSession(raw []byte) bool {
	return bytes.Contains(raw, patInstance) || bytes.Contains(raw, patRoleDelivery)
}

// ParseRecord decodes the CloudTrail record JSON in raw. It does not apply
// the pre-filter. The returned Record's JSON aliases raw; its string fields
// are copies.
//
// Keys are matched exactly (CloudTrail's spelling; encoding/json would also
// accept other letter cases); when a key repeats, the last one wins. Errors
// wrap ErrSyntax for malformed JSON and ErrType for a known field of the
// wrong type.
func ParseRecord(raw []byte) (Record, error) {
	var r Record
	if err := parseRecord(&r, raw, false); err != nil {
		return Record{}, err
	}
	return r, nil
}

// parseRecord fills r from raw; on error r is partially filled. owned says
// that raw is a private buffer that is never written again, so the string
// fields may alias it instead of a copy.
func parseRecord(r *Record, raw []byte, owned bool) error {
	p := recordParser{s: scanner{b: raw}}
	if owned && len(raw) > 0 {
		p.src = unsafe.String(&raw[0], len(raw))
	} else {
		p.src = string(raw)
	}
	r.raw, r.escaped = raw, false
	if err := p.record(r); err != nil {
		return fmt.Errorf("cloudtrail: record: %w", err)
	}
	return nil
}

// recordParser extracts Record fields. src is a string copy of s.b so that
// unescaped string values are free substrings.
type recordParser struct {
	s   scanner
	src string
}

// str reads a string-or-null value into dst.
func (p *recordParser) str(field string, dst *string) error {
	start, end, esc, null, err := p.s.stringValue(field)
	switch {
	case err != nil:
		return err
	case null:
		*dst = ""
	case !esc:
		*dst = p.src[start:end]
	default:
		u, err := appendUnescape(make([]byte, 0, end-start), p.s.b[start:end])
		if err != nil {
			return p.s.fail(err.Error())
		}
		*dst = string(u)
	}
	return nil
}

// obj parses an object-or-null value; null leaves the zero value (the
// caller resets the destination first, so a repeated key replaces the
// earlier object as encoding/json does).
func (p *recordParser) obj(field string, member func(key []byte) error) error {
	switch c := p.s.peek(); c {
	case '{':
		return p.s.object(member)
	case 'n':
		return p.s.literal("null")
	default:
		if err := p.s.skip(); err != nil {
			return err
		}
		return &typeError{field: field, want: "object", got: kindName(c)}
	}
}

func (p *recordParser) record(r *Record) error {
	if c := p.s.peek(); c != '{' {
		if c == 0 || p.s.skip() != nil {
			return p.s.fail("expected JSON object")
		}
		return &typeError{field: "record", want: "object", got: kindName(c)}
	}
	err := p.s.object(func(key []byte) error {
		if dst, field := r.stringField(key); dst != nil {
			return p.str(field, dst)
		}
		if string(key) != "userIdentity" {
			return p.s.skip()
		}
		u := &r.UserIdentity
		*u = UserIdentity{}
		return p.obj("userIdentity", func(key []byte) error { return p.userIdentity(u, key) })
	})
	if err != nil {
		return err
	}
	return p.s.end()
}

func (p *recordParser) userIdentity(u *UserIdentity, key []byte) error {
	if dst, field := u.stringField(key); dst != nil {
		return p.str(field, dst)
	}
	if string(key) != "sessionContext" {
		return p.s.skip()
	}
	sc := &u.SessionContext
	*sc = SessionContext{}
	return p.obj("userIdentity.sessionContext", func(key []byte) error {
		if dst, field := sc.stringField(key); dst != nil {
			return p.str(field, dst)
		}
		if string(key) != "sessionIssuer" {
			return p.s.skip()
		}
		si := &sc.SessionIssuer
		*si = SessionIssuer{}
		return p.obj("userIdentity.sessionContext.sessionIssuer", func(key []byte) error {
			if dst, field := si.stringField(key); dst != nil {
				return p.str(field, dst)
			}
			return p.s.skip()
		})
	})
}

// eachString calls fn with every string field read from the record JSON.
func (r *Record) eachString(fn func(*string)) {
	for _, s := range [...]*string{&r.EventVersion, &r.EventID, &r.EventTime, &r.EventSource, &r.EventName,
		&r.EventType, &r.AWSRegion, &r.SourceIPAddress, &r.UserAgent, &r.VPCEndpointID,
		&r.VPCEndpointAccountID, &r.RecipientAccountID, &r.ErrorCode} {
		fn(s)
	}
	u := &r.UserIdentity
	for _, s := range [...]*string{&u.Type, &u.PrincipalID, &u.ARN, &u.AccountID, &u.AccessKeyID,
		&u.UserName, &u.InvokedBy, &u.SessionContext.EC2RoleDelivery, &u.SessionContext.SourceIdentity} {
		fn(s)
	}
	si := &u.SessionContext.SessionIssuer
	for _, s := range [...]*string{&si.Type, &si.PrincipalID, &si.ARN, &si.AccountID, &si.UserName} {
		fn(s)
	}
}

// The string fields of each element, by key: where the value goes and the
// field's path for type errors. Both record parsers (parseRecord and the
// escaped one) use these, so they cannot disagree on which key fills what.

func (r *Record) stringField(key []byte) (*string, string) {
	switch string(key) {
	case "eventVersion":
		return &r.EventVersion, "eventVersion"
	case "eventID":
		return &r.EventID, "eventID"
	case "eventTime":
		return &r.EventTime, "eventTime"
	case "eventSource":
		return &r.EventSource, "eventSource"
	case "eventName":
		return &r.EventName, "eventName"
	case "eventType":
		return &r.EventType, "eventType"
	case "awsRegion":
		return &r.AWSRegion, "awsRegion"
	case "sourceIPAddress":
		return &r.SourceIPAddress, "sourceIPAddress"
	case "userAgent":
		return &r.UserAgent, "userAgent"
	case "vpcEndpointId":
		return &r.VPCEndpointID, "vpcEndpointId"
	case "vpcEndpointAccountId":
		return &r.VPCEndpointAccountID, "vpcEndpointAccountId"
	case "recipientAccountId":
		return &r.RecipientAccountID, "recipientAccountId"
	case "errorCode":
		return &r.ErrorCode, "errorCode"
	}
	return nil, ""
}

func (u *UserIdentity) stringField(key []byte) (*string, string) {
	switch string(key) {
	case "type":
		return &u.Type, "userIdentity.type"
	case "principalId":
		return &u.PrincipalID, "userIdentity.principalId"
	case "arn":
		return &u.ARN, "userIdentity.arn"
	case "accountId":
		return &u.AccountID, "userIdentity.accountId"
	case "accessKeyId":
		return &u.AccessKeyID, "userIdentity.accessKeyId"
	case "userName":
		return &u.UserName, "userIdentity.userName"
	case "invokedBy":
		return &u.InvokedBy, "userIdentity.invokedBy"
	}
	return nil, ""
}

func (sc *SessionContext) stringField(key []byte) (*string, string) {
	switch string(key) {
	case "ec2RoleDelivery":
		return &sc.EC2RoleDelivery, "userIdentity.sessionContext.ec2RoleDelivery"
	case "sourceIdentity":
		return &sc.SourceIdentity, "userIdentity.sessionContext.sourceIdentity"
	}
	return nil, ""
}

func (si *SessionIssuer) stringField(key []byte) (*string, string) {
	const f = "userIdentity.sessionContext.sessionIssuer."
	switch string(key) {
	case "type":
		return &si.Type, f + "type"
	case "principalId":
		return &si.PrincipalID, f + "principalId"
	case "arn":
		return &si.ARN, f + "arn"
	case "accountId":
		return &si.AccountID, f + "accountId"
	case "userName":
		return &si.UserName, f + "userName"
	}
	return nil, ""
}
