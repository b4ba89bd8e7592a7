package detect

import (
	"strings"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// IsInstanceSession reports whether rec was made with the credentials of an
// EC2 instance profile, and if so returns the instance id.
//
// Such a session has userIdentity.type "AssumedRole" and a principalId of
// the form "<role id>:i-<8 or 17 hex digits>"; since late 2021 CloudTrail
// also marks it with sessionContext.ec2RoleDelivery ("1.0" for IMDSv1,
// "2.0" for IMDSv2). A record with ec2RoleDelivery whose principalId does
// not end in an instance id is still an instance session: the id is then
// taken from the session name in the assumed-role ARN, and is "" if that
// fails too (the processor reports such records as InstanceMissing rather
// than drop them).
//
// A role session that someone named like an instance id with
// sts:AssumeRole also matches; it is then checked against that instance's
// addresses, which is the right outcome for a session impersonating an
// instance.
func IsInstanceSession(rec *cloudtrail.Record) (instanceID string, ok bool) {
	ui := &rec.UserIdentity
	if ui.Type != "AssumedRole" {
		return "", false
	}
	if i := strings.LastIndexByte(ui.PrincipalID, ':'); i >= 0 && ValidInstanceID(ui.PrincipalID[i+1:]) {
		return ui.PrincipalID[i+1:], true
	}
	if ui.SessionContext.EC2RoleDelivery == "" {
		return "", false
	}
	if i := strings.LastIndexByte(ui.ARN, '/'); i >= 0 && ValidInstanceID(ui.ARN[i+1:]) {
		return ui.ARN[i+1:], true
	}
	return "", true
}

// ValidInstanceID reports whether id is an EC2 instance id: "i-" followed by
// 8 or 17 lowercase hexadecimal digits.
func ValidInstanceID(id string) bool {
	if (len(id) != 10 && len(id) != 19) || !strings.HasPrefix(id, "i-") {
		return false
	}
	for i := 2; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// IsAWSServiceCall reports whether an AWS service made the call on the
// principal's behalf: userIdentity.invokedBy is set, or sourceIPAddress is
// a service name ("s3.amazonaws.com", "AWS Internal") rather than an
// address. Such calls carry no client address to check, so the detector
// skips them. This is a known blind spot shared with every source-address
// check: a service that forwards a caller's credentials (for example an
// attacker's CloudFormation stack) hides the caller's address.
func IsAWSServiceCall(rec *cloudtrail.Record) bool {
	if rec.UserIdentity.InvokedBy != "" {
		return true
	}
	src := rec.SourceIPAddress
	return src == "AWS Internal" ||
		strings.HasSuffix(src, ".amazonaws.com") ||
		strings.HasSuffix(src, ".amazonaws.com.cn") ||
		strings.HasSuffix(src, ".amazon.com")
}

// Self identifies the detector's own identities, whose calls are skipped so
// that the detector never reacts to its own EC2 and SNS calls. Skipping is
// a blind spot by construction: keep the detector's role narrow and do not
// list roles that other workloads use.
type Self struct {
	// RoleARNs are the detector's role ARNs. An IAM role ARN
	// (arn:aws:iam::ACCOUNT:role/NAME) matches every session of the role via
	// sessionContext.sessionIssuer.arn; an assumed-role ARN
	// (arn:aws:sts::ACCOUNT:assumed-role/NAME[/SESSION]) matches
	// userIdentity.arn exactly or as a prefix ending at a '/'.
	RoleARNs []string
	// PrincipalIDs are principal ids of the detector's sessions. A role id
	// ("AROA...") matches every session of the role; "AROA...:SESSION"
	// matches that session only.
	PrincipalIDs []string
}

// Matches reports whether the detector itself made the call in rec.
func (s *Self) Matches(rec *cloudtrail.Record) bool {
	ui := &rec.UserIdentity
	for _, a := range s.RoleARNs {
		if a != "" && (a == ui.SessionContext.SessionIssuer.ARN || a == ui.ARN ||
			strings.HasPrefix(ui.ARN, a) && strings.HasPrefix(ui.ARN[len(a):], "/")) {
			return true
		}
	}
	for _, p := range s.PrincipalIDs {
		if p != "" && (p == ui.PrincipalID ||
			strings.HasPrefix(ui.PrincipalID, p) && strings.HasPrefix(ui.PrincipalID[len(p):], ":")) {
			return true
		}
	}
	return false
}
