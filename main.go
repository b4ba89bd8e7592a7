// Command defenders is the Defenders CDK app: a battleground VPC with an SSH group open only to the
// workstation, Matt (an unlocked instance, the control) and Luke (an instance whose role is locked
// to its own network position). Run it through the CDK CLI: `make synth` or `cdk synth`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/guard"
	"github.com/defenders-cdk/defenders/stacks"
)

func main() {
	// jsii.Close stops the jsii kernel and removes its temporary files (about 2 MB per synth
	// otherwise left in $TMPDIR); since jsii-runtime-go v1.143 it no longer races with the
	// runtime's own wait on the node child.
	err := run()
	jsii.Close()
	if err != nil {
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
	// Synthesizes, then reviews the templates it wrote with the same rules as `make review`: an
	// error finding (SSH open to the world, IMDSv1, an unlocked EC2 role...) makes `cdk synth` fail.
	return guard.Synth(app)
}
