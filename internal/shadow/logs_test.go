package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// reportLines renders summaries as the runner logs them.
func reportLines(t *testing.T, proposal string, sums []Summary) []string {
	t.Helper()
	lines := make([]string, len(sums))
	for i, s := range sums {
		lines[i] = string(jsonOf(t, LogLine{Time: time.Date(2026, 12, 1, 10, i, 0, 0, time.UTC).Format(time.RFC3339Nano),
			Level: "INFO", Msg: ReportMessage, RequestID: fmt.Sprintf("req-%d", i), Mode: "nat-egress", Proposal: proposal, Report: s}))
	}
	return lines
}

// noise are other lines of the detector's log group.
var noise = []string{
	`START RequestId: 8f5a Version: $LATEST`,
	`{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"invocation done","requestId":"req-0","stats":{"Events":3}}`,
	`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Defenders/Detector","Dimensions":[[]],"Metrics":[{"Name":"WouldDeny","Unit":"Count"}]}]},"WouldDeny":2}`,
	`{"time":"2026-12-01T10:00:00Z","level":"WARN","msg":"undecided record","note":"not a shadow report"}`,
	`END RequestId: 8f5a`,
}

func TestReadReportsAcceptsWhatTheLogToolsProduce(t *testing.T) {
	w := generate(t, 3000, 2, 8, 11)
	sums, want := parts(t, w, ReportOptions{}, 6, func(i int) int { return i / 500 })
	lines := reportLines(t, "lock:nat-egress", sums)

	var plain, tabbed, tabbedWithTime, tail strings.Builder
	var messages []string
	type event struct {
		LogStreamName string `json:"logStreamName"`
		Timestamp     int64  `json:"timestamp"`
		Message       string `json:"message"`
		EventID       string `json:"eventId"`
	}
	var events []event
	var results [][]resultField
	var table []map[string]string
	for _, l := range lines {
		for _, n := range noise {
			messages = append(messages, n+"\n")
		}
		messages = append(messages, l+"\n") // Lambda keeps the end of line in the message
	}
	for i, m := range messages {
		plain.WriteString(m)
		tabbed.WriteString(m) // --output text: messages separated by tabs, their own newlines kept
		if i < len(messages)-1 {
			tabbed.WriteString("\t")
		}
		fmt.Fprintf(&tabbedWithTime, "%d\t%s", 1764583200000+int64(i), m)
		fmt.Fprintf(&tail, "2026-12-01T10:00:00.000000+00:00 2026/12/01/[$LATEST]0123456789abcdef %s", m)
		events = append(events, event{LogStreamName: "2026/12/01/[$LATEST]0123456789abcdef", Timestamp: int64(i), Message: m, EventID: fmt.Sprint(i)})
		results = append(results, []resultField{{Field: "@timestamp", Value: "2026-12-01 10:00:00.000"}, {Field: "@message", Value: m},
			{Field: "@ptr", Value: "Cm8KNgoy"}})
		table = append(table, map[string]string{"@timestamp": "2026-12-01 10:00:00.000", "@message": m})
	}
	indent := func(v any) string {
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	wrapped := new(strings.Builder)
	for _, m := range messages {
		wrapped.Write(jsonOf(t, map[string]any{"timestamp": "2026-12-01T10:00:00Z", "level": "INFO", "message": m}))
		wrapped.WriteString("\n")
	}
	tests := []struct {
		name        string
		input       string
		wantSkipped int64
	}{
		{"plain log lines", plain.String(), 30},
		{"aws logs filter-log-events --output text --query 'events[].message'", tabbed.String(), 30},
		{"the same with 'events[].[timestamp,message]'", tabbedWithTime.String(), 30 + 36},
		{"aws logs tail", tail.String(), 30},
		{"aws logs filter-log-events (JSON)", indent(map[string]any{"events": events, "searchedLogStreams": []any{}}), 30},
		{"the same after blank lines", "\n\n" + indent(map[string]any{"events": events}), 30},
		{"aws logs filter-log-events --query 'events[].message' (JSON)", indent(messages), 30},
		{"aws logs get-query-results", indent(map[string]any{"results": results, "status": "Complete",
			"statistics": map[string]float64{"recordsMatched": 36}}), 30},
		{"a CloudWatch Logs Insights table exported as JSON", indent(table), 30},
		{"Lambda's JSON log format", wrapped.String(), 30},
		{"only the reports, filtered with '\"shadow report\"'", strings.Join(lines, "\n"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lr := NewLogReader(ReportOptions{})
			if err := lr.Read(strings.NewReader(tc.input)); err != nil {
				t.Fatal(err)
			}
			l := lr.Log()
			if g, e := jsonOf(t, l.Summary), jsonOf(t, want); !bytes.Equal(g, e) {
				t.Fatalf("merged report:\n%s\nwant:\n%s", g, e)
			}
			if l.Reports != 6 || l.Skipped != tc.wantSkipped {
				t.Errorf("%d reports and %d skipped, want 6 and %d", l.Reports, l.Skipped, tc.wantSkipped)
			}
			if len(l.Proposals) != 1 || l.Proposals[0] != (ProposalCount{Proposal: "lock:nat-egress", Mode: "nat-egress", Reports: 6}) {
				t.Errorf("proposals %+v", l.Proposals)
			}
			if l.From != "2026-12-01T10:00:00Z" || l.To != "2026-12-01T10:05:00Z" {
				t.Errorf("from %s to %s", l.From, l.To)
			}
		})
	}

	t.Run("ReadReports returns the merged report", func(t *testing.T) {
		s, err := ReadReports(strings.NewReader(plain.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(jsonOf(t, s), jsonOf(t, want)) {
			t.Fatal("ReadReports differs from LogReader")
		}
	})

	t.Run("files read one after the other merge like one", func(t *testing.T) {
		lr := NewLogReader(ReportOptions{})
		for _, part := range []string{strings.Join(lines[:2], "\n"), indent(messages[:0]), strings.Join(lines[2:], "\n")} {
			if err := lr.Read(strings.NewReader(part)); err != nil {
				t.Fatal(err)
			}
		}
		if l := lr.Log(); l.Reports != 6 || !bytes.Equal(jsonOf(t, l.Summary), jsonOf(t, want)) {
			t.Fatalf("%d reports, summary differs", l.Reports)
		}
	})
}

func TestReadReportsRefusesMalformedReports(t *testing.T) {
	w := generate(t, 300, 1, 3, 12)
	sums, _ := parts(t, w, ReportOptions{}, 2, func(i int) int { return i % 2 })
	lines := reportLines(t, "lock:nat-egress", sums)
	edit := func(line string, f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		return string(jsonOf(t, m))
	}
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"a report cut short", noise[0] + "\n" + lines[0] + "\n" + lines[1][:len(lines[1])/2] + "\n",
			"line 3: a shadow report that is not one JSON object"},
		{"a report cut short on the first line", lines[0][:100] + "\n" + lines[1],
			"line 1: a shadow report that is not one JSON object"},
		{"a report whose counts do not add up", lines[0] + "\n" + edit(lines[1], func(m map[string]any) {
			m["report"].(map[string]any)["calls"] = 1e6
		}), "line 2: malformed shadow report: shadow: invalid shadow report: totals"},
		{"a report without a proposal", edit(lines[0], func(m map[string]any) { delete(m, "proposal") }),
			"line 1: malformed shadow report: no proposal"},
		{"a report without a report", edit(lines[0], func(m map[string]any) { delete(m, "report") }),
			"line 1: malformed shadow report: no report"},
		{"a report with a bad time", edit(lines[0], func(m map[string]any) { m["time"] = "yesterday" }),
			`line 1: malformed shadow report: time "yesterday"`},
		{"a report of the wrong type", edit(lines[0], func(m map[string]any) { m["report"] = "none" }),
			"line 1: malformed shadow report: json: cannot unmarshal"},
		{"a cut report inside a CLI document", `{"events": [{"message": "x"}, {"message": ` + string(jsonOf(t, lines[0][:80])) + `}]}`,
			"line 1 events[1]: a shadow report that is not one JSON object"},
		{"a cut report inside a pretty-printed CLI document", "\n{\n  \"events\": [{\"message\": \"x\"}, {\"message\": " + string(jsonOf(t, lines[0][:80])) + "}]\n}\n",
			"the document events[1]: a shadow report that is not one JSON object"},
		{"a document that is not JSON", "{\n  \"events\": [\n", "neither log lines nor a JSON document"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is an error naming where", func(t *testing.T) {
			_, err := ReadReports(strings.NewReader(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadReports = %v, want an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("reports of two proposals are not merged", func(t *testing.T) {
		other := reportLines(t, "policy:sha256:0123456789ab", sums[:1])
		_, err := ReadReports(strings.NewReader(lines[0] + "\n" + other[0] + "\n"))
		if err == nil || !strings.Contains(err.Error(), "2 different proposals were mixed: lock:nat-egress (1 reports), policy:sha256:0123456789ab (1 reports)") {
			t.Fatalf("ReadReports = %v", err)
		}
	})

	t.Run("a line over the bound", func(t *testing.T) {
		lr := NewLogReader(ReportOptions{})
		err := lr.Read(strings.NewReader("x\n" + strings.Repeat("y", MaxLogLineBytes+1) + "\n"))
		if err == nil || !strings.Contains(err.Error(), "line 2: longer than") {
			t.Fatalf("Read = %v", err)
		}
	})

	t.Run("input without reports is no error", func(t *testing.T) {
		lr := NewLogReader(ReportOptions{})
		if err := lr.Read(strings.NewReader(strings.Join(noise, "\n"))); err != nil {
			t.Fatal(err)
		}
		if l := lr.Log(); l.Reports != 0 || l.Skipped != int64(len(noise)) || l.From != "" || len(l.Proposals) != 0 {
			t.Fatalf("%+v", l)
		}
	})
}

func TestReportLogMarkdown(t *testing.T) {
	w := generate(t, 300, 1, 3, 13)
	sums, _ := parts(t, w, ReportOptions{}, 2, func(i int) int { return i % 2 })
	lr := NewLogReader(ReportOptions{})
	if err := lr.Read(strings.NewReader(strings.Join(append(reportLines(t, "lock:nat-egress", sums), noise[0]), "\n"))); err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := lr.Log().WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Shadow mode: what the policy would deny",
		"### Source\n\n2 shadow reports from `2026-12-01T10:00:00Z` to `2026-12-01T10:01:00Z`, proposal `lock:nat-egress`; 1 log message skipped (not shadow reports).",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md.String())
		}
	}
}
