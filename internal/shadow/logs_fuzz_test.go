package shadow

import (
	"bytes"
	"testing"
)

// FuzzReadReports feeds arbitrary log text to a LogReader: it never
// panics, and whatever it merges is a valid summary within the caps.
func FuzzReadReports(f *testing.F) {
	line := `{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"shadow report","mode":"nat-egress","proposal":"lock:nat-egress",` +
		`"report":{"calls":2,"wouldDeny":1,"undetermined":0,"errors":0,"maxRoles":1000,"accounts":[{"account":"111122223333","calls":2,` +
		`"wouldDeny":1,"undetermined":0,"roles":[{"role":"arn:aws:iam::111122223333:role/r","calls":2,"wouldDeny":1,"undetermined":0,` +
		`"statements":[{"sid":"S","wouldDeny":1,"undetermined":0,"examples":[{"eventTime":"t","eventSource":"s","eventName":"n","sourceIPAddress":"a"}]}]}]}]}}`
	for _, seed := range []string{
		line,
		line + "\n" + line + "\nSTART\n",
		"1\t" + line + "\n2\tother\n",
		`{"events":[{"message":` + string(mustJSON(line)) + `}]}`,
		"{\n \"results\": [[{\"field\":\"@message\",\"value\":" + string(mustJSON(line)) + "}]]\n}",
		`[` + string(mustJSON(line)) + `, {"@message": "x"}]`,
		line[:80],
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lr := NewLogReader(ReportOptions{MaxRoles: 3, MaxExamples: 1, MaxErrors: 1})
		_ = lr.Read(bytes.NewReader(b))
		l := lr.Log()
		if err := l.Summary.Validate(); err != nil {
			t.Fatalf("the merged summary is invalid: %v", err)
		}
		roles := 0
		for _, a := range l.Summary.Accounts {
			roles += len(a.Roles)
			for _, r := range a.Roles {
				for _, st := range r.Statements {
					if len(st.Examples) > 1 {
						t.Fatal("over the examples cap")
					}
				}
			}
		}
		if roles > 3 || len(l.Summary.ErrorExamples) > 1 {
			t.Fatalf("%d roles, %d error examples: over the caps", roles, len(l.Summary.ErrorExamples))
		}
		var md bytes.Buffer
		if err := l.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
	})
}

func mustJSON(s string) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}
