// Command defenders is the Defenders CDK app: a battleground VPC with an SSH group open only to the
// workstation, Matt (an unlocked instance, the control) and Luke (an instance whose role is locked
// to its own network position). Run it through the CDK CLI: `make synth` or `cdk synth`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/defenders-cdk/defenders/stacks"
)

func main() {
	// No jsii.Close(): in jsii-runtime-go v1.113.0 it races with the runtime's own Wait on the
	// node child and prints "Runtime process exited abnormally: waitid: no child processes" on
	// most runs. The child exits by itself when this process exits (its stdin closes), after
	// Synth has written the whole cloud assembly.
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "defenders:", err)
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	// Reads the defenders: context, resolves the SSH source (context, then checkip, then fail
	// closed) and builds every stack; constructs themselves do no network I/O.
	if _, err := stacks.FromContext(context.Background(), app, nil); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
