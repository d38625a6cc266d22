package ssmsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/sigv4"
)

const (
	maxInstanceIDs  = 50
	maxStdoutChars  = 24000
	maxStderrChars  = 8000
	maxPluginOutput = 2500
	// exitTimedOut is what the agent reports for a script it killed at executionTimeout
	// on Linux (128 + SIGKILL); exitKilled for a script that died of any other signal.
	exitTimedOut = 137
	exitKilled   = -1
)

// Invocation statuses, as GetCommandInvocation reports them.
const (
	StatusPending    = "Pending"
	StatusInProgress = "InProgress"
	StatusSuccess    = "Success"
	StatusFailed     = "Failed"
	StatusTimedOut   = "TimedOut"
	StatusCancelled  = "Cancelled"
)

// command is one SendCommand. Guarded by Sim.mu.
type command struct {
	id             string
	doc            *document
	comment        string
	params         map[string][]string
	instanceIDs    []string
	requested      time.Time
	expires        time.Time
	timeoutSeconds int32
	execTimeout    time.Duration
	workingDir     string
	script         string
	maxConcurrency string
	maxErrors      string
	status         string
	statusDetails  string
	invocations    []*invocation // in InstanceIds order
	terminalSent   bool
}

type invocation struct {
	cmd           *command
	instanceID    string
	region        string
	status        string
	statusDetails string
	code          int
	stdout        string
	stderr        string
	start, end    time.Time
}

func (v *invocation) terminal() bool {
	switch v.status {
	case StatusSuccess, StatusFailed, StatusTimedOut, StatusCancelled:
		return true
	}
	return false
}

// Invocation is a snapshot of one command invocation, for tests: the
// parameters as sent and the full outputs (before SSM's truncation).
type Invocation struct {
	CommandID, InstanceID, DocumentName, Comment string
	Parameters                                   map[string][]string
	Status, StatusDetails                        string
	ResponseCode                                 int
	Stdout, Stderr                               string
	RequestedAt, StartedAt, EndedAt              time.Time
}

// Invocations lists every invocation of every command, oldest command first.
func (s *Sim) Invocations() []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Invocation
	for _, c := range s.order {
		for _, v := range c.invocations {
			params := map[string][]string{}
			for k, vs := range c.params {
				params[k] = append([]string(nil), vs...)
			}
			out = append(out, Invocation{
				CommandID: c.id, InstanceID: v.instanceID, DocumentName: c.doc.name, Comment: c.comment,
				Parameters: params, Status: v.status, StatusDetails: v.statusDetails, ResponseCode: v.code,
				Stdout: v.stdout, Stderr: v.stderr, RequestedAt: c.requested, StartedAt: v.start, EndedAt: v.end,
			})
		}
	}
	return out
}

type sendCommandInput struct {
	DocumentName    string
	DocumentVersion string
	InstanceIds     []string
	Targets         []json.RawMessage
	Parameters      map[string][]string
	TimeoutSeconds  *int64
	Comment         string
	MaxConcurrency  string
	MaxErrors       string
}

func (s *Sim) sendCommand(r *http.Request) (any, error) {
	var in sendCommandInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	if in.DocumentName == "" {
		return nil, validationError("Value null at 'documentName' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	doc, err := s.lookupDocumentLocked(sigv4.Region(r, defaultRegion), in.DocumentName)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(in.InstanceIds) > maxInstanceIDs {
		return nil, validationError("Value '[%s]' at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to %d",
			strings.Join(in.InstanceIds, ", "), maxInstanceIDs)
	}
	if len(in.InstanceIds) == 0 {
		if len(in.Targets) > 0 {
			return nil, badRequest("InvalidParameters", "the node simulator supports InstanceIds only, not Targets")
		}
		return nil, badRequest("InvalidParameters", "Please specify either instance ids or targets.")
	}
	timeoutSeconds := int64(3600)
	if in.TimeoutSeconds != nil {
		timeoutSeconds = *in.TimeoutSeconds
		if timeoutSeconds < 30 || timeoutSeconds > 2592000 {
			return nil, validationError("Value '%d' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000", timeoutSeconds)
		}
	}
	if len(in.Comment) > 100 {
		return nil, validationError("Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100")
	}
	resolved, err := resolveCommand(doc, in.Parameters)
	if err != nil {
		return nil, err
	}
	execTimeout, workingDir, script := resolved.execTimeout, resolved.workingDir, resolved.script

	ids := dedupe(in.InstanceIds)
	var bad []string
	insts := map[string]Instance{}
	for _, id := range ids {
		inst, ok := s.online(id)
		if !ok {
			bad = append(bad, id)
			continue
		}
		insts[id] = inst
	}
	if len(bad) > 0 {
		return nil, badRequest("InvalidInstanceId", "Instances [[%s]] not in a valid state for account %s", strings.Join(bad, ", "), s.cfg.AccountID)
	}

	params := resolved.params
	now := time.Now()
	c := &command{
		id: newUUID(), doc: doc, comment: in.Comment, params: params, instanceIDs: ids, requested: now,
		expires: now.Add(time.Duration(timeoutSeconds) * time.Second), timeoutSeconds: int32(timeoutSeconds),
		execTimeout: execTimeout, workingDir: workingDir, script: script,
		maxConcurrency: orDefault(in.MaxConcurrency, "50"), maxErrors: orDefault(in.MaxErrors, "0"),
		status: StatusPending, statusDetails: StatusPending,
	}
	for _, id := range ids {
		c.invocations = append(c.invocations, &invocation{cmd: c, instanceID: id, region: insts[id].Region,
			status: StatusPending, statusDetails: StatusPending, code: -1})
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "the simulator is closed"}
	}
	s.commands[c.id] = c
	s.order = append(s.order, c)
	out := map[string]any{"Command": s.commandJSONLocked(c)}
	s.mu.Unlock()
	s.log.InfoContext(r.Context(), "SendCommand", "commandId", c.id, "instances", ids, "executionTimeout", execTimeout.String())
	for _, v := range c.invocations {
		s.goBackground(func() { s.runInvocation(v) })
	}
	return out, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func (s *Sim) commandJSONLocked(c *command) map[string]any {
	completed, errs := 0, 0
	for _, v := range c.invocations {
		if v.terminal() {
			completed++
			if v.status != StatusSuccess {
				errs++
			}
		}
	}
	return map[string]any{
		"CommandId": c.id, "DocumentName": c.doc.name, "DocumentVersion": "$DEFAULT", "Comment": c.comment,
		"ExpiresAfter": epoch(c.expires), "Parameters": c.params, "InstanceIds": c.instanceIDs, "Targets": []any{},
		"RequestedDateTime": epoch(c.requested), "Status": c.status, "StatusDetails": c.statusDetails,
		"OutputS3Region": "", "OutputS3BucketName": "", "OutputS3KeyPrefix": "",
		"MaxConcurrency": c.maxConcurrency, "MaxErrors": c.maxErrors, "TargetCount": len(c.invocations),
		"CompletedCount": completed, "ErrorCount": errs, "DeliveryTimedOutCount": 0, "ServiceRole": "",
		"NotificationConfig":     map[string]any{"NotificationArn": "", "NotificationEvents": []string{}, "NotificationType": ""},
		"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
		"TimeoutSeconds":         c.timeoutSeconds,
	}
}

// refreshCommandLocked derives the command's status from its invocations:
// InProgress once one started; when all are done, Success if every one
// succeeded, else Failed (MaxErrors defaults to 0), Cancelled if all were.
func refreshCommandLocked(c *command) (terminalNow bool) {
	started, done, succeeded, cancelled := false, 0, 0, 0
	for _, v := range c.invocations {
		if v.status != StatusPending {
			started = true
		}
		if v.terminal() {
			done++
		}
		switch v.status {
		case StatusSuccess:
			succeeded++
		case StatusCancelled:
			cancelled++
		}
	}
	switch {
	case done == len(c.invocations) && succeeded == done:
		c.status, c.statusDetails = StatusSuccess, StatusSuccess
	case done == len(c.invocations) && cancelled == done:
		c.status, c.statusDetails = StatusCancelled, StatusCancelled
	case done == len(c.invocations):
		c.status, c.statusDetails = StatusFailed, StatusFailed
	case started:
		c.status, c.statusDetails = StatusInProgress, StatusInProgress
	}
	if done == len(c.invocations) && !c.terminalSent {
		c.terminalSent = true
		return true
	}
	return false
}
