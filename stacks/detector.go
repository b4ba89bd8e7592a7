package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
)

// DetectorStack holds the CloudTrail detector.
type DetectorStack struct {
	awscdk.Stack
	Detector detector.Detector
}

// NewDetector creates the "detector" stack.
func NewDetector(scope constructs.Construct, id string, cfg Config) (*DetectorStack, error) {
	st := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Env:         stackEnv(cfg),
		Description: jsii.String("Defenders detector: alerts when EC2 instance credentials are used from the wrong place"),
	})
	shadow, err := cfg.DetectorShadow()
	if err != nil {
		return nil, err
	}
	d, err := detector.New(st, "detector", &detector.Props{
		Shadow:              shadow,
		AlertEmail:          cfg.AlertEmail,
		TrailLogGroupName:   cfg.TrailLogGroup,
		Lockdown:            cfg.Lockdown,
		ReservedConcurrency: cfg.DetectorReservedConcurrency,
		Regions:             cfg.DetectorRegions,
		Trust:               cfg.LockTrust(),
	})
	if err != nil {
		return nil, fmt.Errorf("detector stack (context %s, %s, %s): %w", KeyAlertEmail, KeyTrailLogGroup, KeyDetectorRegions, err)
	}
	suppressDetector(d)
	return &DetectorStack{Stack: st, Detector: d}, nil
}
