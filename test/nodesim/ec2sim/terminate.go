package ec2sim

import (
	"net/netip"
	"time"

	"github.com/mecd/mecd/test/nodesim/latency"
)

func (s *Sim) terminateInstances(c *call, x *xmlw) error {
	ids := c.p.list("InstanceId")
	if len(ids) == 0 {
		return missing("InstanceId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	ins, err := s.lookupInstances(c.region, ids)
	if err != nil {
		return err
	}
	type change struct{ id, prev, cur string }
	var changes []change
	seen := map[string]bool{}
	for _, in := range ins {
		if seen[in.ID] {
			continue
		}
		seen[in.ID] = true
		prev := in.State
		if prev == StatePending || prev == StateRunning {
			in.State = StateShuttingDown
			in.reason = "User initiated (" + time.Now().UTC().Format("2006-01-02 15:04:05") + " GMT)"
			s.emit(in)
			s.schedule(in, s.delay(latency.Terminate), func(in *instance) bool {
				s.finishTermination(in)
				return true
			})
		}
		changes = append(changes, change{in.ID, prev, in.State})
	}
	x.set("instancesSet", len(changes), func(i int) {
		x.leaf("instanceId", changes[i].id)
		writeState(x, "currentState", changes[i].cur)
		writeState(x, "previousState", changes[i].prev)
	})
	return nil
}

// finishTermination frees the addresses and deletes or detaches the volumes.
// Callers hold s.mu.
func (s *Sim) finishTermination(in *instance) {
	in.State, in.TerminatedAt = StateTerminated, time.Now()
	if sn, ok := s.subnets[in.SubnetID]; ok {
		if a, err := netip.ParseAddr(in.PrivateIP); err == nil {
			delete(sn.used, a)
		}
	}
	delete(s.publicIPs, in.PublicIP)
	for _, v := range in.volumes {
		if v.DeleteOnTermination {
			delete(s.volumes, v.ID)
			v.state = "deleted"
		} else {
			v.state, v.instanceID = "available", ""
		}
	}
}
