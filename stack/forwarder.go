package stack

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
)

// EventForwarderProps configures a region's forwarder.
type EventForwarderProps struct {
	awscdk.StackProps // Env.Region: the MEC region whose events to forward
	// HomeRegion is where the backend (and its rules) run.
	HomeRegion string
	// Rules default to backend.EventRules.
	Rules []backend.EventRule
}

// NewEventForwarderStack forwards, from a MEC region other than the home
// region, the events the backend's rules match (SSM's command status
// changes, emitted in the region where the nodes are) to the home region's
// default bus, where those rules resume the workflows. Without it, a MEC in
// another region would wait for every node command's timeout and the
// fallback status check. It holds no state and costs nothing idle.
func NewEventForwarderStack(scope constructs.Construct, id string, props *EventForwarderProps) awscdk.Stack {
	if props == nil || props.HomeRegion == "" || props.Env == nil || props.Env.Region == nil {
		panic(fmt.Errorf("stack: an event forwarder needs its region and the home region"))
	}
	rules := props.Rules
	if rules == nil {
		rules = backend.EventRules
	}
	sprops := props.StackProps
	if sprops.Description == nil {
		sprops.Description = jsii.String("mecd: forwards this region's node command events to the backend in " + props.HomeRegion)
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sprops)
	home := awsevents.EventBus_FromEventBusArn(stack, jsii.String("HomeBus"), awscdk.Fn_Sub(jsii.String(
		"arn:${AWS::Partition}:events:"+props.HomeRegion+":${AWS::AccountId}:event-bus/default"), nil))
	newNodeDocument(stack, "NodeDocument")
	dlq := newDeadLetterQueue(stack, "DeadLetters")
	for _, r := range rules {
		newRule(stack, r, "mecd "+r.Name+": to the backend in "+props.HomeRegion, awseventstargets.NewEventBus(home, &awseventstargets.EventBusProps{
			DeadLetterQueue: dlq,
		}))
	}
	return stack
}
