// Command review turns a cloud assembly (cdk.out) of any CDK app, or the
// CloudFormation templates of any app, into a Markdown report for a pull
// request: every role EC2 instances can assume, its lock, the instances
// using it with their IMDS setting and ingress rules, and findings that say
// what to fix.
//
// Usage:
//
//	go run ./cmd/review [--json] [cdk.out | directory | template.json | template.yaml]
//
// The argument defaults to cdk.out. A directory with a manifest.json is a
// cloud assembly; any other directory is reviewed template by template
// (*.json, *.yaml, *.yml and *.template files with a Resources section, not
// its subdirectories). Templates are JSON or YAML, short forms (!Ref,
// !GetAtt, !Sub...) included. Nested stacks are followed when their
// template is a local file (CDK's asset path, or a relative TemplateURL as
// `aws cloudformation package` takes); one that cannot be read is a
// DEF-TPL-1 warning. Nothing outside the directory (the template's
// directory) is read; templates over 1 MB (CloudFormation's limit), FIFOs
// and devices are refused.
//
// --json prints the same data as JSON. The exit code is 0 without error
// findings, 1 with error findings and 2 for usage, read or parse errors
// (bad input included).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/defenders-cdk/defenders/internal/review"
)

// Exit codes.
const (
	exitOK       = 0
	exitFindings = 1
	exitUsage    = 2
)

// main runs the command and exits with its code.
func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command without the process: it parses args, writes the
// report to stdout and diagnostics to stderr, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("review", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON instead of Markdown")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: review [--json] [cdk.out | directory | template.json | template.yaml]")
		fmt.Fprintln(stderr, "Reports the EC2 roles, their locks, the instances' IMDS settings and ingress rules of a cloud assembly,")
		fmt.Fprintln(stderr, "of the templates of a directory (not its subdirectories) or of one template, nested stacks included.")
		fmt.Fprintln(stderr, "Exit code: 0 no error findings, 1 error findings, 2 usage, read or parse error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "review: want at most one cloud assembly, directory or template file, got %d arguments\n", fs.NArg())
		fs.Usage()
		return exitUsage
	}
	path := "cdk.out"
	if fs.NArg() == 1 {
		path = fs.Arg(0)
	}
	rep, err := review.Review(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteMarkdown(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if rep.HasErrors() {
		fmt.Fprintf(stderr, "review: %d error finding(s); see the report\n", rep.Errors)
		return exitFindings
	}
	return exitOK
}
