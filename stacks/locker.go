package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/locker"
)

// LockerStack holds the locker.
type LockerStack struct {
	awscdk.Stack
	Locker locker.Locker
}

// NewLocker creates the "locker" stack. alarmTopicARN (optional) receives its alarms.
func NewLocker(scope constructs.Construct, id string, cfg Config, alarmTopicARN string) (*LockerStack, error) {
	st := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Env:         stackEnv(cfg),
		Description: jsii.String("Defenders locker: keeps instance-role locks true when addresses change"),
	})
	l, err := locker.New(st, "locker", &locker.Props{
		AlarmTopicARN: alarmTopicARN, Lockdown: cfg.Lockdown, ReservedConcurrency: cfg.LockerReservedConcurrency,
		Trust: cfg.LockTrust(),
	})
	if err != nil {
		return nil, fmt.Errorf("locker stack: %w", err)
	}
	suppress(l.Function().Role(),
		nag("AwsSolutions-IAM5", "ec2:DescribeInstances, DescribeRouteTables, DescribeNatGateways, DescribeAddresses and iam:ListRoles support no resource-level permissions (read-only); instance-profile/* is read-only (profiles may have any path); role/defenders/* is the managed path, the only place the locker writes."))
	suppress(l.DeadLetterQueue(),
		nag("AwsSolutions-SQS3", "This queue is itself the dead-letter queue of the locker."))
	return &LockerStack{Stack: st, Locker: l}, nil
}
