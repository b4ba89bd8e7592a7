package lambdatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Runtime API paths (version 2018-06-01) and headers.
const (
	runtimeAPIPrefix = "/2018-06-01/runtime"

	// HeaderRequestID carries the invocation's request id.
	HeaderRequestID = "Lambda-Runtime-Aws-Request-Id"
	// HeaderDeadlineMs carries the invocation's deadline in Unix milliseconds.
	HeaderDeadlineMs = "Lambda-Runtime-Deadline-Ms"
	// HeaderFunctionARN carries the ARN of the invoked function.
	HeaderFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	// HeaderTraceID carries the X-Ray trace header.
	HeaderTraceID = "Lambda-Runtime-Trace-Id"
	// HeaderErrorType is the error type a runtime may send with an error.
	HeaderErrorType = "Lambda-Runtime-Function-Error-Type"
)

// Defaults of a Runtime.
const (
	// DefaultFunctionARN is the ARN Runtime reports for the function.
	DefaultFunctionARN = "arn:aws:lambda:us-east-1:111122223333:function:lambdatest"
	// DefaultTimeout is the function timeout Runtime announces through the
	// deadline header.
	DefaultTimeout = 30 * time.Second
)

// ErrorPayload is a function or init error as the runtime posts it: the
// JSON body of POST .../error (aws-lambda-go's messages.InvokeResponse_Error).
type ErrorPayload struct {
	// ErrorMessage is the error's text.
	ErrorMessage string `json:"errorMessage"`
	// ErrorType is the error's type name.
	ErrorType string `json:"errorType"`
	// StackTrace is the stack trace, if the runtime sent one.
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`
	// HeaderType is the Lambda-Runtime-Function-Error-Type header, if sent.
	HeaderType string `json:"-"`
}

// outcome is what the function answered to one invocation.
type outcome struct {
	response []byte
	fnErr    *ErrorPayload
}

// invocation is one event on its way through the Runtime API.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan outcome
}

// Runtime is a local Lambda Runtime API: the endpoints a custom runtime
// (aws-lambda-go's lambda.Start) polls. Invoke queues an event; GET
// .../invocation/next hands it out and blocks while there is none; the
// runtime answers with POST .../invocation/{id}/response or .../error, or
// reports a failed start with POST .../init/error.
type Runtime struct {
	// FunctionARN is sent in Lambda-Runtime-Invoked-Function-Arn.
	FunctionARN string
	// Timeout is the function timeout: the deadline of an invocation is now
	// plus Timeout, or the Invoke context's deadline if that is earlier.
	Timeout time.Duration

	srv   *httptest.Server
	queue chan *invocation
	stop  chan struct{}

	mu         sync.Mutex
	pending    map[string]*invocation
	dead       chan struct{}
	deadErr    error
	initFailed chan struct{}
	initErr    *ErrorPayload
	stopOnce   sync.Once
}

// NewRuntime starts a Runtime API server on loopback and closes it when
// the test ends.
func NewRuntime(t testing.TB) *Runtime {
	t.Helper()
	r := &Runtime{
		FunctionARN: DefaultFunctionARN,
		Timeout:     DefaultTimeout,
		queue:       make(chan *invocation),
		stop:        make(chan struct{}),
		pending:     map[string]*invocation{},
		dead:        make(chan struct{}),
		initFailed:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+runtimeAPIPrefix+"/invocation/next", r.next)
	mux.HandleFunc("POST "+runtimeAPIPrefix+"/invocation/{id}/response", r.response)
	mux.HandleFunc("POST "+runtimeAPIPrefix+"/invocation/{id}/error", r.invocationError)
	mux.HandleFunc("POST "+runtimeAPIPrefix+"/init/error", r.postInitError)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.Close)
	return r
}

// Address is the host:port to put in AWS_LAMBDA_RUNTIME_API.
func (r *Runtime) Address() string {
	return r.srv.Listener.Addr().String()
}

// Close stops the server, releasing a runtime blocked in GET next.
func (r *Runtime) Close() {
	r.stopOnce.Do(func() {
		close(r.stop)
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
}

// Invoke sends one event to the function and waits for its answer: the
// response body, or the error payload the runtime posted (fnErr). err is
// set when there is no answer: ctx ended, the runtime reported an init
// error, or the function process exited (see Start).
func (r *Runtime) Invoke(ctx context.Context, payload []byte) (response []byte, fnErr *ErrorPayload, err error) {
	deadline := time.Now().Add(r.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	inv := &invocation{id: newRequestID(), payload: payload, deadline: deadline, done: make(chan outcome, 1)}
	r.mu.Lock()
	r.pending[inv.id] = inv
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, inv.id)
		r.mu.Unlock()
	}()
	select {
	case r.queue <- inv:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("lambdatest: invoke: the runtime did not ask for the event: %w", ctx.Err())
	case <-r.dead:
		return nil, nil, r.deadError()
	case <-r.initFailed:
		return nil, nil, r.initFailure()
	case <-r.stop:
		return nil, nil, errors.New("lambdatest: invoke: the runtime API is closed")
	}
	select {
	case o := <-inv.done:
		return o.response, o.fnErr, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("lambdatest: invoke %s: no answer: %w", inv.id, ctx.Err())
	case <-r.dead:
		return nil, nil, r.deadError()
	case <-r.initFailed:
		return nil, nil, r.initFailure()
	case <-r.stop:
		return nil, nil, fmt.Errorf("lambdatest: invoke %s: the runtime API closed before the answer", inv.id)
	}
}

// InitError returns the payload of POST /runtime/init/error, or nil.
func (r *Runtime) InitError() *ErrorPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.initErr
}

// fail marks the function as gone (its process exited): pending and later
// invocations return err.
func (r *Runtime) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deadErr != nil {
		return
	}
	r.deadErr = err
	close(r.dead)
}

func (r *Runtime) deadError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Errorf("lambdatest: invoke: %w", r.deadErr)
}

func (r *Runtime) initFailure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Errorf("lambdatest: invoke: the runtime reported an init error: %s: %s", r.initErr.ErrorType, r.initErr.ErrorMessage)
}

// next serves GET /runtime/invocation/next: it blocks until an event is
// queued.
func (r *Runtime) next(w http.ResponseWriter, req *http.Request) {
	select {
	case inv := <-r.queue:
		h := w.Header()
		h.Set(HeaderRequestID, inv.id)
		h.Set(HeaderDeadlineMs, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set(HeaderFunctionARN, r.FunctionARN)
		h.Set(HeaderTraceID, "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-req.Context().Done():
	case <-r.stop:
		http.Error(w, "runtime API closed", http.StatusServiceUnavailable)
	}
}

// take removes the pending invocation id, or answers 400 if there is none.
func (r *Runtime) take(w http.ResponseWriter, id string) *invocation {
	r.mu.Lock()
	inv := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if inv == nil {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequestID", fmt.Sprintf("no invocation %q is in flight", id))
	}
	return inv
}

// response serves POST /runtime/invocation/{id}/response.
func (r *Runtime) response(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequest", "read body: "+err.Error())
		return
	}
	inv := r.take(w, req.PathValue("id"))
	if inv == nil {
		return
	}
	inv.done <- outcome{response: body}
	writeAccepted(w)
}

// invocationError serves POST /runtime/invocation/{id}/error.
func (r *Runtime) invocationError(w http.ResponseWriter, req *http.Request) {
	p, ok := readErrorPayload(w, req)
	if !ok {
		return
	}
	inv := r.take(w, req.PathValue("id"))
	if inv == nil {
		return
	}
	inv.done <- outcome{fnErr: p}
	writeAccepted(w)
}

// postInitError serves POST /runtime/init/error.
func (r *Runtime) postInitError(w http.ResponseWriter, req *http.Request) {
	p, ok := readErrorPayload(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	if r.initErr == nil {
		r.initErr = p
		close(r.initFailed)
	}
	r.mu.Unlock()
	writeAccepted(w)
}

// readErrorPayload reads the JSON error body of an error POST.
func readErrorPayload(w http.ResponseWriter, req *http.Request) (*ErrorPayload, bool) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequest", "read body: "+err.Error())
		return nil, false
	}
	p := &ErrorPayload{}
	if len(body) > 0 {
		if err := json.Unmarshal(body, p); err != nil {
			// The Runtime API accepts any body; keep it as the message.
			p = &ErrorPayload{ErrorMessage: string(body)}
		}
	}
	p.HeaderType = req.Header.Get(HeaderErrorType)
	if p.HeaderType == "" {
		p.HeaderType = req.Trailer.Get(HeaderErrorType)
	}
	return p, true
}

func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func writeRuntimeError(w http.ResponseWriter, status int, typ, msg string) {
	b, _ := json.Marshal(ErrorPayload{ErrorType: typ, ErrorMessage: msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newRequestID returns a random UUID-shaped request id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
