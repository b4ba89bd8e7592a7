package shadow

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// parts replays the generated records into k reports, record i into
// report part(i), and returns their summaries and the summary of one
// report over all records.
func parts(t *testing.T, w *world, o ReportOptions, k int, part func(i int) int) ([]Summary, Summary) {
	t.Helper()
	whole := NewReport(o)
	reports := make([]*Report, k)
	for j := range reports {
		reports[j] = NewReport(o)
	}
	for i, raw := range w.records {
		rec, err := cloudtrail.ParseRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		w.shadow(&rec, whole)
		w.shadow(&rec, reports[part(i)])
	}
	sums := make([]Summary, k)
	for j, r := range reports {
		sums[j] = r.Summary()
	}
	return sums, whole.Summary()
}

func TestMerge(t *testing.T) {
	w := generate(t, 6000, 3, 15, 7)
	rng := rand.New(rand.NewPCG(7, 7))
	tests := []struct {
		name string
		k    int
		part func(i int) int
	}{
		{name: "one summary merges to itself", k: 1, part: func(int) int { return 0 }},
		{name: "invocations in sequence merge to the report of them all", k: 40, part: func(i int) int { return i / 150 }},
		{name: "interleaved containers merge to the report of them all", k: 7, part: func(i int) int { return i % 7 }},
		{name: "a random split merges to the report of them all", k: 13, part: func(int) int { return rng.IntN(13) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sums, want := parts(t, w, ReportOptions{}, tc.k, tc.part)
			got := Merge(ReportOptions{}, sums...)
			if g, e := jsonOf(t, got), jsonOf(t, want); !bytes.Equal(g, e) {
				t.Fatalf("merged:\n%s\nwant:\n%s", g, e)
			}
			slices.Reverse(sums)
			if g, e := jsonOf(t, Merge(ReportOptions{}, sums...)), jsonOf(t, want); !bytes.Equal(g, e) {
				t.Fatal("the merge depends on the order of the summaries")
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("the caps hold and the counts survive them", func(t *testing.T) {
		sums, whole := parts(t, w, ReportOptions{}, 9, func(i int) int { return i % 9 })
		o := ReportOptions{MaxRoles: 4, MaxExamples: 1, MaxErrors: 2}
		got := Merge(o, sums...)
		if err := got.Validate(); err != nil {
			t.Fatal(err)
		}
		if got.Calls != whole.Calls || got.WouldDeny != whole.WouldDeny || got.Undetermined != whole.Undetermined || got.Errors != whole.Errors {
			t.Fatalf("totals %d/%d/%d/%d, want %d/%d/%d/%d", got.Calls, got.WouldDeny, got.Undetermined, got.Errors,
				whole.Calls, whole.WouldDeny, whole.Undetermined, whole.Errors)
		}
		if got.MaxRoles != 4 || len(got.ErrorExamples) != 2 || got.Other == nil {
			t.Fatalf("maxRoles %d, %d error examples, other %v", got.MaxRoles, len(got.ErrorExamples), got.Other)
		}
		var listed []RoleSummary
		for _, a := range got.Accounts {
			listed = append(listed, a.Roles...)
		}
		if len(listed) != 4 {
			t.Fatalf("%d roles listed, want 4", len(listed))
		}
		// The listed roles are those that would deny the most calls.
		var all []int64
		for _, a := range whole.Accounts {
			for _, r := range a.Roles {
				all = append(all, r.WouldDeny)
			}
		}
		slices.Sort(all)
		slices.Reverse(all)
		var kept []int64
		for _, r := range listed {
			kept = append(kept, r.WouldDeny)
			for _, st := range r.Statements {
				if len(st.Examples) > 1 {
					t.Errorf("role %s, %s: %d examples, over the cap of 1", r.Role, st.Sid, len(st.Examples))
				}
			}
		}
		slices.Sort(kept)
		slices.Reverse(kept)
		if !slices.Equal(kept, all[:4]) {
			t.Errorf("kept roles deny %v, the top four deny %v", kept, all[:4])
		}
	})

	t.Run("a merger tracks a bounded number of roles", func(t *testing.T) {
		sums, _ := parts(t, w, ReportOptions{}, 1, func(int) int { return 0 })
		m := newMerger(1, 2, 1, 5)
		m.Add(sums[0])
		if len(m.roles) != 5 {
			t.Fatalf("%d roles tracked, want 5", len(m.roles))
		}
		s := m.Summary()
		if err := s.Validate(); err != nil || s.Calls != sums[0].Calls || s.Other == nil {
			t.Fatalf("err %v, calls %d, other %v", err, s.Calls, s.Other)
		}
	})

	t.Run("counts saturate instead of overflowing", func(t *testing.T) {
		s := Summary{Calls: math.MaxInt64 - 1, Accounts: []AccountSummary{{Account: account, Calls: math.MaxInt64 - 1,
			Roles: []RoleSummary{{Role: "r", Calls: math.MaxInt64 - 1}}}}}
		got := Merge(ReportOptions{}, s, s)
		if got.Calls != math.MaxInt64 || got.Accounts[0].Roles[0].Calls != math.MaxInt64 {
			t.Fatalf("got %d", got.Calls)
		}
	})

	t.Run("text from outside is cut as a report cuts it", func(t *testing.T) {
		long := strings.Repeat("x", 10000)
		s := Summary{Calls: 1, Undetermined: 1, Accounts: []AccountSummary{{Account: long, Calls: 1, Undetermined: 1, Roles: []RoleSummary{{
			Role: long, Calls: 1, Undetermined: 1, Statements: []StatementSummary{{Sid: long, Undetermined: 1}},
			UndeterminedExamples: []Example{{EventTime: long, EventName: long, Reason: long}},
		}}}}, ErrorExamples: []ErrorExample{{Error: long}}}
		got := Merge(ReportOptions{}, s)
		a := got.Accounts[0]
		r := a.Roles[0]
		e := r.UndeterminedExamples[0]
		if len(a.Account) > MaxFieldBytes || len(r.Role) > maxARNLen || len(r.Statements[0].Sid) > MaxFieldBytes ||
			len(e.EventTime) > MaxFieldBytes || len(e.EventName) > MaxFieldBytes || len(e.Reason) > maxReasonBytes ||
			len(got.ErrorExamples[0].Error) > maxReasonBytes {
			t.Fatalf("a field was not cut: %+v", got)
		}
	})
}

func TestValidate(t *testing.T) {
	valid := func() Summary {
		return Summary{Calls: 5, WouldDeny: 2, Undetermined: 1, MaxRoles: 1000,
			Accounts: []AccountSummary{{Account: account, Calls: 4, WouldDeny: 2, Undetermined: 0, Roles: []RoleSummary{
				{Role: "a", Calls: 3, WouldDeny: 2, Statements: []StatementSummary{{Sid: "S", WouldDeny: 2}}},
				{Role: "b", Calls: 1},
			}}},
			Other: &RoleSummary{Calls: 1, Undetermined: 1},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("the valid summary: %v", err)
	}
	tests := []struct {
		name    string
		corrupt func(s *Summary)
		want    string
	}{
		{"a negative total", func(s *Summary) { s.Errors = -1 }, "a negative count"},
		{"a negative role count", func(s *Summary) { s.Accounts[0].Roles[1].Calls = -1 }, `role "b": a negative count`},
		{"a negative statement count", func(s *Summary) { s.Accounts[0].Roles[0].Statements[0].WouldDeny = -2 }, `statement "S": a negative count`},
		{"more denials than calls", func(s *Summary) { s.Accounts[0].Roles[0].Calls = 1 }, "2 would-deny and 0 undetermined calls out of 1 calls"},
		{"an account without an id", func(s *Summary) { s.Accounts[0].Account = "" }, "an account without an id"},
		{"an account twice", func(s *Summary) { s.Accounts = append(s.Accounts, s.Accounts[0]) }, "listed twice"},
		{"a role twice", func(s *Summary) { s.Accounts[0].Roles[1].Role = "a" }, `role "a" listed twice`},
		{"an account total that is not the sum", func(s *Summary) { s.Accounts[0].Calls = 9 }, "are not the sums over its roles"},
		{"a report total that is not the sum", func(s *Summary) { s.Calls = 4 }, "are not the sums over the accounts and other roles"},
		{"more undetermined than calls in Other", func(s *Summary) { s.Other.Undetermined = 2 }, "other roles"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			s := valid()
			tc.corrupt(&s)
			err := s.Validate()
			if !errors.Is(err, ErrInvalidSummary) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %v containing %q", err, ErrInvalidSummary, tc.want)
			}
		})
	}
}

func TestShrink(t *testing.T) {
	w := generate(t, 6000, 3, 40, 9)
	_, s := parts(t, w, ReportOptions{}, 1, func(int) int { return 0 })
	full := len(jsonOf(t, s))
	if got := s.Shrink(full); !bytes.Equal(jsonOf(t, got), jsonOf(t, s)) || got.Trimmed {
		t.Fatal("a summary that fits is changed")
	}
	for _, budget := range []int{full - 1, full / 2, full / 4, 8000, 2000, 100} {
		got := s.Shrink(budget)
		n := len(jsonOf(t, got))
		if n > budget && budget >= 2000 {
			t.Errorf("budget %d: %d bytes", budget, n)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("budget %d: %v", budget, err)
		}
		if !got.Trimmed || got.Calls != s.Calls || got.WouldDeny != s.WouldDeny || got.Undetermined != s.Undetermined || got.Errors != s.Errors {
			t.Errorf("budget %d: trimmed %v, counts %d/%d/%d/%d, want %d/%d/%d/%d", budget, got.Trimmed,
				got.Calls, got.WouldDeny, got.Undetermined, got.Errors, s.Calls, s.WouldDeny, s.Undetermined, s.Errors)
		}
	}
	var md bytes.Buffer
	if err := s.Shrink(2000).WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "too large for one log line") {
		t.Errorf("the Markdown does not say the report was trimmed:\n%s", md.String())
	}
}
