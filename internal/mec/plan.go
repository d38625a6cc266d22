package mec

import "slices"

// Step names, as records, the CLI, the dashboard and the node scripts'
// progress markers spell them.
const (
	StepRecord        = "record"
	StepResolve       = "resolve"
	StepSecurityGroup = "securityGroup"
	StepNodeRole      = "nodeRole"
	StepLaunch        = "launch"
	StepNodesOnline   = "nodesOnline"
	StepInstall       = "install"
	StepJoinToken     = "joinToken"
	StepJoin          = "join"
	StepFinalize      = "finalize"
	StepAddons        = "addons"
	StepVerify        = "verify"
	StepKubeconfig    = "kubeconfig"
	StepReady         = "ready"

	// Steps that are not progress: a failed start, a join's reset before
	// its retry, undoing a failed provisioning, and the teardown.
	StepStart    = "start"
	StepReset    = "reset"
	StepRollback = "rollback"
	StepTeardown = "teardown"

	// The steps of a scale (an Operation): node 0 joins the new nodes
	// (grow), drains and removes the leaving ones (shrink), then their
	// instances end (release).
	StepGrow    = "grow"
	StepShrink  = "shrink"
	StepRelease = "release"
)

// planned is one step of the provisioning plan.
type planned struct {
	name string
	// applies says whether a MEC records the step (nil: every MEC).
	applies func(*MEC) bool
}

// plan is the provisioning, in the order its steps run: the one list the
// steps, the CLI and the dashboard (through the API's progress) follow.
var plan = []planned{
	{name: StepRecord},
	{name: StepResolve},
	{name: StepSecurityGroup},
	{name: StepNodeRole},
	{name: StepLaunch},
	{name: StepNodesOnline},
	{name: StepInstall},
	// A one-node MEC registers no join token.
	{name: StepJoinToken, applies: func(m *MEC) bool { return m.Spec.NodeCount != 1 }},
	{name: StepJoin},
	{name: StepFinalize},
	{name: StepAddons},
	{name: StepVerify},
	{name: StepKubeconfig},
	{name: StepReady},
}

// notProgress are recorded steps that never count towards the plan.
var notProgress = []string{StepStart, StepReset, StepRollback, StepTeardown, StepGrow, StepShrink, StepRelease}

// Plan is every provisioning step, in order.
func Plan() []string {
	out := make([]string, len(plan))
	for i, p := range plan {
		out[i] = p.name
	}
	return out
}

// PlanFor is the steps m's provisioning records, in order; steps the record
// shows that the plan lacks (recorded by a newer workflow) follow, so they
// count too. Retries, resets, rollback and teardown do not.
func (m *MEC) PlanFor() []string {
	steps := make([]string, 0, len(plan))
	for _, p := range plan {
		if p.applies == nil || p.applies(m) {
			steps = append(steps, p.name)
		}
	}
	for _, s := range m.Steps {
		if !slices.Contains(notProgress, s.Name) && !slices.Contains(steps, s.Name) {
			steps = append(steps, s.Name)
		}
	}
	return steps
}

// PendingStep is the first step of PlanFor whose latest attempt has not
// succeeded: where a provisioning that failed without a running step (its
// Lambda died before recording the start) stopped.
func (m *MEC) PendingStep() string {
	for _, name := range m.PlanFor() {
		if st := m.Step(name); st == nil || st.Outcome != OutcomeSucceeded {
			return name
		}
	}
	return ""
}

// Progress is how far a MEC's provisioning got, for the API's answers.
type Progress struct {
	// Steps is PlanFor: every step, in order.
	Steps []string `json:"steps"`
	// Done counts the steps whose latest attempt succeeded.
	Done int `json:"done"`
	// Running is the step running now ("" when none).
	Running string `json:"running,omitempty"`
}

// ComputeProgress sets and returns m.Progress.
func (m *MEC) ComputeProgress() *Progress {
	p := &Progress{Steps: m.PlanFor(), Running: m.RunningStep()}
	for _, s := range p.Steps {
		if st := m.Step(s); st != nil && st.Outcome == OutcomeSucceeded {
			p.Done++
		}
	}
	m.Progress = p
	return p
}
