package detectorfn

// The handler in process, against scripted SNS and SQS: the phase budgets.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// fakeSNS and fakeSQS script the AWS APIs for in-process handler tests.
type fakeSNS struct {
	mu    sync.Mutex
	fails int // fail this many calls first
	calls int
	in    []*sns.PublishInput
}

func (f *fakeSNS) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return nil, &smithy.GenericAPIError{Code: "Throttled", Message: "Rate exceeded"}
	}
	f.in = append(f.in, in)
	return &sns.PublishOutput{}, nil
}

type fakeSQS struct {
	mu  sync.Mutex
	err error
	in  []*sqs.SendMessageInput
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.in = append(f.in, in)
	return &sqs.SendMessageOutput{}, nil
}

// TestInvokeDeadline checks that an invocation close to its deadline still
// dead-letters what it could not publish instead of timing out.
func TestInvokeDeadline(t *testing.T) {
	tests := []struct {
		name      string
		snsFails  int
		sqsErr    error
		timeout   time.Duration
		wantSNS   int // alerts published
		wantSQS   int // alerts dead-lettered
		wantError string
	}{
		{name: "published after retries", snsFails: 2, timeout: 30 * time.Second, wantSNS: 3},
		{name: "deadline cuts the retries, alerts dead-lettered", snsFails: 1 << 30, timeout: 2 * time.Second, wantSQS: 3},
		{name: "nothing delivered", snsFails: 1 << 30, sqsErr: errors.New("sqs down"), timeout: 2 * time.Second, wantError: ErrTypeUndelivered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snsAPI, sqsAPI := &fakeSNS{fails: tt.snsFails}, &fakeSQS{err: tt.sqsErr}
			var logs bytes.Buffer
			h := &Handler{
				proc:  detect.NewProcessor(detect.StaticInventory{ctt.InstanceID: {ID: ctt.InstanceID}}, detect.Config{}),
				pub:   &snsPublisher{api: snsAPI, topicARN: "arn:aws:sns:eu-west-1:1:t"},
				dlq:   &deadLetterQueue{api: sqsAPI, url: "https://sqs.example/q", topicARN: "arn:aws:sns:eu-west-1:1:t"},
				retry: detect.RetryPolicy{MaxAttempts: 1000, BaseDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
				log:   slog.New(slog.NewJSONHandler(&logs, nil)),
				out:   &logs,
			}
			event, _ := stolenBatch(3)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			began := time.Now()
			_, err := h.Invoke(ctx, event)
			if time.Since(began) > tt.timeout {
				t.Errorf("the handler ran past its deadline (%v)", time.Since(began))
			}
			if tt.wantError == "" && err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if tt.wantError != "" {
				var ie messages.InvokeResponse_Error
				if !errors.As(err, &ie) || ie.Type != tt.wantError {
					t.Fatalf("Invoke error %v, want type %s", err, tt.wantError)
				}
			}
			if len(snsAPI.in) != tt.wantSNS {
				t.Errorf("%d alerts published, want %d", len(snsAPI.in), tt.wantSNS)
			}
			if len(sqsAPI.in) != tt.wantSQS {
				t.Errorf("%d dead letters, want %d", len(sqsAPI.in), tt.wantSQS)
			}
		})
	}
}

// Stolen-credential fixtures, shared with the other detector tests (cloudtrailtest).
var stolenBatch = ctt.StolenBatch

// TestADeadLetteredAlertIsNotRaisedAgain checks that an alert sent to the
// dead-letter queue counts as delivered for deduplication (it will be
// redriven from there): during an SNS outage, repeats of the attack in
// later invocations add no dead letters, whereas an alert that reached
// neither SNS nor the queue is raised again by the retry.
func TestADeadLetteredAlertIsNotRaisedAgain(t *testing.T) {
	tests := []struct {
		name        string
		sqsErr      error
		wantDead    int // dead letters after the three invocations
		wantFailure int // invocations that failed
	}{
		{name: "SNS down: the first invocation dead-letters, the repeats are suppressed", wantDead: 3},
		{name: "SNS and the queue down: every repeat raises the alerts again", sqsErr: errors.New("sqs down"), wantFailure: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snsAPI, sqsAPI := &fakeSNS{fails: 1 << 30}, &fakeSQS{err: tt.sqsErr}
			h := &Handler{
				proc:  detect.NewProcessor(detect.StaticInventory{ctt.InstanceID: {ID: ctt.InstanceID}}, detect.Config{}),
				pub:   &snsPublisher{api: snsAPI, topicARN: "arn:aws:sns:eu-west-1:1:t"},
				dlq:   &deadLetterQueue{api: sqsAPI, url: "https://sqs.example/q", topicARN: "arn:aws:sns:eu-west-1:1:t"},
				retry: detect.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond},
				log:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
				out:   io.Discard,
			}
			event, _ := stolenBatch(3)
			failed := 0
			for range 3 {
				if _, err := h.Invoke(t.Context(), event); err != nil {
					failed++
				}
			}
			if len(sqsAPI.in) != tt.wantDead || failed != tt.wantFailure {
				t.Errorf("%d dead letters and %d failed invocations, want %d and %d", len(sqsAPI.in), failed, tt.wantDead, tt.wantFailure)
			}
			if want := 3 * 3 * 2; tt.sqsErr != nil && snsAPI.calls != want {
				t.Errorf("%d publish attempts, want %d: undelivered alerts must be raised again", snsAPI.calls, want)
			}
		})
	}
}
