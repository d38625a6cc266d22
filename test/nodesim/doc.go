// Package nodesim is a test double of the parts of AWS that kumo lacks or gets
// too shallow for mecd: EC2 hosts (instances, security groups, the default VPC)
// and the SSM agent (Run Command), plus the hosts themselves, on which the real
// node scripts run in bash against `snap` and `microk8s` stand-ins.
//
// It is NOT production code and nothing in functions/ or internal/ imports it.
// It sits behind the local runtime's front on 127.0.0.1:4566:
//
//	front ──► EC2 Query API (any action)            ──► ec2sim.Sim
//	      ──► AmazonSSM.SendCommand, GetCommandInvocation,
//	          ListCommandInvocations, DescribeInstanceInformation ──► ssmsim.Sim
//	      ──► /_sim/... (stand-in control, IMDSv2)   ──► ssmsim.Sim control handler
//	      ──► everything else                         ──► kumo
//
// Sub-packages:
//   - latency: per-phase durations (low/typical/high, scaled).
//   - fault: host faults (never online, a named command fails) and API faults.
//   - ec2sim: the EC2 actions the product uses, in EC2's XML protocol.
//   - ssmsim: Run Command, the simulated hosts, the snap/microk8s stand-ins and
//     the IMDSv2 stand-in.
//
// Traffic stays on 127.0.0.0/8: simulated hosts get private addresses in the
// default VPC's 172.31.0.0/16 for realism, but nothing ever connects to them;
// a stand-in `microk8s join 172.31.x.y:25000/...` is routed by the simulator to
// the host owning that address.
package nodesim
