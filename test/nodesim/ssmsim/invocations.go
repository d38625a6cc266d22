package ssmsim

import (
	"fmt"
	"net/http"
	"time"
)

type getCommandInvocationInput struct {
	CommandId  string
	InstanceId string
	PluginName string
}

func (s *Sim) getCommandInvocation(r *http.Request) (any, error) {
	var in getCommandInvocationInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	if len(in.CommandId) != 36 {
		return nil, validationError("Value '%s' at 'commandId' failed to satisfy constraint: Member must have length equal to 36", in.CommandId)
	}
	if in.InstanceId == "" {
		return nil, validationError("Value null at 'instanceId' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.commands[in.CommandId]
	if c != nil && in.PluginName != "" && in.PluginName != c.doc.plugin {
		return nil, badRequest("InvalidPluginName", "The plugin name isn't valid.")
	}
	var v *invocation
	if c != nil {
		for _, iv := range c.invocations {
			if iv.instanceID == in.InstanceId {
				v = iv
			}
		}
	}
	if v == nil {
		return nil, badRequest("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation")
	}
	out := map[string]any{
		"CommandId": c.id, "InstanceId": v.instanceID, "Comment": c.comment,
		"DocumentName": c.doc.name, "DocumentVersion": "$DEFAULT", "PluginName": c.doc.plugin,
		"ResponseCode": v.code, "Status": v.status, "StatusDetails": v.statusDetails,
		"ExecutionStartDateTime": isoMillis(v.start), "ExecutionEndDateTime": isoMillis(v.end), "ExecutionElapsedTime": "",
		"StandardOutputContent": cutChars(v.stdout, maxStdoutChars), "StandardOutputUrl": "",
		"StandardErrorContent": cutChars(v.stderr, maxStderrChars), "StandardErrorUrl": "",
		"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
	}
	if !v.start.IsZero() && !v.end.IsZero() {
		out["ExecutionElapsedTime"] = fmt.Sprintf("PT%.3fS", v.end.Sub(v.start).Seconds())
	}
	return out, nil
}

type listCommandInvocationsInput struct {
	CommandId  string
	InstanceId string
	Details    bool
	MaxResults *int
	NextToken  string
	Filters    []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
}

func (s *Sim) listCommandInvocations(r *http.Request) (any, error) {
	var in listCommandInvocationsInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	max, err := pageSize(in.MaxResults, 1, 50)
	if err != nil {
		return nil, err
	}
	if in.CommandId != "" && len(in.CommandId) != 36 {
		return nil, validationError("Value '%s' at 'commandId' failed to satisfy constraint: Member must have length equal to 36", in.CommandId)
	}
	match, err := invocationFilter(in.Filters)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	var all []*invocation
	// Newest command first, as SSM lists them.
	for i := len(s.order) - 1; i >= 0; i-- {
		c := s.order[i]
		if in.CommandId != "" && c.id != in.CommandId {
			continue
		}
		for _, v := range c.invocations {
			if in.InstanceId != "" && v.instanceID != in.InstanceId {
				continue
			}
			if match(v) {
				all = append(all, v)
			}
		}
	}
	off, err := pageOffset("lci", in.NextToken)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	off = min(off, len(all))
	end := min(off+max, len(all))
	list := make([]map[string]any, 0, end-off)
	for _, v := range all[off:end] {
		c := v.cmd
		item := map[string]any{
			"CommandId": c.id, "InstanceId": v.instanceID, "InstanceName": "", "Comment": c.comment,
			"DocumentName": c.doc.name, "DocumentVersion": "$DEFAULT", "RequestedDateTime": epoch(c.requested),
			"Status": v.status, "StatusDetails": v.statusDetails, "TraceOutput": "",
			"StandardOutputUrl": "", "StandardErrorUrl": "", "ServiceRole": "", "CommandPlugins": []any{},
			"NotificationConfig":     map[string]any{"NotificationArn": "", "NotificationEvents": []string{}, "NotificationType": ""},
			"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
		}
		if in.Details {
			item["CommandPlugins"] = []map[string]any{{
				"Name": c.doc.plugin, "Status": v.status, "StatusDetails": v.statusDetails, "ResponseCode": v.code,
				"ResponseStartDateTime": epoch(v.start), "ResponseFinishDateTime": epoch(v.end),
				"Output":            pluginOutput(v.stdout, v.stderr, maxPluginOutput),
				"StandardOutputUrl": "", "StandardErrorUrl": "", "OutputS3Region": "", "OutputS3BucketName": "", "OutputS3KeyPrefix": "",
			}}
		}
		list = append(list, item)
	}
	s.mu.Unlock()
	out := map[string]any{"CommandInvocations": list}
	if end < len(all) {
		out["NextToken"] = pageToken("lci", end)
	}
	return out, nil
}

// invocationFilter implements ListCommandInvocations' Filters (Status,
// DocumentName, InvokedAfter, InvokedBefore).
func invocationFilter(filters []struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}) (func(*invocation) bool, error) {
	var preds []func(*invocation) bool
	for _, f := range filters {
		f := f
		switch f.Key {
		case "Status":
			preds = append(preds, func(v *invocation) bool { return v.status == f.Value })
		case "DocumentName":
			preds = append(preds, func(v *invocation) bool { return v.cmd.doc.name == f.Value })
		case "InvokedAfter", "InvokedBefore":
			t, err := time.Parse(time.RFC3339, f.Value)
			if err != nil {
				return nil, badRequest("InvalidFilterValue", "The filter value %s isn't valid.", f.Value)
			}
			after := f.Key == "InvokedAfter"
			preds = append(preds, func(v *invocation) bool {
				if after {
					return !v.cmd.requested.Before(t)
				}
				return !v.cmd.requested.After(t)
			})
		default:
			return nil, badRequest("InvalidFilterKey", "The filter key %s isn't valid.", f.Key)
		}
	}
	return func(v *invocation) bool {
		for _, p := range preds {
			if !p(v) {
				return false
			}
		}
		return true
	}, nil
}

// pluginOutput is the agent's combined plugin output (ListCommandInvocations
// Details): stdout, then stderr under an ERROR title, cut to capacity with
// the agent's truncation markers.
func pluginOutput(stdout, stderr string, capacity int) string {
	const (
		truncOut   = "\n---Output truncated---"
		truncError = "\n---Error truncated----"
		errTitle   = "\n----------ERROR-------\n"
	)
	title := ""
	if stderr != "" {
		title = errTitle
	}
	avail := capacity - len(title)
	so, se := len(stdout), len(stderr)
	switch {
	case so+se < avail:
		return stdout + title + stderr
	case so > avail/2 && se > avail/2:
		n := (avail - len(truncError) - len(truncOut)) / 2
		return stdout[:n] + truncOut + title + stderr[:n] + truncError
	case so < avail/2:
		return stdout + title + stderr[:avail-len(truncError)-so] + truncError
	default:
		return stdout[:avail-len(truncOut)-se] + truncOut + title + stderr
	}
}
