package shadow

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// The shadow report log line: what the detector's shadow runner
// (internal/shadowrun) logs once per invocation and LogReader reads back.
// One JSON object on one line, in the vocabulary of the Lambdas' log lines
// (internal/lambdarun: "time", "level", "msg", "requestId"):
//
//	{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"shadow report","requestId":"...",
//	 "mode":"nat-egress","proposal":"lock:nat-egress","report":{...Summary...}}
//
// Find the lines with the filter pattern '"shadow report"' (aws logs
// filter-log-events, CloudWatch Logs Insights).
const ReportMessage = "shadow report"

// ModePolicy is LogLine.Mode for a proposed static policy document (an SCP
// or any deny document) rather than a lock mode.
const ModePolicy = "policy"

// LogLine is one shadow report log line.
type LogLine struct {
	// Time is when the report was logged (RFC 3339).
	Time string `json:"time"`
	// Level is "INFO".
	Level string `json:"level"`
	// Msg is ReportMessage.
	Msg string `json:"msg"`
	// RequestID is the Lambda request id of the invocation, if any.
	RequestID string `json:"requestId,omitempty"`
	// Mode is the proposed lock mode (a lockpolicy.Mode) or ModePolicy.
	Mode string `json:"mode"`
	// Proposal names what was evaluated, precisely enough that reports of
	// different proposals are never merged: "lock:<mode>" (with
	// "+trust:<hash>" when the app trusts egress prefixes or shared
	// endpoints), or "policy:sha256:<hash>" of a static document.
	Proposal string `json:"proposal"`
	// Report is what the invocation's calls would meet.
	Report Summary `json:"report"`
}

// Input bounds of LogReader.
const (
	// MaxLogLineBytes bounds one line of a log file: a page of `aws logs
	// filter-log-events --output text` (up to 1 MB of messages) is one
	// line.
	MaxLogLineBytes = 16 << 20
	// MaxLogDocumentBytes bounds a JSON document (the output of `aws logs
	// filter-log-events` or `aws logs get-query-results`, an exported
	// CloudWatch Logs Insights table).
	MaxLogDocumentBytes = 512 << 20
	// maxNesting bounds how deep LogReader looks into JSON documents for
	// messages.
	maxNesting = 8
)

// reportMarker is how every shadow report line spells its message: a
// token that carries it but does not parse is a report cut short, an
// error, not a line to skip.
var reportMarker = []byte(`"msg":"` + ReportMessage + `"`)

// ReportLog is what a LogReader read: the merged report and where it came
// from.
type ReportLog struct {
	// Summary merges every report read.
	Summary Summary `json:"summary"`
	// Reports counts the shadow report lines merged.
	Reports int64 `json:"reports"`
	// Skipped counts the lines (or messages) that are not shadow reports.
	Skipped int64 `json:"skipped"`
	// Proposals lists what the reports evaluated, sorted; more than one
	// means reports of different proposals were mixed.
	Proposals []ProposalCount `json:"proposals"`
	// From and To are the times of the earliest and the latest report
	// (RFC 3339, UTC), empty without reports.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// ProposalCount is one proposal and how many reports evaluated it.
type ProposalCount struct {
	Proposal string `json:"proposal"`
	Mode     string `json:"mode"`
	Reports  int64  `json:"reports"`
}

// LogReader reads shadow report log lines and merges their reports
// (Merger). It accepts what CloudWatch Logs tools produce:
//
//   - plain lines, one log message each, in which a shadow report line is
//     a JSON object whose msg is ReportMessage, possibly after a prefix
//     (the timestamp and stream of `aws logs tail`); lines may hold several
//     messages separated by tabs (the output of `aws logs
//     filter-log-events --output text --query 'events[].message'`, or with
//     the timestamp: 'events[].[timestamp,message]');
//   - a JSON document: the output of `aws logs filter-log-events` (
//     {"events":[{"message":...}]}), a JSON list of messages (the same with
//     --query 'events[].message'), the output of `aws logs
//     get-query-results` ({"results":[[{"field":"@message","value":...}]]})
//     and a CloudWatch Logs Insights table exported as JSON
//     ([{"@timestamp":...,"@message":...}]).
//
// Messages that are not shadow reports are skipped and counted (blank
// lines are not counted). A shadow report that does not parse (cut short
// by a log size limit, edited by hand) or whose report is not a valid
// Summary (Summary.Validate) is an error naming its line, or its place in
// the document. A LogReader is not safe for concurrent use.
type LogReader struct {
	m         *Merger
	reports   int64
	skipped   int64
	proposals map[string]*ProposalCount
	from, to  time.Time
}

// NewLogReader returns a LogReader whose Merger is bounded by o.
func NewLogReader(o ReportOptions) *LogReader {
	return &LogReader{m: NewMerger(o), proposals: map[string]*ProposalCount{}}
}

// ReadReports reads the shadow report lines of r and returns their merged
// report (default bounds). Reports of different proposals are an error:
// they answer different questions.
func ReadReports(r io.Reader) (Summary, error) {
	lr := NewLogReader(ReportOptions{})
	if err := lr.Read(r); err != nil {
		return Summary{}, err
	}
	l := lr.Log()
	if err := l.MixedProposals(); err != nil {
		return Summary{}, err
	}
	return l.Summary, nil
}

// MixedProposals returns an error naming the proposals when l holds
// reports of more than one.
func (l ReportLog) MixedProposals() error {
	if len(l.Proposals) < 2 {
		return nil
	}
	names := make([]string, len(l.Proposals))
	for i, p := range l.Proposals {
		names[i] = fmt.Sprintf("%s (%d reports)", p.Proposal, p.Reports)
	}
	return fmt.Errorf("shadow: reports of %d different proposals were mixed: %s; read each proposal's reports on its own (filter the logs by time)",
		len(names), strings.Join(names, ", "))
}

// Log returns what was read so far.
func (lr *LogReader) Log() ReportLog {
	l := ReportLog{Summary: lr.m.Summary(), Reports: lr.reports, Skipped: lr.skipped, Proposals: []ProposalCount{}}
	for _, k := range slices.Sorted(maps.Keys(lr.proposals)) {
		l.Proposals = append(l.Proposals, *lr.proposals[k])
	}
	if lr.reports > 0 {
		l.From, l.To = lr.from.UTC().Format(time.RFC3339Nano), lr.to.UTC().Format(time.RFC3339Nano)
	}
	return l
}

// errLineTooLong is readLine's error for a line over MaxLogLineBytes.
var errLineTooLong = errors.New("line too long")

// Read reads one stream (see LogReader). On error, what was merged before
// the error stays merged.
func (lr *LogReader) Read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first := true // no line with text yet
	for n := 1; ; n++ {
		line, err := readLine(br, MaxLogLineBytes)
		switch {
		case errors.Is(err, errLineTooLong):
			return fmt.Errorf("shadow: line %d: longer than %d bytes", n, MaxLogLineBytes)
		case err == io.EOF && line == nil:
			return nil
		case err != nil && err != io.EOF:
			return fmt.Errorf("shadow: line %d: %w", n, err)
		}
		t := bytes.TrimSpace(line)
		if first && len(t) > 0 && (t[0] == '{' || t[0] == '[') && !json.Valid(t) && !bytes.Contains(t, reportMarker) {
			// Not a JSON line: the first line of a JSON document.
			return lr.readDocument(io.MultiReader(bytes.NewReader(line), bytes.NewReader([]byte{'\n'}), br))
		}
		first = first && len(t) == 0
		if err := lr.text(fmt.Sprintf("line %d", n), t, 0); err != nil {
			return err
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readDocument reads r as one JSON document.
func (lr *LogReader) readDocument(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxLogDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("shadow: %w", err)
	}
	if len(b) > MaxLogDocumentBytes {
		return fmt.Errorf("shadow: a JSON document larger than %d bytes", MaxLogDocumentBytes)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		var e any
		err := json.Unmarshal(b, &e)
		return fmt.Errorf("shadow: the input is neither log lines nor a JSON document: %w", err)
	}
	return lr.value("the document", b, 0)
}

// readLine returns the next line without its end of line; io.EOF with
// the last line if it has no end of line, or with nil at the end.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max+2 { // the line, \r and \n
			return nil, errLineTooLong
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && err != io.EOF:
			return nil, err
		case err == io.EOF && len(line) == 0:
			return nil, io.EOF
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		if len(line) > max {
			return nil, errLineTooLong
		}
		return line, err
	}
}

// text handles one message or line of text: a JSON value, or messages
// separated by tabs, each possibly after a prefix.
func (lr *LogReader) text(where string, b []byte, depth int) error {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			continue
		}
		if isJSONValue(t) {
			if err := lr.value(where, t, depth); err != nil {
				return err
			}
			continue
		}
		for field := range bytes.SplitSeq(t, []byte{'\t'}) {
			if err := lr.token(where, bytes.TrimSpace(field), depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// token handles one message.
func (lr *LogReader) token(where string, t []byte, depth int) error {
	switch {
	case len(t) == 0:
		return nil
	case isJSONValue(t):
		return lr.value(where, t, depth)
	case bytes.Contains(t, reportMarker):
		if i := bytes.IndexByte(t, '{'); i >= 0 && json.Valid(t[i:]) {
			return lr.value(where, t[i:], depth)
		}
		return fmt.Errorf("shadow: %s: a shadow report that is not one JSON object (cut short by a log size limit?)", where)
	}
	lr.skipped++
	return nil
}

// isJSONValue reports whether t is one JSON object or array.
func isJSONValue(t []byte) bool {
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t)
}

// container is the part of a JSON object LogReader looks at.
type container struct {
	Msg       *string           `json:"msg"`
	Events    []json.RawMessage `json:"events"`
	Results   [][]resultField   `json:"results"`
	Message   *string           `json:"message"`
	AtMessage *string           `json:"@message"`
}

type resultField struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// value handles one valid JSON object or array.
func (lr *LogReader) value(where string, b []byte, depth int) error {
	if depth > maxNesting {
		lr.skipped++
		return nil
	}
	if b[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return fmt.Errorf("shadow: %s: %w", where, err)
		}
		for i, item := range items {
			if err := lr.item(fmt.Sprintf("%s[%d]", where, i), item, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	var c container
	if err := json.Unmarshal(b, &c); err != nil {
		// A field of another type than expected: not a container.
		if !bytes.Contains(b, reportMarker) {
			lr.skipped++
			return nil
		}
		return fmt.Errorf("shadow: %s: malformed shadow report: %w", where, err)
	}
	switch {
	case c.Msg != nil && *c.Msg == ReportMessage:
		return lr.report(where, b)
	case c.Events != nil:
		for i, e := range c.Events {
			if err := lr.item(fmt.Sprintf("%s events[%d]", where, i), e, depth+1); err != nil {
				return err
			}
		}
	case c.Results != nil:
		for i, row := range c.Results {
			for _, f := range row {
				if f.Field == "@message" {
					if err := lr.text(fmt.Sprintf("%s results[%d]", where, i), []byte(f.Value), depth+1); err != nil {
						return err
					}
				}
			}
		}
	case c.AtMessage != nil:
		return lr.text(where, []byte(*c.AtMessage), depth+1)
	case c.Message != nil:
		return lr.text(where, []byte(*c.Message), depth+1)
	default:
		lr.skipped++
	}
	return nil
}

// item handles an element of a JSON list: a message, or an object.
func (lr *LogReader) item(where string, b json.RawMessage, depth int) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("shadow: %s: %w", where, err)
		}
		return lr.text(where, []byte(s), depth)
	case len(b) > 0 && (b[0] == '{' || b[0] == '['):
		return lr.value(where, b, depth)
	}
	lr.skipped++
	return nil
}

// report merges one shadow report line.
func (lr *LogReader) report(where string, b []byte) error {
	var line struct {
		LogLine
		Report *Summary `json:"report"`
	}
	if err := json.Unmarshal(b, &line); err != nil {
		return fmt.Errorf("shadow: %s: malformed shadow report: %w", where, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("shadow: %s: malformed shadow report: "+format, append([]any{where}, args...)...)
	}
	at, err := time.Parse(time.RFC3339Nano, line.Time)
	switch {
	case err != nil:
		return bad("time %q is not an RFC 3339 time", clip(line.Time, 64))
	case line.Mode == "":
		return bad("no mode")
	case line.Proposal == "":
		return bad("no proposal")
	case line.Report == nil:
		return bad("no report")
	}
	if err := line.Report.Validate(); err != nil {
		return bad("%w", err)
	}
	lr.m.Add(*line.Report)
	lr.reports++
	proposal := clip(line.Proposal, MaxFieldBytes)
	p := lr.proposals[proposal]
	if p == nil {
		if len(lr.proposals) >= maxProposals {
			return bad("more than %d different proposals", maxProposals)
		}
		p = &ProposalCount{Proposal: proposal, Mode: clip(line.Mode, MaxFieldBytes)}
		lr.proposals[proposal] = p
	}
	p.Reports++
	if lr.reports == 1 || at.Before(lr.from) {
		lr.from = at
	}
	if lr.reports == 1 || at.After(lr.to) {
		lr.to = at
	}
	return nil
}

// maxProposals bounds the distinct proposals a LogReader tracks.
const maxProposals = 100

// WriteMarkdown renders the merged report (Summary.WriteMarkdown), then
// where it came from: the proposals, the number of reports and their time
// span, the lines skipped.
func (l ReportLog) WriteMarkdown(w io.Writer) error {
	if err := l.Summary.WriteMarkdown(w); err != nil {
		return err
	}
	b := bufio.NewWriter(w)
	b.WriteString("\n### Source\n\n")
	fmt.Fprintf(b, "%s", plural(l.Reports, "shadow report"))
	if l.Reports > 0 {
		fmt.Fprintf(b, " from %s to %s", code(l.From), code(l.To))
	}
	if len(l.Proposals) > 0 {
		names := make([]string, len(l.Proposals))
		for i, p := range l.Proposals {
			names[i] = code(p.Proposal)
			if len(l.Proposals) > 1 {
				names[i] += fmt.Sprintf(" (%d)", p.Reports)
			}
		}
		fmt.Fprintf(b, ", proposal %s", strings.Join(names, ", "))
	}
	fmt.Fprintf(b, "; %s skipped (not shadow reports).\n", plural(l.Skipped, "log message"))
	return b.Flush()
}

// WriteJSON writes l as indented JSON.
func (l ReportLog) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(l)
}
