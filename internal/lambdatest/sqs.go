package lambdatest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// SQSMaxMessageBytes is the largest message body the SQS fake accepts.
const SQSMaxMessageBytes = 256 * 1024

// SQSMessage is one message an SQS fake accepted.
type SQSMessage struct {
	// MessageID is the id the fake answered.
	MessageID string
	// QueueURL is the QueueUrl parameter.
	QueueURL string
	// Body is the MessageBody parameter.
	Body string
	// Attributes maps message attribute names to their string values.
	Attributes map[string]string
	// AccessKeyID is the access key the request was signed with.
	AccessKeyID string
}

// SQS is a fake SQS endpoint speaking the AWS JSON 1.0 protocol of current
// SDKs (POST /, X-Amz-Target: AmazonSQS.<Action>, JSON bodies). It
// implements SendMessage, answering the MD5 of the body the SDK checks,
// and records the messages; other actions answer UnsupportedOperation.
// Like Service, it reads each request whole and waits AnswerDelay before
// answering.
type SQS struct {
	// URL is the endpoint, for AWS_ENDPOINT_URL_SQS.
	URL string
	// AnswerDelay is the wait before every answer (DefaultAnswerDelay).
	AnswerDelay time.Duration

	srv *httptest.Server

	mu       sync.Mutex
	faults   map[string][]*APIError
	failure  *APIError
	calls    []Call
	messages []SQSMessage
}

// NewSQS starts an SQS fake and closes it when the test ends.
func NewSQS(t testing.TB) *SQS {
	t.Helper()
	q := &SQS{AnswerDelay: DefaultAnswerDelay, faults: map[string][]*APIError{}}
	q.srv = httptest.NewServer(http.HandlerFunc(q.serve))
	q.URL = q.srv.URL
	t.Cleanup(q.srv.Close)
	return q
}

// Env returns the variable that points the AWS SDK at the fake.
func (q *SQS) Env() map[string]string {
	return map[string]string{"AWS_ENDPOINT_URL_SQS": q.URL}
}

// QueueURL returns the URL of a queue of Account on the fake (any queue
// name is accepted).
func (q *SQS) QueueURL(name string) string {
	return q.URL + "/" + Account + "/" + name
}

// InjectFaults makes the next calls of action ("SendMessage", or "*" for
// any) answer these errors, one per call, in order.
func (q *SQS) InjectFaults(action string, faults ...*APIError) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.faults[action] = append(q.faults[action], faults...)
}

// SetFailure makes every call answer e from now on (an outage), until
// SetFailure(nil). Injected faults (InjectFaults) are answered first.
func (q *SQS) SetFailure(e *APIError) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.failure = e
}

// ServerError returns SQS's internal error (InternalError, 500).
func (q *SQS) ServerError() *APIError {
	return Errorf(http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
}

// Throttle returns SQS's throttling error (RequestThrottled, 400).
func (q *SQS) Throttle() *APIError {
	return Errorf(http.StatusBadRequest, "RequestThrottled", "Request is throttled.")
}

// Messages returns the messages accepted so far.
func (q *SQS) Messages() []SQSMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]SQSMessage, len(q.messages))
	copy(out, q.messages)
	return out
}

// Calls returns the calls of action received so far, or every call for "".
// Call.Form is nil (the protocol is JSON).
func (q *SQS) Calls(action string) []Call {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Call
	for _, c := range q.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many calls of action (every call, for "") were
// received.
func (q *SQS) Count(action string) int { return len(q.Calls(action)) }

// sqsMessageAttribute is a message attribute in a JSON request.
type sqsMessageAttribute struct {
	DataType    string `json:"DataType"`
	StringValue string `json:"StringValue"`
	BinaryValue []byte `json:"BinaryValue"`
}

// sqsSendMessage is the JSON body of SendMessage.
type sqsSendMessage struct {
	QueueURL          string                         `json:"QueueUrl"`
	MessageBody       *string                        `json:"MessageBody"`
	DelaySeconds      int                            `json:"DelaySeconds"`
	MessageAttributes map[string]sqsMessageAttribute `json:"MessageAttributes"`
}

// serve answers one request.
func (q *SQS) serve(w http.ResponseWriter, r *http.Request) {
	// Read the whole request before answering; see DefaultAnswerDelay.
	body, readErr := io.ReadAll(r.Body)
	received := time.Now()
	if q.AnswerDelay > 0 {
		time.Sleep(q.AnswerDelay)
	}
	call := Call{Received: received, AccessKeyID: accessKeyID(r.Header.Get("Authorization"))}
	answer := func(status int, code string, payload any) {
		call.Status, call.ErrorCode = status, code
		q.mu.Lock()
		q.calls = append(q.calls, call)
		q.mu.Unlock()
		b, _ := json.Marshal(payload)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Requestid", requestID())
		if code != "" {
			fault := "Sender"
			if status >= 500 {
				fault = "Receiver"
			}
			w.Header().Set("X-Amzn-Query-Error", code+";"+fault)
		}
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
	fail := func(e *APIError) {
		status := e.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		answer(status, e.Code, map[string]string{"__type": "com.amazonaws.sqs#" + e.Code, "message": e.Message})
	}
	if readErr != nil {
		fail(Errorf(http.StatusBadRequest, "InvalidRequest", "read body: %v", readErr))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	call.Action = strings.TrimPrefix(target, "AmazonSQS.")
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case r.Method != http.MethodPost || mt != "application/x-amz-json-1.0" || !strings.HasPrefix(target, "AmazonSQS."):
		fail(Errorf(http.StatusBadRequest, "InvalidRequest", "want an AWS JSON 1.0 POST with X-Amz-Target AmazonSQS.*, got %s %q %q", r.Method, mt, target))
		return
	case call.AccessKeyID == "":
		fail(Errorf(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"))
		return
	}
	q.mu.Lock()
	var fault *APIError
	for _, key := range []string{call.Action, "*"} {
		if f := q.faults[key]; len(f) > 0 {
			fault, q.faults[key] = f[0], f[1:]
			break
		}
	}
	if fault == nil {
		fault = q.failure
	}
	q.mu.Unlock()
	if fault != nil {
		fail(fault)
		return
	}
	if call.Action != "SendMessage" {
		fail(Errorf(http.StatusBadRequest, "UnsupportedOperation", "the fake does not implement %s", call.Action))
		return
	}
	var in sqsSendMessage
	if err := json.Unmarshal(body, &in); err != nil {
		fail(Errorf(http.StatusBadRequest, "InvalidParameterValue", "body: %v", err))
		return
	}
	switch {
	case !strings.HasPrefix(in.QueueURL, q.URL+"/"):
		fail(Errorf(http.StatusBadRequest, "QueueDoesNotExist", "The specified queue does not exist."))
		return
	case in.MessageBody == nil || *in.MessageBody == "":
		fail(Errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter MessageBody."))
		return
	case len(*in.MessageBody) > SQSMaxMessageBytes:
		fail(Errorf(http.StatusBadRequest, "InvalidParameterValue", "One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", SQSMaxMessageBytes))
		return
	case !validSQSText(*in.MessageBody):
		fail(Errorf(http.StatusBadRequest, "InvalidMessageContents", "Invalid characters found."))
		return
	}
	m := SQSMessage{QueueURL: in.QueueURL, Body: *in.MessageBody, Attributes: map[string]string{}, AccessKeyID: call.AccessKeyID}
	for name, a := range in.MessageAttributes {
		if a.DataType == "" || (a.StringValue == "" && a.BinaryValue == nil) {
			fail(Errorf(http.StatusBadRequest, "InvalidParameterValue", "The message attribute '%s' must contain a non-empty value of message attribute type '%s'.", name, a.DataType))
			return
		}
		m.Attributes[name] = a.StringValue
	}
	sum := md5.Sum([]byte(m.Body))
	m.MessageID = newRequestID()
	q.mu.Lock()
	q.messages = append(q.messages, m)
	q.mu.Unlock()
	answer(http.StatusOK, "", map[string]string{"MessageId": m.MessageID, "MD5OfMessageBody": hex.EncodeToString(sum[:])})
}

// validSQSText reports whether s holds only the characters SQS allows in
// a message: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
// #x10000 to #x10FFFF.
func validSQSText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
