package lambdatest

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"unicode/utf8"
)

// NamespaceSNS is SNS's API version namespace.
const NamespaceSNS = "http://sns.amazonaws.com/doc/2010-03-31/"

// SNS limits the fake enforces.
const (
	// SNSMaxMessageBytes is the largest message SNS accepts.
	SNSMaxMessageBytes = 256 * 1024
	// SNSMaxSubjectChars is the longest subject SNS accepts.
	SNSMaxSubjectChars = 100
)

// SNSMessage is one message an SNS fake accepted.
type SNSMessage struct {
	// MessageID is the id the fake answered.
	MessageID string
	// TopicARN is the TopicArn parameter.
	TopicARN string
	// Subject is the Subject parameter.
	Subject string
	// Message is the Message parameter.
	Message string
	// Attributes maps message attribute names to their string values.
	Attributes map[string]string
	// AccessKeyID is the access key the request was signed with.
	AccessKeyID string
}

// SNS is a fake SNS endpoint (the awsQuery protocol, like IAM and STS)
// that accepts Publish and records the messages. Faults are injected and
// calls read through the embedded Service.
type SNS struct {
	*Service

	mu       sync.Mutex
	messages []SNSMessage
	failure  *APIError
}

// NewSNS starts an SNS fake and closes it when the test ends.
func NewSNS(t testing.TB) *SNS {
	t.Helper()
	s := &SNS{Service: NewService(t, "sns", ProtocolQuery, NamespaceSNS)}
	s.Handle("Publish", s.publish)
	return s
}

// Env returns the variable that points the AWS SDK at the fake.
func (s *SNS) Env() map[string]string {
	return map[string]string{"AWS_ENDPOINT_URL_SNS": s.URL}
}

// TopicARN returns the ARN of a topic of Account in Region.
func TopicARN(name string) string {
	return "arn:aws:sns:" + Region + ":" + Account + ":" + name
}

// Throttled returns SNS's throttling error (Throttled, 400).
func (s *SNS) Throttled() *APIError {
	return Errorf(http.StatusBadRequest, "Throttled", "Rate exceeded")
}

// SetFailure makes every Publish answer e from now on (an outage), until
// SetFailure(nil). Injected faults (InjectFaults) are answered first.
func (s *SNS) SetFailure(e *APIError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = e
}

// Messages returns the messages accepted so far.
func (s *SNS) Messages() []SNSMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SNSMessage, len(s.messages))
	copy(out, s.messages)
	return out
}

// publish implements sns:Publish with SNS's parameter validation.
func (s *SNS) publish(req *Request) (string, error) {
	s.mu.Lock()
	failure := s.failure
	s.mu.Unlock()
	if failure != nil {
		return "", failure
	}
	m := SNSMessage{
		TopicARN:    req.Get("TopicArn"),
		Subject:     req.Get("Subject"),
		Message:     req.Get("Message"),
		Attributes:  map[string]string{},
		AccessKeyID: req.AccessKeyID,
	}
	switch {
	case m.TopicARN == "" && req.Get("TargetArn") == "" && req.Get("PhoneNumber") == "":
		return "", Errorf(http.StatusBadRequest, "InvalidParameter", "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter")
	case m.Message == "":
		return "", Errorf(http.StatusBadRequest, "InvalidParameter", "Invalid parameter: Empty message")
	case len(m.Message) > SNSMaxMessageBytes:
		return "", Errorf(http.StatusBadRequest, "InvalidParameter", "Invalid parameter: Message too long")
	case !utf8.ValidString(m.Message):
		return "", Errorf(http.StatusBadRequest, "InvalidParameter", "Invalid parameter: Message must be UTF-8")
	case utf8.RuneCountInString(m.Subject) > SNSMaxSubjectChars:
		return "", Errorf(http.StatusBadRequest, "InvalidParameter", "Invalid parameter: Subject")
	}
	for i := 1; ; i++ {
		p := "MessageAttributes.entry." + strconv.Itoa(i)
		if !req.Form.Has(p + ".Name") {
			break
		}
		name, typ := req.Get(p+".Name"), req.Get(p+".Value.DataType")
		if typ == "" {
			return "", Errorf(http.StatusBadRequest, "ParameterValueInvalid", "The message attribute '%s' must contain non-empty message attribute type.", name)
		}
		m.Attributes[name] = req.Get(p + ".Value.StringValue")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.MessageID = newRequestID()
	s.messages = append(s.messages, m)
	return "<MessageId>" + m.MessageID + "</MessageId>", nil
}
