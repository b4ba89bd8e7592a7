// Command echo is a tiny Lambda for the lambdatest tests: it answers what
// it was given and what its environment looks like, fails on request, and
// can report an init error or exit.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// request is what a test sends.
type request struct {
	Fail string `json:"fail"`
	Exit bool   `json:"exit"`
	Env  string `json:"env"`
}

// response is what echo answers.
type response struct {
	RequestID   string          `json:"requestId"`
	FunctionARN string          `json:"functionArn"`
	DeadlineMs  int64           `json:"deadlineMs"`
	Echo        json.RawMessage `json:"echo"`
	Env         *string         `json:"env,omitempty"`
}

func handle(ctx context.Context, raw json.RawMessage) (response, error) {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		return response{}, err
	}
	if req.Exit {
		os.Exit(3)
	}
	if req.Fail != "" {
		return response{}, errors.New(req.Fail)
	}
	lc, _ := lambdacontext.FromContext(ctx)
	dl, _ := ctx.Deadline()
	out := response{RequestID: lc.AwsRequestID, FunctionARN: lc.InvokedFunctionArn, DeadlineMs: dl.UnixMilli(), Echo: raw}
	if req.Env != "" {
		if v, ok := os.LookupEnv(req.Env); ok {
			out.Env = &v
		}
	}
	return out, nil
}

func main() {
	if msg := os.Getenv("ECHO_INIT_ERROR"); msg != "" {
		body, _ := json.Marshal(map[string]string{"errorMessage": msg, "errorType": "Echo.InitError"})
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		c := &http.Client{Timeout: 5 * time.Second}
		if resp, err := c.Post(url, "application/json", bytes.NewReader(body)); err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
	lambda.Start(handle)
}
