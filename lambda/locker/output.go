package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/defenders-cdk/defenders/internal/emf"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
	"github.com/defenders-cdk/defenders/internal/lockdown"
	"github.com/defenders-cdk/defenders/internal/locker"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// metricsNamespace is the CloudWatch namespace of the function's metrics;
// constructs/locker alarms on FallbackLocks in it.
const metricsNamespace = contract.LockerMetricsNamespace

// Metric names of the EMF line.
const (
	metricFallbackLocks = "FallbackLocks"
	metricErrors        = "Errors"
	metricLocksWritten  = "LocksWritten"
	metricLocksSkipped  = "LocksSkipped"
	metricAPICalls      = "APICalls"
	metricDurationMs    = "DurationMs"
)

// Bounds that keep one log line well under CloudWatch Logs' 256 KB event
// limit, however many roles an event touches.
const (
	maxLoggedResults   = 100
	maxLoggedSourceIPs = 32
	maxLoggedSkips     = 50
	maxLoggedRawEvent  = 1024
)

// Summary is the function's response to an invocation that succeeded.
type Summary struct {
	// Event is the kind of event handled.
	Event locker.EventKind `json:"event"`
	// Roles is the number of managed roles reconciled.
	Roles int `json:"roles"`
	// Written is the number of locks written (fallbacks included), AWSDenyAll
	// attachments included.
	Written int `json:"written"`
	// Fallback is the number of roles whose lock is a size fallback.
	Fallback int `json:"fallback"`
	// Unchanged is the number of roles whose lock was already right.
	Unchanged int `json:"unchanged"`
	// Skipped is the number of roles whose lock was not written because
	// their CloudFormation stack is deleting them (locker.ActionSkipped;
	// not the unmanaged roles, which are no results).
	Skipped int `json:"locksSkipped"`
	// Errors is the number of roles that failed (0 when this is returned).
	Errors int `json:"errors"`
	// APICalls is the number of AWS API calls, retries included.
	APICalls int `json:"apiCalls"`
	// DurationMs is the handling time in milliseconds.
	DurationMs float64 `json:"durationMs"`
}

// invocation is everything one invocation reports.
type invocation struct {
	raw      []byte
	report   locker.Report
	err      error
	began    time.Time
	duration time.Duration
	provider *lockdown.Provider
}

// written counts the roles whose lock was written, or that got AWSDenyAll.
func (inv invocation) written() int {
	n := 0
	for _, r := range inv.report.Results {
		if r.Written || r.Attached {
			n++
		}
	}
	return n
}

// errorCount is the Errors metric: the failed roles, or 1 if the
// invocation failed without a failed role (invalid event, listing failed).
func (inv invocation) errorCount() int {
	n := inv.report.Count(locker.ActionError)
	if n == 0 && inv.err != nil {
		n = 1
	}
	return n
}

func (inv invocation) durationMs() float64 {
	return float64(inv.duration.Microseconds()) / 1000
}

// summary is the response of a successful invocation.
func (inv invocation) summary() Summary {
	rep := inv.report
	return Summary{
		Event: rep.Event.Kind, Roles: len(rep.Results), Written: inv.written(),
		Fallback: rep.Count(locker.ActionFallback), Unchanged: rep.Count(locker.ActionUnchanged),
		Skipped: rep.Count(locker.ActionSkipped), Errors: rep.Count(locker.ActionError),
		APICalls: rep.TotalCalls, DurationMs: inv.durationMs(),
	}
}

// Error types of the function's error payloads.
const (
	errorTypeInvalidEvent     = "Locker.InvalidEvent"
	errorTypeUnsupportedEvent = "Locker.UnsupportedEvent"
	errorTypeRoleFailed       = "Locker.RoleFailed"
	errorTypeFailed           = "Locker.Failed"
)

// lambdaError is the error payload of a failed invocation: aws-lambda-go
// posts a messages.InvokeResponse_Error as is, so errorType says what
// failed.
func (inv invocation) lambdaError() error {
	typ := errorTypeFailed
	msg := lambdarun.OneLine(inv.err.Error())
	switch failed := inv.report.Count(locker.ActionError); {
	case errors.Is(inv.err, locker.ErrMalformedEvent):
		typ = errorTypeInvalidEvent
	case errors.Is(inv.err, locker.ErrUnsupportedEvent):
		typ = errorTypeUnsupportedEvent
	case failed > 0:
		typ = errorTypeRoleFailed
		msg = fmt.Sprintf("locker: %s event: %d of %d roles failed, their locks are untouched: %s",
			inv.report.Event.Kind, failed, len(inv.report.Results), msg)
	}
	return messages.InvokeResponse_Error{Type: typ, Message: msg}
}

// roleLog is one role's result in the log line.
type roleLog struct {
	Role          string        `json:"role"`
	Action        locker.Action `json:"action"`
	Mode          locker.Mode   `json:"mode,omitempty"`
	LockMode      string        `json:"lockMode,omitempty"`
	Written       bool          `json:"written"`
	Attached      bool          `json:"attached,omitempty"`
	Detached      bool          `json:"detached,omitempty"`
	Instances     int           `json:"instances"`
	SourceIPs     []string      `json:"sourceIps"`
	SourceIPCount int           `json:"sourceIpCount"`
	VPCs          []string      `json:"vpcs"`
	Size          int           `json:"size"`
	Budget        int           `json:"budget"`
	Passes        int           `json:"passes"`
	Reason        string        `json:"reason,omitempty"`
	Stack         string        `json:"stack,omitempty"`
	StackStatus   string        `json:"stackStatus,omitempty"`
	Notes         []string      `json:"notes,omitempty"`
	Error         string        `json:"error,omitempty"`
}

// roleLogs renders the results, failed roles first when there are more
// than maxLoggedResults, and says how many were left out.
func roleLogs(results []locker.Result) ([]roleLog, int) {
	picked := results
	if len(results) > maxLoggedResults {
		picked = make([]locker.Result, 0, maxLoggedResults)
		for _, pass := range []bool{true, false} {
			for _, r := range results {
				if (r.Action == locker.ActionError) == pass && len(picked) < maxLoggedResults {
					picked = append(picked, r)
				}
			}
		}
	}
	out := make([]roleLog, 0, len(picked))
	for _, r := range picked {
		ips := r.SourceIPs
		if len(ips) > maxLoggedSourceIPs {
			ips = ips[:maxLoggedSourceIPs]
		}
		out = append(out, roleLog{
			Role: r.Role, Action: r.Action, Mode: r.Mode, LockMode: string(r.LockMode), Written: r.Written,
			Attached: r.Attached, Detached: r.Detached, Instances: len(r.Instances),
			SourceIPs: ips, SourceIPCount: len(r.SourceIPs), VPCs: r.VPCs, Size: r.Size, Budget: r.Budget,
			Passes: r.Passes, Reason: r.Reason, Stack: r.Stack, StackStatus: r.StackStatus, Notes: r.Notes, Error: lambdarun.OneLine(r.Error),
		})
	}
	return out, len(results) - len(picked)
}

// emit writes the invocation's log line and metrics line to stdout.
func (a *app) emit(ctx context.Context, inv invocation) {
	requestID := lambdarun.RequestID(ctx)
	a.outMu.Lock()
	defer a.outMu.Unlock()
	a.logLine(ctx, requestID, inv)
	a.metricsLine(requestID, inv)
}

// logLine writes the one structured log line of an invocation.
func (a *app) logLine(ctx context.Context, requestID string, inv invocation) {
	rep := inv.report
	results, omitted := roleLogs(rep.Results)
	skipped := rep.Skipped
	if len(skipped) > maxLoggedSkips {
		skipped = skipped[:maxLoggedSkips]
	}
	calls := rep.Calls
	if calls == nil {
		calls = map[string]int{}
	}
	attrs := []slog.Attr{
		slog.String(lambdarun.KeyRequestID, requestID),
		slog.String("eventKind", string(rep.Event.Kind)),
		slog.Any("event", rep.Event),
		slog.Float64("durationMs", inv.durationMs()),
		slog.Int("roles", len(rep.Results)),
		slog.Int("written", inv.written()),
		slog.Int("fallback", rep.Count(locker.ActionFallback)),
		slog.Int("unchanged", rep.Count(locker.ActionUnchanged)),
		slog.Int("locksSkipped", rep.Count(locker.ActionSkipped)),
		slog.Int("errors", rep.Count(locker.ActionError)),
		slog.Int("apiCalls", rep.TotalCalls),
		slog.Int("retries", rep.Retries),
		slog.Any("calls", calls),
		slog.Any("results", results),
	}
	if omitted > 0 {
		attrs = append(attrs, slog.Int("resultsOmitted", omitted))
	}
	if len(skipped) > 0 {
		attrs = append(attrs, slog.Any("skipped", skipped), slog.Int("skippedCount", len(rep.Skipped)))
	}
	if len(rep.Notes) > 0 {
		attrs = append(attrs, slog.Any("notes", rep.Notes))
	}
	if p := inv.provider; p != nil {
		addr, expires := p.Address()
		ld := []any{slog.String("address", prefixString(addr)), slog.Time("expires", expires)}
		if err := p.LastError(); err != nil {
			ld = append(ld, slog.String("lastRefreshError", lambdarun.OneLine(err.Error())))
		}
		attrs = append(attrs, slog.Group("lockdown", ld...))
	}
	level, msg := slog.LevelInfo, "locks checked"
	switch {
	case inv.err != nil:
		level, msg = slog.LevelError, "locker failed"
		attrs = append(attrs, slog.String(lambdarun.KeyError, lambdarun.OneLine(inv.err.Error())))
		if rep.Event.Kind == "" {
			attrs = append(attrs, slog.String("rawEvent", truncate(inv.raw, maxLoggedRawEvent)))
		}
	case rep.Count(locker.ActionFallback) > 0:
		level, msg = slog.LevelWarn, "fallback locks in place"
	case rep.Count(locker.ActionSkipped) > 0:
		msg = "locks skipped: CloudFormation is deleting their roles"
	}
	a.log.LogAttrs(ctx, level, msg, attrs...)
}

// lockerMetrics are the metrics of every EMF line.
var lockerMetrics = append(emf.Counts(metricFallbackLocks, metricErrors, metricLocksWritten, metricLocksSkipped, metricAPICalls),
	emf.Metric{Name: metricDurationMs, Unit: emf.Milliseconds})

// metricsLine writes the invocation's CloudWatch Embedded Metric Format
// line (internal/emf): the metrics carry no dimensions, like the
// construct's alarm.
func (a *app) metricsLine(requestID string, inv invocation) {
	b, err := emf.Line(metricsNamespace, inv.began, requestID, lockerMetrics, map[string]any{
		metricFallbackLocks: inv.report.Count(locker.ActionFallback),
		metricErrors:        inv.errorCount(),
		metricLocksWritten:  inv.written(),
		metricLocksSkipped:  inv.report.Count(locker.ActionSkipped),
		metricAPICalls:      inv.report.TotalCalls,
		metricDurationMs:    inv.durationMs(),
		"eventKind":         string(inv.report.Event.Kind),
	})
	if err != nil {
		// Cannot happen with these types; say so on the log rather than lose it silently.
		a.log.Error("encode metrics", lambdarun.KeyError, err.Error())
		return
	}
	_, _ = a.out.Write(b)
}

// prefixString renders an address, "" before the first lock.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// truncate returns at most n bytes of raw as text.
func truncate(raw []byte, n int) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > n {
		return string(raw[:n]) + "..."
	}
	return string(raw)
}
