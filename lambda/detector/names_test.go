package main

import (
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/detectorfn"
)

// The names the shipped-binary tests speak: the environment the construct
// sets (internal/contract) and what the function answers
// (internal/detectorfn).
const (
	EnvTopicARN     = contract.EnvTopicARN
	EnvDLQURL       = contract.EnvDLQURL
	EnvDedupeWindow = contract.EnvDedupeWindow
	EnvInventoryTTL = contract.EnvInventoryTTL
	EnvSelfRoleARN  = contract.EnvSelfRoleARN
	EnvLockdown     = contract.EnvLockdown
	EnvRegions      = contract.EnvRegions

	EnvTrustedEgressPrefixes = contract.EnvTrustedEgressPrefixes
	EnvSharedVPCEndpoints    = contract.EnvSharedVPCEndpoints

	MetricsNamespace = contract.DetectorMetricsNamespace

	ErrTypeInvalidEvent = detectorfn.ErrTypeInvalidEvent
	ErrTypeUndelivered  = detectorfn.ErrTypeUndelivered
	ErrTypeUndecided    = detectorfn.ErrTypeUndecided
)

type (
	// Summary is the response to a CloudWatch Logs or EventBridge invocation.
	Summary = detectorfn.Summary
	// DeadLetter is the body of an alert's dead-letter message.
	DeadLetter = detectorfn.DeadLetter
)
