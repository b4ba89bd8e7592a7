package lambdatest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Protocol is the XML dialect of a query-protocol service.
type Protocol int

const (
	// ProtocolEC2 is EC2's dialect: the result's fields sit directly in
	// <ActionResponse> next to <requestId>, and errors are
	// <Response><Errors><Error><Code>...</Code>...</Errors><RequestID>.
	ProtocolEC2 Protocol = iota
	// ProtocolQuery is the awsQuery dialect of IAM, STS and
	// CloudFormation: the fields sit in <ActionResponse><ActionResult>,
	// followed by <ResponseMetadata>, and errors are
	// <ErrorResponse><Error><Type>Sender</Type><Code>...
	ProtocolQuery
)

// XML namespaces of the services' answers.
const (
	// NamespaceEC2 is EC2's API version namespace.
	NamespaceEC2 = "http://ec2.amazonaws.com/doc/2016-11-15/"
	// NamespaceIAM is IAM's API version namespace.
	NamespaceIAM = "https://iam.amazonaws.com/doc/2010-05-08/"
	// NamespaceSTS is STS's API version namespace.
	NamespaceSTS = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// DefaultAnswerDelay is how long a Service waits, after reading the whole
// request, before it answers. An answer that arrives before Go's HTTP
// client has finished its last write of the request can make smithy-go
// fail to read it ("use of closed network connection"); real endpoints are
// never that fast.
const DefaultAnswerDelay = 2 * time.Millisecond

// Request is one query-protocol request as a Handler sees it.
type Request struct {
	// Action is the Action parameter.
	Action string
	// Form holds every parameter of the form-encoded body.
	Form url.Values
	// AccessKeyID is the access key the request was signed with.
	AccessKeyID string
	// Region is the region of the request's SigV4 credential scope: the
	// region the client addressed (AWS_ENDPOINT_URL_<SERVICE> sends every
	// region to one Service).
	Region string
}

// Get returns the parameter key.
func (r *Request) Get(key string) string { return r.Form.Get(key) }

// List returns a query-protocol list: key.1, key.2, ... up to the first
// missing index. For EC2's Filter.N.Value.M use List("Filter.N.Value").
func (r *Request) List(key string) []string {
	var out []string
	for i := 1; ; i++ {
		k := key + "." + strconv.Itoa(i)
		if !r.Form.Has(k) {
			return out
		}
		out = append(out, r.Form.Get(k))
	}
}

// Handler answers one action. It returns the inner XML of the answer (the
// fields of the result, see Protocol), or an error: an *APIError becomes
// that AWS error, anything else a 500 InternalFailure.
type Handler func(req *Request) (string, error)

// APIError is an AWS error answer.
type APIError struct {
	// Status is the HTTP status (default 400).
	Status int
	// Code is the AWS error code, e.g. "NoSuchEntity".
	Code string
	// Message is the error message.
	Message string
}

// Error returns "Code: Message".
func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *APIError.
func Errorf(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Call is one request a Service received.
type Call struct {
	// Action is the Action parameter.
	Action string
	// Form holds the parameters.
	Form url.Values
	// AccessKeyID is the access key of the request's signature.
	AccessKeyID string
	// Region is the region of the request's signature (see Request).
	Region string
	// Received is when the whole request had been read.
	Received time.Time
	// Status is the HTTP status answered.
	Status int
	// ErrorCode is the AWS error code answered, "" on success.
	ErrorCode string
}

// Service is a fake AWS endpoint on loopback that speaks the query
// protocol: form-encoded POSTs with Action=..., XML answers in the
// service's namespace, AWS-shaped errors. It counts every call and can
// fail the next calls of an action on purpose (InjectFaults).
type Service struct {
	// Name is the service's name in messages ("ec2", "iam", "sts",
	// "cloudformation").
	Name string
	// URL is the endpoint, for AWS_ENDPOINT_URL_<SERVICE>.
	URL string
	// AnswerDelay is the wait before every answer (DefaultAnswerDelay).
	AnswerDelay time.Duration

	protocol  Protocol
	namespace string
	srv       *httptest.Server

	mu       sync.Mutex
	handlers map[string]Handler
	faults   map[string][]*APIError
	calls    []Call
}

// NewService starts a Service and closes it when the test ends.
func NewService(t testing.TB, name string, protocol Protocol, namespace string) *Service {
	t.Helper()
	s := &Service{
		Name:        name,
		AnswerDelay: DefaultAnswerDelay,
		protocol:    protocol,
		namespace:   namespace,
		handlers:    map[string]Handler{},
		faults:      map[string][]*APIError{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Handle sets the handler of action.
func (s *Service) Handle(action string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[action] = h
}

// InjectFaults makes the next calls of action (or of any action, for
// "*") answer these errors, one per call, in order, before the handler
// answers again.
func (s *Service) InjectFaults(action string, faults ...*APIError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[action] = append(s.faults[action], faults...)
}

// Throttle returns the service's throttling error: EC2's
// RequestLimitExceeded (503), or Throttling (400) for IAM, STS and
// CloudFormation.
func (s *Service) Throttle() *APIError {
	if s.protocol == ProtocolEC2 {
		return Errorf(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
	}
	return Errorf(http.StatusBadRequest, "Throttling", "Rate exceeded")
}

// ServerError returns the service's internal error: EC2's InternalError,
// CloudFormation's InternalFailure, or IAM's ServiceFailure, all 500.
func (s *Service) ServerError() *APIError {
	if s.protocol == ProtocolEC2 {
		return Errorf(http.StatusInternalServerError, "InternalError", "An internal error has occurred")
	}
	if s.namespace == NamespaceCloudFormation {
		return Errorf(http.StatusInternalServerError, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.")
	}
	return Errorf(http.StatusInternalServerError, "ServiceFailure", "The request processing has failed because of an unknown error, exception or failure.")
}

// Repeat returns n copies of err, for InjectFaults.
func Repeat(n int, err *APIError) []*APIError {
	out := make([]*APIError, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// Calls returns the calls of action received so far, or every call for "".
func (s *Service) Calls(action string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many calls of action (every call, for "") were
// received.
func (s *Service) Count(action string) int {
	return len(s.Calls(action))
}

// Counts returns the number of calls per action.
func (s *Service) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, c := range s.calls {
		out[c.Action]++
	}
	return out
}

// ResetCalls forgets the calls received so far.
func (s *Service) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// serve answers one request.
func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	// Read the whole request before answering; see DefaultAnswerDelay.
	body, readErr := io.ReadAll(r.Body)
	received := time.Now()
	if s.AnswerDelay > 0 {
		time.Sleep(s.AnswerDelay)
	}
	call := Call{Received: received, AccessKeyID: accessKeyID(r.Header.Get("Authorization")),
		Region: signingRegion(r.Header.Get("Authorization"))}
	answer := func(status int, code, payload string) {
		call.Status, call.ErrorCode = status, code
		s.mu.Lock()
		s.calls = append(s.calls, call)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		w.Header().Set("X-Amzn-Requestid", requestID())
		w.WriteHeader(status)
		_, _ = io.WriteString(w, payload)
	}
	fail := func(e *APIError) {
		status := e.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		answer(status, e.Code, s.errorXML(status, e))
	}
	if readErr != nil {
		fail(Errorf(http.StatusBadRequest, "MalformedQueryString", "read body: %v", readErr))
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost || mt != "application/x-www-form-urlencoded" {
		fail(Errorf(http.StatusBadRequest, "InvalidRequest", "want a form-encoded POST, got %s %q", r.Method, mt))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		fail(Errorf(http.StatusBadRequest, "MalformedQueryString", "%v", err))
		return
	}
	call.Action, call.Form = form.Get("Action"), form
	if call.AccessKeyID == "" {
		fail(Errorf(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"))
		return
	}
	s.mu.Lock()
	var fault *APIError
	for _, key := range []string{call.Action, "*"} {
		if q := s.faults[key]; len(q) > 0 {
			fault, s.faults[key] = q[0], q[1:]
			break
		}
	}
	h := s.handlers[call.Action]
	s.mu.Unlock()
	if fault != nil {
		fail(fault)
		return
	}
	if h == nil {
		fail(Errorf(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", call.Action))
		return
	}
	inner, err := h(&Request{Action: call.Action, Form: form, AccessKeyID: call.AccessKeyID, Region: call.Region})
	if err != nil {
		e, ok := err.(*APIError)
		if !ok {
			e = Errorf(http.StatusInternalServerError, "InternalFailure", "%v", err)
		}
		fail(e)
		return
	}
	answer(http.StatusOK, "", s.resultXML(call.Action, inner))
}

// resultXML wraps a handler's answer in the service's envelope.
func (s *Service) resultXML(action, inner string) string {
	var b strings.Builder
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%sResponse xmlns="%s">`, action, s.namespace)
	if s.protocol == ProtocolEC2 {
		fmt.Fprintf(&b, "<requestId>%s</requestId>%s", requestID(), inner)
	} else {
		if inner != "" {
			fmt.Fprintf(&b, "<%sResult>%s</%sResult>", action, inner, action)
		}
		fmt.Fprintf(&b, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>", requestID())
	}
	fmt.Fprintf(&b, "</%sResponse>", action)
	return b.String()
}

// errorXML renders an error in the service's dialect.
func (s *Service) errorXML(status int, e *APIError) string {
	if s.protocol == ProtocolEC2 {
		return fmt.Sprintf(`%s<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
			xml.Header, XMLText(e.Code), XMLText(e.Message), requestID())
	}
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	return fmt.Sprintf(`%s<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		xml.Header, s.namespace, typ, XMLText(e.Code), XMLText(e.Message), requestID())
}

// XMLText escapes s for use as XML character data.
func XMLText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// accessKeyID extracts the access key from a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...").
func accessKeyID(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// requestID returns a random request id.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
