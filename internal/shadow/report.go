package shadow

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// Report defaults and bounds.
const (
	// DefaultMaxExamples is ReportOptions.MaxExamples' default.
	DefaultMaxExamples = 3
	// DefaultMaxRoles is ReportOptions.MaxRoles' default.
	DefaultMaxRoles = 1000
	// DefaultMaxErrors is ReportOptions.MaxErrors' default.
	DefaultMaxErrors = 10
	// MaxStatementsPerRole bounds the distinct statement names counted per
	// role; verdicts of one compiled Policy never come near it. Names
	// beyond it are counted under OtherStatements.
	MaxStatementsPerRole = 64
	// OtherStatements is the statement name under which names beyond
	// MaxStatementsPerRole are counted.
	OtherStatements = "(other statements)"
	// MaxFieldBytes bounds every text field a Report keeps from a record
	// (an example's fields, an error message's parts); longer text is cut
	// at a character boundary and ends in "…".
	MaxFieldBytes = 256
	// maxReasonBytes bounds an example's reason.
	maxReasonBytes = 512
)

// ReportOptions bound a Report's memory.
type ReportOptions struct {
	// MaxExamples is how many example calls are kept per statement per
	// role, and how many undetermined calls per role (default
	// DefaultMaxExamples; negative: none). The earliest are kept (by
	// eventTime, then the other fields), so the report does not depend on
	// the order in which records were added.
	MaxExamples int
	// MaxRoles caps the (account, role) pairs counted one by one (default
	// DefaultMaxRoles). The calls of every pair first seen after the cap is
	// reached are counted together in Summary.Other. Memory is then bounded
	// by about MaxRoles × (statements + 1) × MaxExamples examples of at most
	// 6 × MaxFieldBytes + 512 bytes each.
	MaxRoles int
	// MaxErrors is how many records that could not be evaluated are kept as
	// examples (default DefaultMaxErrors; negative: none); all are counted.
	MaxErrors int
}

// Report aggregates verdicts per account and role. It is safe for
// concurrent use; its zero value is not usable: call NewReport.
type Report struct {
	o ReportOptions

	mu           sync.Mutex
	records      int64
	denied       int64
	undetermined int64
	errors       int64
	roles        map[roleKey]*roleStats
	other        *roleStats
	errExamples  []ErrorExample
}

type roleKey struct{ account, role string }

type roleStats struct {
	calls, denied, undetermined int64
	sids                        map[string]*sidStats
	undet                       []Example
}

type sidStats struct {
	denied, undetermined int64
	examples             []Example
}

// NewReport returns an empty report.
func NewReport(o ReportOptions) *Report {
	return &Report{o: o.withDefaults(), roles: map[roleKey]*roleStats{}}
}

// Add counts the call rec records, with the verdict a policy gave it. A
// record that names no account or principal (see FromRecord), or a verdict
// without a Decision, is counted by AddError instead: never as allowed.
// An undetermined verdict counts once for every statement its Unknown
// names; an Unknown without a Sid (a fact the whole policy depends on, such
// as an instance the inventory does not know) counts for no statement, but
// gives the example its reason all the same.
func (r *Report) Add(rec *cloudtrail.Record, v Verdict) {
	if rec == nil {
		r.AddError(nil, fmt.Errorf("shadow: %w: no record", ErrMalformedRecord))
		return
	}
	p, err := principalOf(rec)
	if err != nil {
		r.AddError(rec, err)
		return
	}
	switch v.Decision {
	case Allowed, Denied, Undetermined:
	default:
		r.AddError(rec, fmt.Errorf("shadow: the verdict has no decision (%v)", v.Decision))
		return
	}
	var ex, undet Example
	if v.Decision != Allowed {
		ex = exampleOf(rec)
	}
	if v.Decision == Undetermined {
		undet = ex
		if len(v.Unknown) > 0 {
			undet.Reason = clip(v.Unknown[0].String(), maxReasonBytes)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.role(p.account, p.role)
	st.calls++
	r.records++
	switch v.Decision {
	case Denied:
		st.denied++
		r.denied++
		for _, sid := range v.Sids {
			s := st.sid(sid)
			s.denied++
			s.examples = keepEarliest(s.examples, ex, r.o.MaxExamples)
		}
	case Undetermined:
		st.undetermined++
		r.undetermined++
		for _, u := range v.Unknown {
			if u.Sid != "" {
				st.sid(u.Sid).undetermined++
			}
		}
		st.undet = keepEarliest(st.undet, undet, r.o.MaxExamples)
	}
}

// AddError counts a record that could not be evaluated (rec may be nil).
func (r *Report) AddError(rec *cloudtrail.Record, err error) {
	if err == nil {
		err = errors.New("unknown error")
	}
	var e ErrorExample
	if r.o.MaxErrors > 0 {
		e.Error = clip(err.Error(), maxReasonBytes)
		if rec != nil {
			e.EventTime, e.EventID = clip(rec.EventTime, MaxFieldBytes), clip(rec.EventID, MaxFieldBytes)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
	if r.o.MaxErrors > 0 {
		i, _ := slices.BinarySearchFunc(r.errExamples, e, compareErrors)
		if i < r.o.MaxErrors {
			r.errExamples = slices.Insert(r.errExamples, i, e)
			if len(r.errExamples) > r.o.MaxErrors {
				r.errExamples = r.errExamples[:r.o.MaxErrors]
			}
		}
	}
}

// role returns the counters of (account, role), or of the Other bucket
// once MaxRoles pairs are tracked. Called with r.mu held.
func (r *Report) role(account, role string) *roleStats {
	k := roleKey{account, role}
	if st, ok := r.roles[k]; ok {
		return st
	}
	if len(r.roles) >= r.o.MaxRoles {
		if r.other == nil {
			r.other = &roleStats{}
		}
		return r.other
	}
	st := &roleStats{}
	r.roles[roleKey{strings.Clone(account), strings.Clone(role)}] = st
	return st
}

// sid returns the counters of statement name.
func (st *roleStats) sid(name string) *sidStats {
	if s, ok := st.sids[name]; ok {
		return s
	}
	if st.sids == nil {
		st.sids = map[string]*sidStats{}
	}
	if len(st.sids) >= MaxStatementsPerRole {
		name = OtherStatements
		if s, ok := st.sids[name]; ok {
			return s
		}
	} else {
		name = clip(name, MaxFieldBytes)
	}
	s := &sidStats{}
	st.sids[name] = s
	return s
}

// Example is one call a report shows. Every field is cut to MaxFieldBytes.
type Example struct {
	EventTime       string `json:"eventTime"`
	EventSource     string `json:"eventSource"`
	EventName       string `json:"eventName"`
	SourceIPAddress string `json:"sourceIPAddress"`
	VPCEndpointID   string `json:"vpcEndpointId,omitempty"`
	// InstanceID is the instance whose credentials made the call (the
	// session name), "" when the session is not named like an instance.
	InstanceID string `json:"instanceId,omitempty"`
	// Reason says what an undetermined call depends on.
	Reason string `json:"reason,omitempty"`
}

// exampleOf copies (and cuts) the fields of rec a report shows: the record
// can then be collected.
func exampleOf(rec *cloudtrail.Record) Example {
	return Example{
		EventTime:       clip(rec.EventTime, MaxFieldBytes),
		EventSource:     clip(rec.EventSource, MaxFieldBytes),
		EventName:       clip(rec.EventName, MaxFieldBytes),
		SourceIPAddress: clip(rec.SourceIPAddress, MaxFieldBytes),
		VPCEndpointID:   clip(rec.VPCEndpointID, MaxFieldBytes),
		InstanceID:      clip(InstanceID(rec), MaxFieldBytes),
	}
}

func compareExamples(a, b Example) int {
	return cmp.Or(
		strings.Compare(a.EventTime, b.EventTime),
		strings.Compare(a.EventSource, b.EventSource),
		strings.Compare(a.EventName, b.EventName),
		strings.Compare(a.SourceIPAddress, b.SourceIPAddress),
		strings.Compare(a.VPCEndpointID, b.VPCEndpointID),
		strings.Compare(a.InstanceID, b.InstanceID),
		strings.Compare(a.Reason, b.Reason),
	)
}

// keepEarliest inserts e into the sorted list, keeping at most n.
func keepEarliest(list []Example, e Example, n int) []Example {
	if n <= 0 {
		return list
	}
	i, _ := slices.BinarySearchFunc(list, e, compareExamples)
	if i >= n {
		return list
	}
	list = slices.Insert(list, i, e)
	if len(list) > n {
		list = list[:n]
	}
	return list
}

// ErrorExample is a record that could not be evaluated.
type ErrorExample struct {
	EventTime string `json:"eventTime,omitempty"`
	EventID   string `json:"eventId,omitempty"`
	Error     string `json:"error"`
}

func compareErrors(a, b ErrorExample) int {
	return cmp.Or(strings.Compare(a.Error, b.Error), strings.Compare(a.EventTime, b.EventTime), strings.Compare(a.EventID, b.EventID))
}

// clip returns a private copy of s, valid UTF-8, cut to at most max bytes
// (including a final "…" when cut).
func clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return strings.Clone(s)
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// truncate is clip for error messages.
func truncate(s string, max int) string { return clip(s, max) }

// Summary is a Report's content, ordered deterministically: what
// MarshalJSON encodes and WriteMarkdown renders.
type Summary struct {
	// Calls counts every record added with a verdict.
	Calls int64 `json:"calls"`
	// WouldDeny counts the calls a statement surely denies.
	WouldDeny int64 `json:"wouldDeny"`
	// Undetermined counts the calls that depend on unknown facts.
	Undetermined int64 `json:"undetermined"`
	// Errors counts the records that could not be evaluated.
	Errors int64 `json:"errors"`
	// MaxRoles is the cap on (account, role) pairs counted one by one.
	MaxRoles int `json:"maxRoles"`
	// Accounts are sorted by account id.
	Accounts []AccountSummary `json:"accounts"`
	// Other counts the calls of the pairs beyond MaxRoles (Role is empty),
	// nil when there were none.
	Other *RoleSummary `json:"other,omitempty"`
	// ErrorExamples are up to MaxErrors of the records that could not be
	// evaluated, sorted by message.
	ErrorExamples []ErrorExample `json:"errorExamples,omitempty"`
	// Trimmed says that examples were dropped or roles folded into Other
	// to fit a size (Shrink); the counts are exact all the same.
	Trimmed bool `json:"trimmed,omitempty"`
}

// AccountSummary is one account's calls.
type AccountSummary struct {
	Account      string `json:"account"`
	Calls        int64  `json:"calls"`
	WouldDeny    int64  `json:"wouldDeny"`
	Undetermined int64  `json:"undetermined"`
	// Roles are sorted by ARN.
	Roles []RoleSummary `json:"roles"`
}

// RoleSummary is one role's calls (the session issuer of a role session,
// else the principal's ARN).
type RoleSummary struct {
	Role         string `json:"role"`
	Calls        int64  `json:"calls"`
	WouldDeny    int64  `json:"wouldDeny"`
	Undetermined int64  `json:"undetermined"`
	// Statements are sorted by name. A call denied by two statements
	// counts once in WouldDeny and once for each statement.
	Statements []StatementSummary `json:"statements,omitempty"`
	// UndeterminedExamples are the earliest undetermined calls.
	UndeterminedExamples []Example `json:"undeterminedExamples,omitempty"`
}

// StatementSummary is what one statement would deny for one role.
type StatementSummary struct {
	Sid          string    `json:"sid"`
	WouldDeny    int64     `json:"wouldDeny"`
	Undetermined int64     `json:"undetermined"`
	Examples     []Example `json:"examples,omitempty"`
}

// Summary returns the report's content so far.
func (r *Report) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Summary{Calls: r.records, WouldDeny: r.denied, Undetermined: r.undetermined, Errors: r.errors,
		MaxRoles: r.o.MaxRoles, ErrorExamples: slices.Clone(r.errExamples)}
	for _, k := range slices.SortedFunc(maps.Keys(r.roles), func(a, b roleKey) int {
		return cmp.Or(strings.Compare(a.account, b.account), strings.Compare(a.role, b.role))
	}) {
		if n := len(s.Accounts); n == 0 || s.Accounts[n-1].Account != k.account {
			s.Accounts = append(s.Accounts, AccountSummary{Account: k.account})
		}
		a := &s.Accounts[len(s.Accounts)-1]
		rs := r.roles[k].summary(k.role)
		a.Calls += rs.Calls
		a.WouldDeny += rs.WouldDeny
		a.Undetermined += rs.Undetermined
		a.Roles = append(a.Roles, rs)
	}
	if r.other != nil {
		o := r.other.summary("")
		s.Other = &o
	}
	return s
}

// summary renders one role's counters.
func (st *roleStats) summary(role string) RoleSummary {
	rs := RoleSummary{Role: role, Calls: st.calls, WouldDeny: st.denied, Undetermined: st.undetermined,
		UndeterminedExamples: slices.Clone(st.undet)}
	for _, name := range slices.Sorted(maps.Keys(st.sids)) {
		s := st.sids[name]
		rs.Statements = append(rs.Statements, StatementSummary{Sid: name, WouldDeny: s.denied, Undetermined: s.undetermined,
			Examples: slices.Clone(s.examples)})
	}
	return rs
}

// MarshalJSON encodes Summary: equal reports give byte-identical JSON.
func (r *Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.Summary())
}
