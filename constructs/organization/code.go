package organization

import (
	"errors"
	"fmt"
	"path"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3deployment"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/golambda"
	"github.com/defenders-cdk/defenders/constructs/locker"
)

// maxBucketName is S3's limit on a bucket name's length.
const maxBucketName = 63

// CodeBucketProps configures a CodeBucket.
type CodeBucketProps struct {
	// OrganizationID (o-...) is the organisation whose principals may read the code. Required.
	OrganizationID string
	// Code is the locker's code as an asset (awslambda.Code_FromAsset, what the locker bundles
	// for itself). It is bound in this construct's stack and copied into the bucket under
	// ObjectKey. Required.
	Code awslambda.Code
	// NamePrefix is MemberProps.NamePrefix (the member template names the bucket with it).
	NamePrefix string
}

// CodeBucket is one Region's copy of the locker's code, readable by the organisation.
type CodeBucket interface {
	constructs.Construct
	// Bucket holds the code.
	Bucket() awss3.Bucket
	// ObjectKey is the code's object key: CodeKeyPrefix and the asset's file name, which is
	// its content hash (a literal, known at synth time: the member template names it).
	ObjectKey() string
	// Deployment copies the code into the bucket.
	Deployment() awss3deployment.BucketDeployment
}

type codeBucket struct {
	constructs.Construct
	bucket awss3.Bucket
	key    string
	dep    awss3deployment.BucketDeployment
}

func (c *codeBucket) Bucket() awss3.Bucket                         { return c.bucket }
func (c *codeBucket) ObjectKey() string                            { return c.key }
func (c *codeBucket) Deployment() awss3deployment.BucketDeployment { return c.dep }

// LockerCode is the locker's code as the locker would bundle it (a local go build, cached by
// its inputs), for CodeBucketProps.Code. It is built when any of stacks is synthesized with
// bundling (CDK skips bundling for stacks a command does not select, and then LockerCode gives
// a placeholder asset, as CDK does): give it the code bucket's stack and the stack that holds
// the StackSet, so that deploying either one alone never names the key of a skipped build.
func LockerCode(stacks ...awscdk.Stack) (awslambda.Code, error) {
	if len(stacks) == 0 {
		return nil, errors.New("organization: LockerCode needs a stack")
	}
	scope := stacks[0]
	for _, st := range stacks {
		if b := st.BundlingRequired(); b == nil || *b {
			scope = st
			break
		}
	}
	code, err := golambda.Code(scope, locker.Package)
	if err != nil {
		return nil, fmt.Errorf("organization: building the locker: %w", err)
	}
	return code, nil
}

// NewCodeBucket creates a Region's code bucket in scope's stack, which must name its Region
// (the bucket's name, which the member template rebuilds with Fn::Sub, ends with it):
//
//   - its name is NamePrefix + "defenders-code-" + account + "-" + Region. S3 names are global:
//     the account id makes it ours, and RemovalPolicy RETAIN keeps it ours, because a deleted
//     name can be taken by anyone and member stacks would then load code from their bucket;
//   - s3:GetObject on CodeKeyPrefix* for any principal of the organisation (aws:PrincipalOrgID,
//     a condition S3 does not count as public, so Block Public Access stays on) and nothing
//     else: CloudFormation's StackSet execution role in each member account creates the
//     function, and Lambda reads the code with its credentials;
//   - S3-managed encryption (a KMS key would need a grant to every member account), TLS only
//     (1.2 or later), all public access blocked, versioning, bucket-owner object ownership;
//   - a BucketDeployment copies the asset without extracting it (Extract false: Lambda wants
//     the zip) and never prunes: a key stays readable after a newer one arrives, so a stack
//     instance that is rolled back or created by automatic deployment from the previous
//     template still finds its code. Old keys cost a few MB each.
func NewCodeBucket(scope constructs.Construct, id string, props *CodeBucketProps) (CodeBucket, error) {
	if props == nil {
		return nil, errors.New("organization: CodeBucketProps is required")
	}
	if err := CheckOrganizationID(props.OrganizationID); err != nil {
		return nil, fmt.Errorf("organization: CodeBucketProps.OrganizationID: %w", err)
	}
	if err := CheckNamePrefix(props.NamePrefix); err != nil {
		return nil, fmt.Errorf("organization: CodeBucketProps.NamePrefix: %w", err)
	}
	if props.Code == nil {
		return nil, errors.New("organization: CodeBucketProps.Code is required (the locker's code as an asset)")
	}
	stack := awscdk.Stack_Of(scope)
	region := *stack.Region()
	if *awscdk.Token_IsUnresolved(jsii.String(region)) {
		return nil, fmt.Errorf("organization: code bucket %s/%s: its stack must name its Region (StackProps.Env.Region): the bucket's name ends with it", *scope.Node().Path(), id)
	}
	if err := CheckRegion(region); err != nil {
		return nil, fmt.Errorf("organization: code bucket %s/%s: %w", *scope.Node().Path(), id, err)
	}
	prefix := props.NamePrefix + "defenders-code-"
	if n := len(prefix) + 12 + 1 + len(region); n > maxBucketName {
		return nil, fmt.Errorf("organization: code bucket in %s: its name would have %d characters, S3 allows %d: use a shorter name prefix", region, n, maxBucketName)
	}

	c := &codeBucket{}
	constructs.NewConstruct_Override(c, scope, jsii.String(id))
	c.bucket = awss3.NewBucket(c, jsii.String("Bucket"), &awss3.BucketProps{
		BucketName: awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String(prefix), stack.Account(), jsii.String("-" + region),
		}),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:         jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		// Keys are content-addressed, so versions pile up only if a key is written twice; keep
		// those a month.
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id: jsii.String("ExpireOverwrittenVersions"), NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(30)),
		}},
	})
	c.bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OrganizationReadsLockerCode"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("s3:GetObject"),
		Resources:  &[]*string{c.bucket.ArnForObjects(jsii.String(CodeKeyPrefix + "*"))},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": props.OrganizationID}},
	}))

	cfg := props.Code.Bind(c)
	if cfg == nil || cfg.S3Location == nil || cfg.S3Location.ObjectKey == nil || cfg.S3Location.BucketName == nil {
		return nil, errors.New("organization: CodeBucketProps.Code must be an asset (awslambda.Code_FromAsset), not inline or bucket code")
	}
	assetKey := *cfg.S3Location.ObjectKey
	if *awscdk.Token_IsUnresolved(jsii.String(assetKey)) {
		return nil, fmt.Errorf("organization: code bucket %s: the asset's object key is not known at synth time (a stack synthesizer with a token key prefix?)", *c.Node().Path())
	}
	c.key = CodeKeyPrefix + path.Base(assetKey)
	assets := awss3.Bucket_FromBucketName(c, jsii.String("Assets"), cfg.S3Location.BucketName)
	c.dep = awss3deployment.NewBucketDeployment(c, jsii.String("Deploy"), &awss3deployment.BucketDeploymentProps{
		Sources:              &[]awss3deployment.ISource{awss3deployment.Source_Bucket(assets, jsii.String(assetKey))},
		DestinationBucket:    c.bucket,
		DestinationKeyPrefix: jsii.String(CodeKeyPrefix),
		// The handler copies the source object into the key prefix under its own file name:
		// CodeKeyPrefix + the asset's "<hash>.zip", which is ObjectKey.
		Extract:        jsii.Bool(false),
		Prune:          jsii.Bool(false),
		RetainOnDelete: jsii.Bool(true),
	})
	return c, nil
}
