package detect

import (
	"strings"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// Account attribution
//
// The inventory describes the detector's own account only, so a record made
// with the credentials of another account's instance cannot be judged: with
// an organisation trail (or a trail shared into a central log group) such
// records arrive by the thousand, and judging them against the wrong
// account's inventory turns every one into a false InstanceMissing. The
// Processor therefore checks whose credentials made the call before it
// looks anything up, and skips other accounts' records, unless it is the
// central detector of an organisation (Config.Org), which judges each
// against its own account's inventory (see "Organisation mode" in org.go).
//
// The credentials' account is the one of the userIdentity: its accountId,
// the account field of its arn ("arn:aws:sts::ACCOUNT:assumed-role/..."),
// and sessionContext.sessionIssuer.accountId. CloudTrail always fills all
// three for an AssumedRole identity and they always agree.
//
// recipientAccountId is the account the record was delivered to, which is
// not always the credentials' account: a call on a resource in another
// account (a KMS key, an S3 bucket, a role to assume) is recorded for both
// the caller's and the resource owner's account, and the resource owner's
// copy has the owner as recipientAccountId and the caller in userIdentity.
// Such a record made with the detector's own instance credentials is the
// detector's business (the credentials are its account's, whoever's
// resource they touched), so recipientAccountId never overrides the
// userIdentity; it only stands in when the userIdentity names no account.
//
// Missing or garbled fields are decided, never dropped silently:
//
//   - identity account fields that are not 12-digit account ids, or that
//     disagree with each other, make the record unattributable: it is
//     skipped and counted (SkippedUnattributable), because CloudTrail never
//     writes such a record and judging it against our inventory would
//     raise an alarm about an account we cannot even name;
//   - no identity account field at all: recipientAccountId decides (a
//     valid id: that account; a garbled one: unattributable);
//   - no account field anywhere: the record is judged as the detector's
//     own. CloudTrail does not write such records either, but the cost of
//     judging one is at worst a MEDIUM InstanceMissing that a human reads,
//     while skipping would let a record without accounts hide a real use.

// AccountVerdict says whose credentials made a call.
type AccountVerdict uint8

// Account verdicts.
const (
	// AccountOwn: the detector's own account (or no account recorded at
	// all, see "Account attribution").
	AccountOwn AccountVerdict = iota
	// AccountOther: another account's credentials; the record is skipped,
	// or in organisation mode judged against that account's inventory.
	AccountOther
	// AccountUnattributable: garbled or contradictory account fields; the
	// record is skipped.
	AccountUnattributable
)

// String names the verdict.
func (v AccountVerdict) String() string {
	switch v {
	case AccountOwn:
		return "own"
	case AccountOther:
		return "other"
	case AccountUnattributable:
		return "unattributable"
	default:
		return "AccountVerdict(?)"
	}
}

// CredentialAccount returns the account whose credentials made the call in
// rec (see "Account attribution" above): the userIdentity's account fields,
// which must agree, else recipientAccountId. valid is false when a field
// that decides is not a 12-digit account id or the identity fields
// disagree; account is then the offending value. account is "" (valid)
// when the record names no account at all.
func CredentialAccount(rec *cloudtrail.Record) (account string, valid bool) {
	ui := &rec.UserIdentity
	for _, a := range [...]string{ui.AccountID, arnAccount(ui.ARN), ui.SessionContext.SessionIssuer.AccountID} {
		switch {
		case a == "":
		case !ValidAccountID(a):
			return a, false
		case account == "":
			account = a
		case a != account:
			return account + "/" + a, false
		}
	}
	if account != "" {
		return account, true
	}
	if a := rec.RecipientAccountID; a != "" {
		return a, ValidAccountID(a)
	}
	return "", true
}

// CheckAccount decides whether rec was made with the credentials of the
// account self. An empty self (the detector does not know its account)
// accepts every record.
func CheckAccount(rec *cloudtrail.Record, self string) (account string, v AccountVerdict) {
	account, valid := CredentialAccount(rec)
	switch {
	case !valid:
		return account, AccountUnattributable
	case self == "" || account == "" || account == self:
		return account, AccountOwn
	default:
		return account, AccountOther
	}
}

// ValidAccountID reports whether s is an AWS account id: 12 decimal digits.
func ValidAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AccountFromARN returns the account field of an ARN
// ("arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE"), or "" if arn is not an
// ARN with a valid account id.
func AccountFromARN(arn string) string {
	if a := arnAccount(arn); ValidAccountID(a) {
		return a
	}
	return ""
}

// arnAccount returns the account field of an ARN as written, "" if arn is
// not an ARN.
func arnAccount(arn string) string {
	// arn:partition:service:region:account:resource, cut without
	// allocating (this runs for every record).
	rest, ok := strings.CutPrefix(arn, "arn:")
	for range 3 { // partition, service, region
		if !ok {
			return ""
		}
		_, rest, ok = strings.Cut(rest, ":")
	}
	account, _, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	return account
}
