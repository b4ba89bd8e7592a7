package detectorfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/defenders-cdk/defenders/internal/detect"
)

// SNSAPI is the part of the SNS client the detector uses.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SQSAPI is the part of the SQS client the detector uses.
type SQSAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var (
	_ SNSAPI = (*sns.Client)(nil)
	_ SQSAPI = (*sqs.Client)(nil)
)

// Message size budgets. SNS and SQS both accept 256 KiB per message,
// attributes included; the margins cover the subject and attributes
// (SNS) and the dead-letter envelope (SQS).
const (
	snsMessageBudget = detect.SNSMaxMessageBytes - 2<<10
	sqsMaxMessage    = 256 << 10
	dlqAlertBudget   = sqsMaxMessage - 8<<10
	maxErrorText     = 2 << 10
)

// snsPublisher publishes alerts to the topic. It implements
// detect.Publisher.
type snsPublisher struct {
	api      SNSAPI
	topicARN string
}

// Publish sends one alert: the subject from Alert.Subject, the message
// from Alert.Marshal within the SNS size limit, and "severity" and "type"
// message attributes for subscription filter policies. Errors that no
// retry can fix are marked detect.Permanent.
func (p *snsPublisher) Publish(ctx context.Context, a detect.Alert) error {
	msg, err := a.Marshal(snsMessageBudget)
	if err != nil {
		return detect.Permanent(fmt.Errorf("sns: publish alert %s: %w", a.UniqID, err))
	}
	_, err = p.api.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(p.topicARN),
		Subject:  aws.String(a.Subject()),
		Message:  aws.String(string(safeText(msg))),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"severity": {DataType: aws.String("String"), StringValue: aws.String(string(a.Severity))},
			"type":     {DataType: aws.String("String"), StringValue: aws.String(a.Type)},
		},
	})
	if err != nil {
		err = fmt.Errorf("sns: publish alert %s: %w", a.UniqID, err)
		if permanentSNSError(err) {
			return detect.Permanent(err)
		}
		return err
	}
	return nil
}

// permanentSNSError reports SNS errors that retrying the same request
// cannot fix (the alert then goes to the dead-letter queue at once).
func permanentSNSError(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidParameter", "InvalidParameterValue", "ParameterValueInvalid", "ValidationError",
		"AuthorizationError", "AccessDenied", "AccessDeniedException", "NotFound",
		"InvalidSecurity", "EndpointDisabled", "KMSAccessDenied", "KMSDisabled",
		"KMSInvalidState", "KMSNotFound", "KMSOptInRequired":
		return true
	}
	return false
}

// deadLetterQueue sends undeliverable alerts to the SQS dead-letter queue.
type deadLetterQueue struct {
	api      SQSAPI
	url      string
	topicARN string
}

// DeadLetter is the body of an alert's dead-letter message. The same queue
// also receives, from Lambda itself, whole events whose invocation failed
// after its retries (those carry Lambda's RequestID, ErrorCode and
// ErrorMessage message attributes instead); the "kind" attribute and field
// tell them apart. To replay an alert, publish Alert to TopicARN with
// Subject.
type DeadLetter struct {
	Kind      string          `json:"kind"`                 // "alert"
	Error     string          `json:"error"`                // why publishing failed (last error)
	Attempts  int             `json:"attempts"`             // publish attempts made
	TopicARN  string          `json:"topic_arn"`            // where the alert should have gone
	Subject   string          `json:"subject"`              // its SNS subject
	RequestID string          `json:"request_id,omitempty"` // the Lambda invocation
	FailedAt  string          `json:"failed_at"`            // RFC 3339
	Alert     json.RawMessage `json:"alert"`                // the SNS message, as it would have been published
}

// deadLetterKindAlert is DeadLetter.Kind and the "kind" attribute of alert
// dead letters.
const deadLetterKindAlert = "alert"

// send sends one failed alert to the queue.
func (q *deadLetterQueue) send(ctx context.Context, f detect.FailedAlert, requestID string, now time.Time) error {
	a := &f.Alert
	body, err := deadLetterBody(f, q.topicARN, requestID, now)
	if err != nil {
		return fmt.Errorf("sqs: dead-letter alert %s: %w", a.UniqID, err)
	}
	_, err = q.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(q.url),
		MessageBody: aws.String(string(body)),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"kind":     {DataType: aws.String("String"), StringValue: aws.String(deadLetterKindAlert)},
			"type":     {DataType: aws.String("String"), StringValue: aws.String(nonBlank(a.Type))},
			"severity": {DataType: aws.String("String"), StringValue: aws.String(nonBlank(string(a.Severity)))},
			"uniq_id":  {DataType: aws.String("String"), StringValue: aws.String(nonBlank(a.UniqID))},
		},
	})
	if err != nil {
		return fmt.Errorf("sqs: dead-letter alert %s: %w", a.UniqID, err)
	}
	return nil
}

// deadLetterBody renders the DeadLetter of f within the SQS size limit. If
// even the truncated alert does not fit, the alert is replaced by its
// identifying fields, from which the CloudTrail event can be found again.
func deadLetterBody(f detect.FailedAlert, topicARN, requestID string, now time.Time) ([]byte, error) {
	errText := "unknown error"
	if f.Err != nil {
		errText = truncate(f.Err.Error(), maxErrorText)
	}
	alert, err := f.Alert.Marshal(dlqAlertBudget)
	if err != nil {
		alert, err = json.Marshal(map[string]any{
			"type": f.Alert.Type, "uniq_id": f.Alert.UniqID, "instance_id": f.Alert.InstanceID,
			"severity": f.Alert.Severity, "event_id": f.Alert.EventID, "event_time": f.Alert.EventTime,
			"source_ip": truncate(f.Alert.SourceIP, 256), "account": f.Alert.Account, "region": f.Alert.Region,
			"truncated": true,
		})
		if err != nil {
			return nil, fmt.Errorf("marshal the alert summary: %w", err)
		}
	}
	body, err := json.Marshal(DeadLetter{
		Kind:      deadLetterKindAlert,
		Error:     errText,
		Attempts:  f.Attempts,
		TopicARN:  topicARN,
		Subject:   f.Alert.Subject(),
		RequestID: requestID,
		FailedAt:  now.UTC().Format(time.RFC3339Nano),
		Alert:     alert,
	})
	if err != nil {
		return nil, fmt.Errorf("marshal the dead letter: %w", err)
	}
	if len(body) > sqsMaxMessage {
		return nil, fmt.Errorf("dead letter is %d bytes, over the %d-byte limit", len(body), sqsMaxMessage)
	}
	return safeText(body), nil
}

// nonBlank returns s, or "-" for "" (SQS rejects empty attribute values).
func nonBlank(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// safeText escapes, in JSON text, the characters SNS and SQS refuse in a
// message (U+FFFE and U+FFFF; JSON already escapes control characters).
// They can only occur inside JSON strings, where \uXXXX means the same.
func safeText(b []byte) []byte {
	if !bytes.Contains(b, []byte("\xef\xbf\xbe")) && !bytes.Contains(b, []byte("\xef\xbf\xbf")) {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\xef\xbf\xbe"), []byte(`\ufffe`))
	return bytes.ReplaceAll(b, []byte("\xef\xbf\xbf"), []byte(`\uffff`))
}
