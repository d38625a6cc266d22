package mec

// Status is a MEC's lifecycle state.
type Status string

// Statuses.
const (
	Creating Status = "CREATING"
	Ready    Status = "READY"
	// Scaling: a change of the node count runs (PATCH /mecs/{id}); the MEC
	// serves meanwhile.
	Scaling Status = "SCALING"
	// Degraded: nodes are lost (their instance stopped or terminated, their
	// agent offline); the cause says which, and why no repair runs.
	Degraded Status = "DEGRADED"
	// Repairing: lost nodes are being replaced.
	Repairing Status = "REPAIRING"
	Failed    Status = "FAILED"
	Deleting  Status = "DELETING"
	Deleted   Status = "DELETED"
)

// Statuses lists every status a MEC record can have, in lifecycle order.
var Statuses = []Status{Creating, Ready, Scaling, Degraded, Repairing, Failed, Deleting, Deleted}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if v == s {
			return true
		}
	}
	return false
}

// Live reports whether a MEC in s still holds its name.
func (s Status) Live() bool { return s != Deleted }

// Transient reports whether s is a status a MEC must leave on its own
// (an operation is running); the others wait for a user or the clock.
func (s Status) Transient() bool {
	return s == Creating || s == Scaling || s == Repairing || s == Deleting
}

// Building reports whether the steps that launch nodes and send node
// commands may run in s: a provisioning (CREATING) or an operation on a
// MEC (SCALING, REPAIRING). Any other status, DELETING above all, stops them at their
// next look: a DELETE wins over a running operation.
func (s Status) Building() bool { return s == Creating || s == Scaling || s == Repairing }

// Changing reports whether an operation (a scale or a repair) runs in s.
func (s Status) Changing() bool { return s == Scaling || s == Repairing }

// StatusNames is Statuses as strings, for messages.
func StatusNames() []string {
	out := make([]string, len(Statuses))
	for i, s := range Statuses {
		out[i] = string(s)
	}
	return out
}
