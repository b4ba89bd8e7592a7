package locker_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/locker"
)

// ExampleNew adds the locker to a stack: a Go Lambda that rewrites the lock of every role under
// RolePath when an instance starts or stops, when an EC2 call changes an instance's addresses or
// instance profile (CloudTrail), and on a schedule. The Lambda is normally built
// with `go build` during synth; this example skips bundling (context
// "aws:cdk:bundling-stacks": []) so that it runs in seconds.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "locker-example")
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{
		Outdir:  jsii.String(dir),
		Context: &map[string]any{"aws:cdk:bundling-stacks": []any{}},
	})
	stack := awscdk.NewStack(app, jsii.String("security"), nil)
	_, err := locker.New(stack, "Locker", &locker.Props{RolePath: "/defenders/web/", Schedule: 30 * time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	app.Synth(nil)

	for _, r := range exampleResources(dir, "security") {
		switch {
		case r.Type == "AWS::Events::Rule" && r.Properties["ScheduleExpression"] != nil:
			fmt.Println("reconciles every role:", r.Properties["ScheduleExpression"])
		case r.Type == "AWS::Events::Rule":
			p := r.Properties["EventPattern"].(map[string]any)
			fmt.Println("follows:", p["detail-type"])
		case r.Type == "AWS::Lambda::Function":
			env := r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
			fmt.Println("manages the roles under:", env[locker.EnvRolePath])
		}
	}
	// Unordered output:
	// reconciles every role: rate(30 minutes)
	// follows: [EC2 Instance State-change Notification]
	// follows: [AWS API Call via CloudTrail]
	// manages the roles under: /defenders/web/
}

type exampleResource struct {
	Type       string
	Properties map[string]any
}

// exampleResources returns the resources of stack, as synthesized into dir.
func exampleResources(dir, stack string) map[string]exampleResource {
	b, err := os.ReadFile(filepath.Join(dir, stack+".template.json"))
	if err != nil {
		panic(err)
	}
	var tpl struct{ Resources map[string]exampleResource }
	if err := json.Unmarshal(b, &tpl); err != nil {
		panic(err)
	}
	return tpl.Resources
}
