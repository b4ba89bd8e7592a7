package shadow

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// ErrInvalidSummary means a Summary read from outside (a log line) is not
// one a Report could have produced: a negative count, totals that are not
// the sums of their parts, an account or role listed twice. The error says
// which.
var ErrInvalidSummary = errors.New("invalid shadow report")

// workingRolesFactor bounds the (account, role) pairs a Merger tracks one
// by one while merging: MaxRoles × workingRolesFactor. Pairs first seen
// after that are counted in Other at once.
const workingRolesFactor = 16

// Merger combines Summaries, for example the reports that many detector
// invocations and containers logged. Counts add up (saturating at
// math.MaxInt64); of the examples the earliest ReportOptions.MaxExamples
// per statement and role are kept, of the error examples the first
// MaxErrors by message, as a Report keeps them; so merging the summaries of
// reports over disjoint sets of records gives the summary of one report
// over all of them, as long as no report reached a cap (MaxRoles, or
// MaxStatementsPerRole statements for one role).
//
// Caps: a Merger tracks at most MaxRoles × 16 (account, role) pairs (the
// calls of pairs first seen after that are counted in Other at once) and
// Summary lists at most MaxRoles of them: those that would deny the most
// calls (then the most undetermined, the most calls, by account and role),
// counting the others in Other. Every text field is cut as a Report cuts
// it, so memory stays bounded whatever the input. A Merger is not safe for
// concurrent use; its zero value is not usable: call NewMerger.
type Merger struct {
	maxExamples, maxRoles, maxErrors, maxWorking int

	calls, denied, undetermined, errors int64
	roles                               map[roleKey]*roleStats
	other                               *roleStats
	errExamples                         []ErrorExample
	trimmed                             bool
}

// NewMerger returns an empty Merger bounded by o (defaults as NewReport's).
func NewMerger(o ReportOptions) *Merger {
	o = o.withDefaults()
	return newMerger(o.MaxExamples, o.MaxRoles, o.MaxErrors, o.MaxRoles*workingRolesFactor)
}

// newMerger takes the bounds as they are: 0 examples or roles is none.
func newMerger(maxExamples, maxRoles, maxErrors, maxWorking int) *Merger {
	return &Merger{maxExamples: maxExamples, maxRoles: maxRoles, maxErrors: maxErrors, maxWorking: maxWorking,
		roles: map[roleKey]*roleStats{}}
}

// withDefaults applies NewReport's defaults.
func (o ReportOptions) withDefaults() ReportOptions {
	if o.MaxExamples == 0 {
		o.MaxExamples = DefaultMaxExamples
	}
	if o.MaxRoles <= 0 {
		o.MaxRoles = DefaultMaxRoles
	}
	if o.MaxErrors == 0 {
		o.MaxErrors = DefaultMaxErrors
	}
	return o
}

// Merge combines summaries with a Merger bounded by o.
func Merge(o ReportOptions, summaries ...Summary) Summary {
	m := NewMerger(o)
	for _, s := range summaries {
		m.Add(s)
	}
	return m.Summary()
}

// Add merges s. It does not validate s (see Summary.Validate); negative
// counts are taken as zero.
func (m *Merger) Add(s Summary) {
	m.calls = addCount(m.calls, s.Calls)
	m.denied = addCount(m.denied, s.WouldDeny)
	m.undetermined = addCount(m.undetermined, s.Undetermined)
	m.errors = addCount(m.errors, s.Errors)
	m.trimmed = m.trimmed || s.Trimmed
	for _, a := range s.Accounts {
		for _, rs := range a.Roles {
			m.addRole(m.role(a.Account, rs.Role), rs)
		}
	}
	if s.Other != nil {
		m.addRole(m.otherStats(), *s.Other)
	}
	if m.maxErrors > 0 {
		for _, e := range s.ErrorExamples {
			e = ErrorExample{EventTime: clip(e.EventTime, MaxFieldBytes), EventID: clip(e.EventID, MaxFieldBytes),
				Error: clip(e.Error, maxReasonBytes)}
			i, _ := slices.BinarySearchFunc(m.errExamples, e, compareErrors)
			if i < m.maxErrors {
				m.errExamples = slices.Insert(m.errExamples, i, e)
				if len(m.errExamples) > m.maxErrors {
					m.errExamples = m.errExamples[:m.maxErrors]
				}
			}
		}
	}
}

// role returns the counters of (account, role), or Other's beyond the
// working cap.
func (m *Merger) role(account, role string) *roleStats {
	k := roleKey{clip(account, MaxFieldBytes), clip(role, maxARNLen)}
	if st, ok := m.roles[k]; ok {
		return st
	}
	if len(m.roles) >= m.maxWorking {
		return m.otherStats()
	}
	st := &roleStats{}
	m.roles[k] = st
	return st
}

func (m *Merger) otherStats() *roleStats {
	if m.other == nil {
		m.other = &roleStats{}
	}
	return m.other
}

// addRole adds one role's summary to st.
func (m *Merger) addRole(st *roleStats, rs RoleSummary) {
	st.calls = addCount(st.calls, rs.Calls)
	st.denied = addCount(st.denied, rs.WouldDeny)
	st.undetermined = addCount(st.undetermined, rs.Undetermined)
	for _, ss := range rs.Statements {
		s := st.sid(ss.Sid)
		s.denied = addCount(s.denied, ss.WouldDeny)
		s.undetermined = addCount(s.undetermined, ss.Undetermined)
		for _, e := range ss.Examples {
			s.examples = keepEarliest(s.examples, clipExample(e), m.maxExamples)
		}
	}
	for _, e := range rs.UndeterminedExamples {
		st.undet = keepEarliest(st.undet, clipExample(e), m.maxExamples)
	}
}

// mergeStats adds the counters of from to st (from is not modified).
func (m *Merger) mergeStats(st, from *roleStats) {
	m.addRole(st, from.summary(""))
}

// clipExample cuts an example's fields as exampleOf does.
func clipExample(e Example) Example {
	return Example{
		EventTime:       clip(e.EventTime, MaxFieldBytes),
		EventSource:     clip(e.EventSource, MaxFieldBytes),
		EventName:       clip(e.EventName, MaxFieldBytes),
		SourceIPAddress: clip(e.SourceIPAddress, MaxFieldBytes),
		VPCEndpointID:   clip(e.VPCEndpointID, MaxFieldBytes),
		InstanceID:      clip(e.InstanceID, MaxFieldBytes),
		Reason:          clip(e.Reason, maxReasonBytes),
	}
}

// addCount adds two counts, negative ones as zero, saturating.
func addCount(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// importance orders roles for the cap: most would-deny calls first, then
// most undetermined, most calls, then by account and role.
func importance(ka, kb roleKey, a, b *roleStats) int {
	return cmp.Or(cmp.Compare(b.denied, a.denied), cmp.Compare(b.undetermined, a.undetermined), cmp.Compare(b.calls, a.calls),
		strings.Compare(ka.account, kb.account), strings.Compare(ka.role, kb.role))
}

// Summary returns the merged content, ordered as Report.Summary orders it.
func (m *Merger) Summary() Summary {
	s := Summary{Calls: m.calls, WouldDeny: m.denied, Undetermined: m.undetermined, Errors: m.errors,
		MaxRoles: m.maxRoles, ErrorExamples: slices.Clone(m.errExamples), Trimmed: m.trimmed}
	keys := slices.Collect(maps.Keys(m.roles))
	var folded []roleKey
	if len(keys) > m.maxRoles {
		slices.SortFunc(keys, func(a, b roleKey) int { return importance(a, b, m.roles[a], m.roles[b]) })
		keys, folded = keys[:m.maxRoles], keys[m.maxRoles:]
	}
	slices.SortFunc(keys, func(a, b roleKey) int {
		return cmp.Or(strings.Compare(a.account, b.account), strings.Compare(a.role, b.role))
	})
	for _, k := range keys {
		if n := len(s.Accounts); n == 0 || s.Accounts[n-1].Account != k.account {
			s.Accounts = append(s.Accounts, AccountSummary{Account: k.account})
		}
		a := &s.Accounts[len(s.Accounts)-1]
		rs := m.roles[k].summary(k.role)
		a.Calls = addCount(a.Calls, rs.Calls)
		a.WouldDeny = addCount(a.WouldDeny, rs.WouldDeny)
		a.Undetermined = addCount(a.Undetermined, rs.Undetermined)
		a.Roles = append(a.Roles, rs)
	}
	if m.other != nil || len(folded) > 0 {
		other := &roleStats{}
		if m.other != nil {
			m.mergeStats(other, m.other)
		}
		slices.SortFunc(folded, func(a, b roleKey) int {
			return cmp.Or(strings.Compare(a.account, b.account), strings.Compare(a.role, b.role))
		})
		for _, k := range folded {
			m.mergeStats(other, m.roles[k])
		}
		o := other.summary("")
		s.Other = &o
	}
	return s
}

// Validate checks that s is a summary a Report or a Merger could have
// produced (ErrInvalidSummary otherwise): no negative count, no account
// without an id, no account or role listed twice, no role with more
// would-deny and undetermined calls than calls, and totals that are the
// sums of their parts (the report's over its accounts and Other, an
// account's over its roles).
func (s Summary) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("shadow: %w: "+format, append([]any{ErrInvalidSummary}, args...)...)
	}
	if s.Calls < 0 || s.WouldDeny < 0 || s.Undetermined < 0 || s.Errors < 0 || s.MaxRoles < 0 {
		return bad("a negative count")
	}
	checkRole := func(where string, rs RoleSummary) error {
		if rs.Calls < 0 || rs.WouldDeny < 0 || rs.Undetermined < 0 {
			return bad("%s: a negative count", where)
		}
		if addCount(rs.WouldDeny, rs.Undetermined) > rs.Calls {
			return bad("%s: %d would-deny and %d undetermined calls out of %d calls", where, rs.WouldDeny, rs.Undetermined, rs.Calls)
		}
		for _, st := range rs.Statements {
			if st.WouldDeny < 0 || st.Undetermined < 0 {
				return bad("%s: statement %q: a negative count", where, clip(st.Sid, 64))
			}
		}
		return nil
	}
	var calls, denied, undetermined int64
	accounts := make(map[string]bool, len(s.Accounts))
	for _, a := range s.Accounts {
		where := fmt.Sprintf("account %q", clip(a.Account, 64))
		if a.Account == "" {
			return bad("an account without an id")
		}
		if accounts[a.Account] {
			return bad("%s listed twice", where)
		}
		accounts[a.Account] = true
		var ac, ad, au int64
		roles := make(map[string]bool, len(a.Roles))
		for _, rs := range a.Roles {
			rwhere := fmt.Sprintf("%s, role %q", where, clip(rs.Role, 128))
			if roles[rs.Role] {
				return bad("%s listed twice", rwhere)
			}
			roles[rs.Role] = true
			if err := checkRole(rwhere, rs); err != nil {
				return err
			}
			ac, ad, au = addCount(ac, rs.Calls), addCount(ad, rs.WouldDeny), addCount(au, rs.Undetermined)
		}
		if a.Calls != ac || a.WouldDeny != ad || a.Undetermined != au {
			return bad("%s: totals (%d calls, %d would deny, %d undetermined) are not the sums over its roles (%d, %d, %d)",
				where, a.Calls, a.WouldDeny, a.Undetermined, ac, ad, au)
		}
		calls, denied, undetermined = addCount(calls, ac), addCount(denied, ad), addCount(undetermined, au)
	}
	if s.Other != nil {
		if err := checkRole("other roles", *s.Other); err != nil {
			return err
		}
		calls, denied, undetermined = addCount(calls, s.Other.Calls), addCount(denied, s.Other.WouldDeny), addCount(undetermined, s.Other.Undetermined)
	}
	if s.Calls != calls || s.WouldDeny != denied || s.Undetermined != undetermined {
		return bad("totals (%d calls, %d would deny, %d undetermined) are not the sums over the accounts and other roles (%d, %d, %d)",
			s.Calls, s.WouldDeny, s.Undetermined, calls, denied, undetermined)
	}
	return nil
}

// Shrink returns s, or when its JSON is longer than maxJSONBytes a smaller
// summary with the same counts, marked Trimmed: first with at most one
// example per list and one error example, then with none, then with fewer
// roles listed one by one (the roles that would deny the most calls are
// kept; the others are counted in Other), down to none. A log line must fit
// in one CloudWatch Logs event: the runner logs Shrink's result.
func (s Summary) Shrink(maxJSONBytes int) Summary {
	fits := func(t Summary) bool {
		b, err := json.Marshal(t)
		return err == nil && len(b) <= maxJSONBytes
	}
	if fits(s) {
		return s
	}
	roles := 0
	for _, a := range s.Accounts {
		roles += len(a.Roles)
	}
	shrunk := func(examples, keep int) Summary {
		m := newMerger(examples, keep, examples, roles+1)
		m.Add(s)
		t := m.Summary()
		t.Trimmed = true
		return t
	}
	for _, examples := range []int{1, 0} {
		if t := shrunk(examples, roles); fits(t) {
			return t
		}
	}
	for keep := roles / 2; ; keep /= 2 {
		t := shrunk(0, keep)
		if keep == 0 || fits(t) {
			return t
		}
	}
}
