package shadow

import (
	"bytes"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// FuzzCompileJSON checks that no document panics the compiler and that a
// document that compiles never answers "allowed" when nothing is known: the
// evaluator cannot fail open on a document it accepted.
func FuzzCompileJSON(f *testing.F) {
	for _, d := range []lockpolicy.Document{
		lockpolicy.DenyAll(), scpDocument(), operatorsDocument(),
	} {
		b, err := d.JSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpc":"${aws:SourceVpce, 'x'}${*}"}}}}`))
	f.Add([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := CompileJSON(b)
		if err != nil {
			return
		}
		var nothing Request
		if v := p.Evaluate(&nothing); v.Decision == Allowed {
			t.Fatalf("allowed with nothing known: %s", b)
		}
		r, err := NewRequest(map[string]any{"aws:SourceIp": "198.51.100.1", "aws:ViaAWSService": "false"})
		if err != nil {
			t.Fatal(err)
		}
		switch p.Evaluate(&r).Decision {
		case Allowed, Denied, Undetermined:
		default:
			t.Fatal("no decision")
		}
	})
}

// FuzzRecord checks that no record panics the pipeline and that the
// Markdown table survives whatever the record holds.
func FuzzRecord(f *testing.F) {
	for _, c := range []call{
		{src: publicIP}, {src: privateIP, vpce: unmappedVPCE}, {src: "ec2.amazonaws.com", invokedBy: "ec2.amazonaws.com"},
		{role: "a|b`c", src: attackerIP}, {iamUser: "u", src: "AWS Internal"},
	} {
		f.Add(c.json())
	}
	lock, err := Compile(lockpolicy.DenyAll())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := cloudtrail.ParseRecord(raw)
		if err != nil {
			return
		}
		report := NewReport(ReportOptions{})
		req, err := FromRecord(&rec, theInstance, Options{EndpointVPCs: endpoints})
		if err != nil {
			report.AddError(&rec, err)
		} else {
			report.Add(&rec, lock.Evaluate(&req))
		}
		var md bytes.Buffer
		if err := report.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(md.String(), "\n") {
			if strings.HasPrefix(line, "|") && cells(line) != 6 {
				t.Fatalf("a table row with %d cells: %q", cells(line), line)
			}
		}
	})
}
