// Package lambdatest runs a Lambda function's shipped binary in a test, with
// nothing but loopback servers around it.
//
// It has four parts, each usable alone:
//
//   - BuildBootstrap compiles a package main the way the CDK bundler
//     (constructs/internal/golambda) does, with the same flags, but for the host's
//     GOOS and GOARCH so that the test can run it.
//   - Runtime is a local implementation of the Lambda Runtime API
//     (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), and
//     Start runs a bootstrap against it with a clean, fake-credentialed
//     environment: Function.Invoke sends an event and returns the function's
//     response or error payload.
//   - Service is a fake AWS endpoint that speaks the query protocol (EC2,
//     IAM, STS, CloudFormation: form-encoded POST, XML answers and errors)
//     with call counters and fault injection; Cloud is a small stateful
//     EC2, IAM, STS and CloudFormation account on top of it. Their Env
//     points the SDK at them through AWS_ENDPOINT_URL_<SERVICE>.
//   - EC2 is the tests' one EC2 fake: an in-memory EC2 with the SDK's types
//     and EC2's rules and errors. Unit tests call it in process through
//     their package's EC2 interface; Cloud serves its EC2 endpoint from it.
//
// It is a test helper: it is imported by _test files only, never by a
// Lambda, and it fails the test (t.Fatal) on setup errors.
package lambdatest
