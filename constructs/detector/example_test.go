package detector_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
)

// ExampleNew adds the detector to a stack: an EventBridge rule on instance-role CloudTrail
// calls, the Go Lambda that judges them, and an SNS topic (here with an e-mail subscription)
// that receives the alerts. The Lambda is normally built with `go build` during synth; this
// example skips bundling (context "aws:cdk:bundling-stacks": []) so that it runs in seconds.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "detector-example")
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{
		Outdir:  jsii.String(dir),
		Context: &map[string]any{"aws:cdk:bundling-stacks": []any{}},
	})
	stack := awscdk.NewStack(app, jsii.String("security"), nil)
	if _, err := detector.New(stack, "Detector", &detector.Props{AlertEmail: "secops@example.com"}); err != nil {
		fmt.Println(err)
		return
	}
	app.Synth(nil)

	for _, r := range exampleResources(dir, "security") {
		switch r.Type {
		case "AWS::Events::Rule":
			fmt.Println("rule state:", r.Properties["State"])
		case "AWS::SNS::Subscription":
			fmt.Println("alerts to:", r.Properties["Protocol"], r.Properties["Endpoint"])
		case "AWS::Lambda::Function":
			fmt.Println("function:", r.Properties["Runtime"], r.Properties["Architectures"])
		}
	}
	// Unordered output:
	// rule state: ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
	// alerts to: email secops@example.com
	// function: provided.al2023 [arm64]
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
