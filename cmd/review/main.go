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
//
// # Shadow mode
//
//	go run ./cmd/review --shadow [--json] FILE [FILE...]
//
// reads the shadow reports that the detector logs while it runs a proposed
// lock mode or policy report-only (DEFENDERS_SHADOW_MODE,
// DEFENDERS_SHADOW_POLICY; see internal/shadowrun), merges them and prints
// what enforcing the proposal would deny, per account and role, with
// example calls. FILE "-" is the standard input. A FILE holds the
// detector's log messages as CloudWatch Logs tools give them: plain lines,
// the output of
//
//	aws logs filter-log-events --log-group-name GROUP --filter-pattern '"shadow report"' \
//	    --output text --query 'events[].message'
//
// (or its JSON output, or with --query 'events[].[timestamp,message]'),
// `aws logs tail`, `aws logs get-query-results` of a CloudWatch Logs
// Insights query, or an Insights table exported as JSON. Other messages are
// skipped. The exit code is 0 when no call would be denied, 1 when any
// would (so that CI can gate the enforcement on it), and 2 for usage or read
// errors, a malformed shadow report (the error names its file and line),
// input without any shadow report, or reports of different proposals.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/defenders-cdk/defenders/internal/review"
	"github.com/defenders-cdk/defenders/internal/shadow"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
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
	return runIO(args, os.Stdin, stdout, stderr)
}

// runIO is run with the standard input ("-" in shadow mode).
func runIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("review", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON instead of Markdown")
	shadowLogs := fs.Bool("shadow", false, "read the detector's shadow report logs (FILE, - for the standard input) and report what the proposal would deny")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: review [--json] [cdk.out | directory | template.json | template.yaml]")
		fmt.Fprintln(stderr, "       review --shadow [--json] FILE [FILE...]")
		fmt.Fprintln(stderr, "Reports the EC2 roles, their locks, the instances' IMDS settings and ingress rules of a cloud assembly,")
		fmt.Fprintln(stderr, "of the templates of a directory (not its subdirectories) or of one template, nested stacks included.")
		fmt.Fprintln(stderr, "Exit code: 0 no error findings, 1 error findings, 2 usage, read or parse error.")
		fmt.Fprintln(stderr, "With --shadow: merges the shadow reports the detector logged (aws logs filter-log-events --filter-pattern")
		fmt.Fprintln(stderr, `'"shadow report"' --output text --query 'events[].message', or its JSON, or Logs Insights results; "-" is stdin)`)
		fmt.Fprintln(stderr, "and reports, per account and role, the calls enforcing the proposed lock or policy would deny.")
		fmt.Fprintln(stderr, "Exit code: 0 no call would be denied, 1 some would, 2 usage or read error, malformed or no shadow report.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *shadowLogs {
		return runShadow(fs.Args(), *asJSON, stdin, stdout, stderr, fs.Usage)
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

// runShadow is review --shadow: it reads the shadow report logs of files
// ("-" is stdin), merges them and prints the report.
func runShadow(files []string, asJSON bool, stdin io.Reader, stdout, stderr io.Writer, usage func()) int {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "review: --shadow wants at least one log file (- for the standard input)")
		usage()
		return exitUsage
	}
	lr := shadow.NewLogReader(shadow.ReportOptions{})
	stdinRead := false
	for _, name := range files {
		var r io.Reader
		if name == "-" {
			if stdinRead {
				fmt.Fprintln(stderr, "review: - (the standard input) is given twice")
				return exitUsage
			}
			stdinRead, r = true, stdin
		} else {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintf(stderr, "review: %v\n", err)
				return exitUsage
			}
			defer f.Close()
			r = f
		}
		if err := lr.Read(r); err != nil {
			fmt.Fprintf(stderr, "review: %s: %v\n", displayName(name), err)
			return exitUsage
		}
	}
	l := lr.Log()
	if l.Reports == 0 {
		fmt.Fprintf(stderr, "review: no shadow report in %d file(s) (%d other log messages): is shadow mode on (%s or %s on the detector), "+
			"and do the logs cover its invocations (--filter-pattern '\"shadow report\"')?\n",
			len(files), l.Skipped, shadowrun.EnvShadowMode, shadowrun.EnvShadowPolicy)
		return exitUsage
	}
	if err := l.MixedProposals(); err != nil {
		fmt.Fprintf(stderr, "review: %v\n", err)
		return exitUsage
	}
	var err error
	if asJSON {
		err = l.WriteJSON(stdout)
	} else {
		err = l.WriteMarkdown(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	s := l.Summary
	if s.Undetermined > 0 || s.Errors > 0 {
		fmt.Fprintf(stderr, "review: %d call(s) undetermined and %d record(s) not evaluated: the report says why; enforcing may deny them too\n",
			s.Undetermined, s.Errors)
	}
	if s.WouldDeny > 0 {
		fmt.Fprintf(stderr, "review: enforcing %s would deny %d of %d call(s); see the report\n", l.Proposals[0].Proposal, s.WouldDeny, s.Calls)
		return exitFindings
	}
	return exitOK
}

// displayName names a file in messages.
func displayName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}
