package shadow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// TestReportJSON pins the JSON a small report encodes to.
func TestReportJSON(t *testing.T) {
	lock := compile(t, render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}}))
	report := NewReport(ReportOptions{})
	at := time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)
	for _, c := range []call{
		{src: publicIP, at: at},
		{src: attackerIP, at: at.Add(time.Second)},
		{src: privateIP, vpce: unmappedVPCE, at: at.Add(2 * time.Second)},
	} {
		rec := c.record(t)
		req, err := FromRecord(&rec, theInstance, Options{EndpointVPCs: endpoints})
		if err != nil {
			t.Fatal(err)
		}
		report.Add(&rec, lock.Evaluate(&req))
	}
	rec := call{src: "bogus", at: at}.record(t)
	_, err := FromRecord(&rec, theInstance, Options{})
	report.AddError(&rec, err)

	var got bytes.Buffer
	b, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&got, b, "", " "); err != nil {
		t.Fatal(err)
	}
	want := `{
 "calls": 3,
 "wouldDeny": 1,
 "undetermined": 1,
 "errors": 1,
 "maxRoles": 1000,
 "accounts": [
  {
   "account": "111122223333",
   "calls": 3,
   "wouldDeny": 1,
   "undetermined": 1,
   "roles": [
    {
     "role": "arn:aws:iam::111122223333:role/luke-role",
     "calls": 3,
     "wouldDeny": 1,
     "undetermined": 1,
     "statements": [
      {
       "sid": "DenyEndpointCallsFromOtherVpcs",
       "wouldDeny": 0,
       "undetermined": 1
      },
      {
       "sid": "DenyEndpointCallsFromOutsideTheInstanceVpc",
       "wouldDeny": 0,
       "undetermined": 1
      },
      {
       "sid": "DenyPublicCallsFromOtherAddresses",
       "wouldDeny": 1,
       "undetermined": 0,
       "examples": [
        {
         "eventTime": "2024-05-14T10:00:01Z",
         "eventSource": "ec2.amazonaws.com",
         "eventName": "DescribeInstances",
         "sourceIPAddress": "198.51.100.77",
         "instanceId": "i-0abc1234def567890"
        }
       ]
      }
     ],
     "undeterminedExamples": [
      {
       "eventTime": "2024-05-14T10:00:02Z",
       "eventSource": "ec2.amazonaws.com",
       "eventName": "DescribeInstances",
       "sourceIPAddress": "10.0.1.23",
       "vpcEndpointId": "vpce-0999988887777666",
       "instanceId": "i-0abc1234def567890",
       "reason": "DenyEndpointCallsFromOtherVpcs: aws:SourceVpc: the VPC of endpoint vpce-0999988887777666 is not known (CloudTrail does not record it; add it to Options.EndpointVPCs)"
      }
     ]
    }
   ]
  }
 ],
 "errorExamples": [
  {
   "eventTime": "2024-05-14T10:00:00Z",
   "eventId": "5b1bd5d8-0a3c-4b4c-9d55-0a5c1f8e2b41",
   "error": "shadow: malformed CloudTrail record: sourceIPAddress \"bogus\" is neither an IP address nor an AWS service name"
  }
 ]
}`
	if got.String() != want {
		t.Errorf("JSON\n%s\nwant\n%s", got.String(), want)
	}
}

// TestMarkdownHostileInput renders a report whose records carry Markdown,
// HTML, line breaks and megabytes, and checks the table survives.
func TestMarkdownHostileInput(t *testing.T) {
	hostile := "x|y</td><script>alert(1)</script>\n# owned `tick` [link](https://e.vil) **bold** \u202e"
	huge := strings.Repeat("A", 1<<20)
	lock := compile(t, render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}}))
	report := NewReport(ReportOptions{})
	for i, c := range []call{
		{role: hostile, src: attackerIP},
		{role: hostile, src: privateIP, vpce: unmappedVPCE},
		{role: "plain", src: attackerIP, name: huge, source: hostile},
	} {
		rec := c.record(t)
		req, err := FromRecord(&rec, theInstance, Options{EndpointVPCs: endpoints})
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		report.Add(&rec, lock.Evaluate(&req))
	}
	// A caller's verdict with a hostile statement name.
	rec := call{src: attackerIP}.record(t)
	report.Add(&rec, Verdict{Decision: Denied, Sids: []string{hostile}})
	report.AddError(&rec, errors.New(hostile+huge))

	var out bytes.Buffer
	if err := report.WriteMarkdown(&out); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	if len(md) > 64<<10 {
		t.Errorf("the Markdown is %d bytes: huge fields were not cut", len(md))
	}
	for _, bad := range []string{"<script", "</td>", "\n# owned", "\u202e"} {
		if strings.Contains(md, bad) {
			t.Errorf("the Markdown contains %q", bad)
		}
	}
	// Outside code spans (which render literally) no link can form.
	if prose := codeSpans.ReplaceAllString(md, "`code`"); unescapedLink.MatchString(prose) {
		t.Errorf("a link outside code: %q", unescapedLink.FindString(prose))
	}
	tables := 0
	for line := range strings.SplitSeq(md, "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			if !strings.HasPrefix(line, "## Shadow mode") && !strings.HasPrefix(line, "### ") {
				t.Errorf("a heading the report did not write: %q", line)
			}
		case strings.HasPrefix(line, "|"):
			tables++
			if n := cells(line); n != 6 {
				t.Errorf("a table row with %d cells: %q", n, clip(line, 300))
			}
		case strings.HasPrefix(line, "- "), line == "", !strings.ContainsAny(line, "|<`"):
		default:
			t.Errorf("an unexpected line: %q", clip(line, 300))
		}
	}
	if tables != 2+3 {
		t.Errorf("%d table lines, want a header, a separator and 3 roles", tables)
	}
	if !strings.Contains(md, "`arn:aws:iam::111122223333:role/plain`") {
		t.Errorf("a plain role is not shown as code:\n%s", md)
	}
}

var (
	codeSpans     = regexp.MustCompile("`[^`]*`")
	unescapedLink = regexp.MustCompile(`(^|[^\\])\]\(`)
)

// cells counts the cells of a GFM table row: pipes not escaped by a
// backslash, minus one.
func cells(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n - 1
}

// TestReportBounds checks the options and the caps.
func TestReportBounds(t *testing.T) {
	rec := call{src: attackerIP}.record(t)

	t.Run("negative MaxExamples keeps none", func(t *testing.T) {
		r := NewReport(ReportOptions{MaxExamples: -1, MaxErrors: -1})
		r.Add(&rec, Verdict{Decision: Denied, Sids: []string{"A"}})
		r.AddError(&rec, errors.New("x"))
		s := r.Summary()
		if len(s.Accounts[0].Roles[0].Statements[0].Examples) != 0 || len(s.ErrorExamples) != 0 || s.Errors != 1 {
			t.Errorf("summary %+v", s)
		}
	})
	t.Run("statement names beyond the cap are counted together", func(t *testing.T) {
		r := NewReport(ReportOptions{})
		for i := range MaxStatementsPerRole + 10 {
			r.Add(&rec, Verdict{Decision: Denied, Sids: []string{fmt.Sprintf("S%03d", i)}})
		}
		st := r.Summary().Accounts[0].Roles[0].Statements
		if len(st) != MaxStatementsPerRole+1 || st[0].Sid != OtherStatements || st[0].WouldDeny != 10 {
			t.Errorf("%d statements, first %+v", len(st), st[0])
		}
	})
	t.Run("a verdict without a decision is an error, not an allowed call", func(t *testing.T) {
		r := NewReport(ReportOptions{})
		r.Add(&rec, Verdict{Sids: []string{"A"}})
		r.Add(nil, Verdict{Decision: Allowed})
		if s := r.Summary(); s.Calls != 0 || s.Errors != 2 {
			t.Errorf("calls %d, errors %d", s.Calls, s.Errors)
		}
	})
	t.Run("error examples are bounded and the earliest by message", func(t *testing.T) {
		r := NewReport(ReportOptions{MaxErrors: 2})
		for _, m := range []string{"c", "a", "d", "b"} {
			r.AddError(nil, errors.New(m))
		}
		s := r.Summary()
		if s.Errors != 4 || len(s.ErrorExamples) != 2 || s.ErrorExamples[0].Error != "a" || s.ErrorExamples[1].Error != "b" {
			t.Errorf("errors %d, examples %+v", s.Errors, s.ErrorExamples)
		}
	})
	t.Run("clip cuts at a character boundary", func(t *testing.T) {
		s := clip(strings.Repeat("é", 300), MaxFieldBytes)
		if len(s) > MaxFieldBytes || !strings.HasSuffix(s, "…") || !strings.HasPrefix(s, "é") || strings.ContainsRune(s, '\uFFFD') {
			t.Errorf("clip: %d bytes %q", len(s), s)
		}
		if got := clip("a\xffb", 10); got != "a\uFFFDb" {
			t.Errorf("clip of invalid UTF-8: %q", got)
		}
	})
	t.Run("an empty report renders", func(t *testing.T) {
		var b bytes.Buffer
		if err := NewReport(ReportOptions{}).WriteMarkdown(&b); err != nil || !strings.Contains(b.String(), "0 calls evaluated") {
			t.Errorf("%v: %q", err, b.String())
		}
	})
}

// ExampleReport shows the pipeline a caller builds.
func ExampleReport() {
	doc, _ := lockpolicy.Render(lockpolicy.Lock{SourceIPs: []string{"203.0.113.10"}, VPCs: []string{"vpc-0123456789abcdef0"}}, lockpolicy.Options{})
	policy, _ := Compile(doc)
	inventory := map[string]Instance{"i-0abc1234def567890": {VPC: "vpc-0123456789abcdef0", PrivateIPv4: "10.0.1.23", Region: "us-east-1"}}
	report := NewReport(ReportOptions{})
	for _, src := range []string{"203.0.113.10", "198.51.100.77"} {
		rec, _ := cloudtrail.ParseRecord(call{src: src}.json())
		req, err := FromRecord(&rec, inventory[InstanceID(&rec)], Options{})
		if err != nil {
			report.AddError(&rec, err)
			continue
		}
		v := policy.Evaluate(&req)
		fmt.Println(src, v.Decision, v.Sids)
		report.Add(&rec, v)
	}
	s := report.Summary()
	fmt.Println(s.Calls, "calls,", s.WouldDeny, "would be denied")
	// Output:
	// 203.0.113.10 allowed []
	// 198.51.100.77 would-deny [DenyPublicCallsFromOtherAddresses]
	// 2 calls, 1 would be denied
}
