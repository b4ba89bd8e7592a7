// Package annotate adds acknowledgeable warnings to constructs in a way that compiles against
// every aws-cdk-go version Defenders supports.
//
// aws-cdk-go v2.277.0 added a third parameter (*awscdk.WarningOptions) to
// Annotations.AddWarningV2; a type that does not exist in older versions. Calling the method
// directly would tie the module to one side of that change, and Go's minimum version selection
// builds this module against whatever newer aws-cdk-go the importing module requires. The method
// is therefore called through reflection, with a zero value for any parameter after the id and
// the message. (AddWarning, the V1 method, cannot be acknowledged and is discouraged by CDK.)
package annotate

import (
	"fmt"
	"reflect"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Warning adds an acknowledgeable warning with id (for example "defenders:guard") to c. The CDK
// CLI prints it with c's path; `cdk synth --strict` fails on it unless it is acknowledged with
// Annotations.AcknowledgeWarning(id, reason).
func Warning(c constructs.IConstruct, id, message string) {
	if err := warningV2(awscdk.Annotations_Of(c), id, message); err != nil {
		// Never lose a warning: an unknown API shape degrades to the unacknowledgeable form.
		awscdk.Annotations_Of(c).AddWarning(jsii.String(fmt.Sprintf("%s [%s]", message, id)))
	}
}

// warningV2 calls a.AddWarningV2(id, message, <zero values>...).
func warningV2(a awscdk.Annotations, id, message string) error {
	m := reflect.ValueOf(a).MethodByName("AddWarningV2")
	if !m.IsValid() {
		return fmt.Errorf("annotate: Annotations has no AddWarningV2")
	}
	t := m.Type()
	sp := reflect.TypeOf((*string)(nil))
	if t.NumIn() < 2 || t.In(0) != sp || t.In(1) != sp {
		return fmt.Errorf("annotate: unexpected AddWarningV2 signature %v", t)
	}
	args := []reflect.Value{reflect.ValueOf(jsii.String(id)), reflect.ValueOf(jsii.String(message))}
	for i := 2; i < t.NumIn(); i++ {
		args = append(args, reflect.Zero(t.In(i)))
	}
	m.Call(args)
	return nil
}
