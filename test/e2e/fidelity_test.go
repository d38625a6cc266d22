package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/ec2sim"
	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// An instance type the region does not have is refused before 202, naming
// the field: no record, no name held, no provisioning that fails later.
// Started from the console (no API in front), the same spec fails at resolve
// and gives its name back at once.
func TestRegionRefusalsComeBeforeAccepting(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("badtype")
	code, _, b := call(t, rt, "POST", "/mecs", `{"name":"`+name+`","nodeCount":1,"instanceType":"t9z.gigantic"}`, nil)
	var er struct {
		Error struct {
			Code   string            `json:"code"`
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &er)
	if code != http.StatusBadRequest || !strings.Contains(er.Error.Fields["instanceType"], "does not exist") {
		t.Fatalf("POST with t9z.gigantic: %d %s", code, b)
	}
	st := &store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}
	if owner, err := st.NameOwner(context.Background(), name); err != nil || owner != "" {
		t.Fatalf("the refused name is held by %q (%v)", owner, err)
	}

	console := localrt.UniqueName("badtype-console")
	r := provision(t, rt, `{"name":"`+console+`","nodeCount":1,"instanceType":"t9z.gigantic"}`)
	m := findByName(t, rt, console)
	if string(r.out.Status) != "FAILED" || m.Status != mec.Failed || m.FailedStep != mec.StepResolve || !strings.Contains(m.FailureCause, "instanceType") {
		t.Fatalf("console run: %s, record %s at %q: %s", r.out.Status, m.Status, m.FailedStep, m.FailureCause)
	}
	if owner, err := st.NameOwner(context.Background(), console); err != nil || owner != "" {
		t.Fatalf("a MEC FAILED at resolve still holds its name (%q, %v)", owner, err)
	}
}

// A deleted MEC says so at once (DELETE answers DELETING), keeps its nodes
// only as terminated history without their public addresses, and its
// kubeconfig call says the kubeconfig is gone rather than "once READY".
func TestGoneMECsShowWhatIsGone(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("gone")
	m := accepted(t, rt, `{"name":"`+name+`","nodeCount":1,"publicEndpoint":true}`)
	ready := waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	if len(ready.LiveNodes()) != 1 || ready.Nodes[0].PublicIP == "" {
		t.Fatalf("READY MEC nodes %+v", ready.Nodes)
	}
	code, _, b := call(t, rt, "DELETE", "/mecs/"+m.ID, "", nil)
	if d := decodeMEC(t, b); code != http.StatusAccepted || d.Status != mec.Deleting {
		t.Fatalf("DELETE answered %d with status %s, want 202 DELETING", code, d.Status)
	}
	gone := waitStatus(t, rt, m.ID, mec.Deleted, 60*time.Second)
	for _, n := range gone.Nodes {
		if n.Live() || n.PublicIP != "" || n.EndedAt == nil || n.Reason == "" {
			t.Errorf("node of a DELETED MEC: %+v", n)
		}
	}
	if gone.Endpoint != "" {
		t.Errorf("a DELETED MEC still has endpoint %s", gone.Endpoint)
	}
	code, _, b = call(t, rt, "GET", "/mecs/"+m.ID+"/kubeconfig", "", nil)
	if code != http.StatusConflict || !strings.Contains(string(b), "deleted with it") {
		t.Fatalf("kubeconfig of a DELETED MEC: %d %s", code, b)
	}
}

// force turns a documented behaviour on for every launch while the test
// runs, lasting seconds (on AWS, before scaling) each time.
func force(t *testing.T, rt *localrt.Runtime, b fidelity.Behaviour, p latency.Phase, seconds float64) {
	t.Helper()
	rt.Sim.Fidelity.Force(b, 1)
	rt.Sim.Latency.Fix(p, seconds)
	t.Cleanup(func() {
		rt.Sim.Fidelity.Force(b, fidelity.Defaults[b])
		rt.Sim.Latency.Unfix(p)
	})
}

// Tests that force a behaviour do not run in parallel with each other:
// the behaviour and its duration are the runtime's, for every MEC.

// Each documented behaviour, forced on every launch, and the MEC still
// reaches READY:
//   - new instance ids answer InvalidInstanceID.NotFound for a while (EC2's
//     eventual consistency): the online check waits instead of rolling back;
//   - a new instance profile is refused by RunInstances until IAM propagated
//     it: the launch waits for it (here a minute);
//   - after the joins re-form dqlite the API server refuses connections for a
//     while: enabling addons and verifying the nodes wait it out;
//   - the role credentials a node reads may expire five minutes later: a long
//     install reads them again for each Parameter Store call.
func TestProvisionWithForcedBehaviours(t *testing.T) {
	rt := localrt.Get(t)
	tests := []struct {
		name      string
		behaviour fidelity.Behaviour
		phase     latency.Phase
		seconds   float64
		spec      string
		// minStep: a step that must have lasted at least the forced time.
		minStep string
		// addons fixes how long enabling the addons takes (0: the model's).
		addons float64
	}{
		{"NewInstancesNotYetVisible", fidelity.InstanceVisibility, latency.Visibility, 90, `"nodeCount":2`, "", 0},
		// A MEC's own new profile: none of the spares made ahead.
		{"NodeProfileNotYetPropagated", fidelity.ProfilePropagation, latency.ProfilePropagation, 60, `"nodeCount":1`, mec.StepLaunch, 0},
		// The addons take longer than a join: the restart comes while dns,
		// enabled during the joins, is still being enabled.
		{"APIServerBlinkAfterJoins", fidelity.APIServerBlink, latency.APIServerBlink, 120, `"nodeCount":3,"addons":["dns","hostpath-storage"]`, "", 200},
		{"NodeCredentialsExpireDuringALongInstall", fidelity.CredentialsNearExpiry, latency.SnapInstall, 900, `"nodeCount":2`, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.behaviour == fidelity.ProfilePropagation {
				drainSpares(t, rt)
			}
			force(t, rt, tc.behaviour, tc.phase, tc.seconds)
			if tc.addons > 0 {
				rt.Sim.Latency.Fix(latency.Addons, tc.addons)
				t.Cleanup(func() { rt.Sim.Latency.Unfix(latency.Addons) })
			}
			name := localrt.UniqueName("forced")
			r := provision(t, rt, `{"name":"`+name+`",`+tc.spec+`}`)
			m := findByName(t, rt, name)
			if string(r.out.Status) != "SUCCEEDED" || m.Status != mec.Ready {
				t.Fatalf("%s, record %s at %s: %s", r.out.Status, m.Status, m.FailedStep, m.FailureCause)
			}
			minWait := time.Duration(tc.seconds * rt.Sim.Latency.Scale() * float64(time.Second))
			if st := m.Step(tc.minStep); tc.minStep != "" && (st == nil || time.Duration(st.Seconds*float64(time.Second)) < minWait) {
				t.Fatalf("step %s %+v: it did not wait (%v)", tc.minStep, st, minWait)
			}
			if strings.Contains(tc.spec, `"dns"`) {
				// dns is enabled while the nodes join, and the API server's
				// restart after a join cuts it short: every node still has
				// its kubelet arguments, from the launch configuration.
				for _, n := range m.LiveNodes() {
					if h, _ := rt.Sim.SSMSim.Host(n.InstanceID); h.KubeletArgs["--cluster-dns"] != "10.152.183.10" || h.KubeletArgs["--cluster-domain"] != "cluster.local" {
						t.Errorf("node %d: kubelet arguments %v, no DNS", n.Index, h.KubeletArgs)
					}
				}
			}
		})
	}
}

// DescribeInstanceInformation answers 10 nodes a page: a 20-node MEC is
// online only when every page was read.
func TestTwentyNodeMEC(t *testing.T) {
	rt := localrt.Get(t)
	name := localrt.UniqueName("twenty")
	r := provision(t, rt, `{"name":"`+name+`","nodeCount":20}`)
	m := findByName(t, rt, name)
	if string(r.out.Status) != "SUCCEEDED" || m.Status != mec.Ready || len(m.LiveNodes()) != 20 {
		t.Fatalf("%s, record %s at %s: %s", r.out.Status, m.Status, m.FailedStep, m.FailureCause)
	}
	deleteClean(t, rt, m.ID)
}

// SSM keeps the first 8,000 characters of a command's stderr: a tool that
// writes more before its real error still gets its real error into the
// cause.
func TestCauseIsTheEndOfALongError(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("longerr")
	noise := strings.Repeat("snapd: retrying download of chunk\n", 400) // ~13,600 characters
	rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: 0},
		Prefix: "snap install", ExitCode: 1, Stderr: noise + "error: cannot install \"microk8s\": REAL-CAUSE-disk-full\n"})
	r := provision(t, rt, `{"name":"`+name+`","nodeCount":1}`)
	m := findByName(t, rt, name)
	if string(r.out.Status) != "FAILED" || m.FailedStep != mec.StepInstall || !strings.Contains(m.FailureCause, "REAL-CAUSE-disk-full") {
		t.Fatalf("%s at %s: the cause lacks the real error: %s", r.out.Status, m.FailedStep, tail(m.FailureCause, 300))
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// With a customer managed default EBS key EC2 may not use, instances end at
// launch (Client.InternalError): the MEC fails with a cause that names the
// key and the grant, not "node is terminated".
func TestUnusableEBSKeyIsNamed(t *testing.T) {
	rt := localrt.Get(t)
	const region = "ap-northeast-1" // this test's own: the setting is the region's
	key := "arn:aws:kms:" + region + ":000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	rt.Sim.EC2Sim.SetEBSDefaults(region, true, key, false)
	t.Cleanup(func() { rt.Sim.EC2Sim.SetEBSDefaults(region, false, "", true) })
	name := localrt.UniqueName("kms")
	r := provision(t, rt, `{"name":"`+name+`","nodeCount":1,"region":"`+region+`"}`)
	m := findByName(t, rt, name)
	if string(r.out.Status) != "FAILED" || m.FailedStep != mec.StepNodesOnline ||
		!strings.Contains(m.FailureCause, key) || !strings.Contains(m.FailureCause, "kms:CreateGrant") {
		t.Fatalf("%s at %s: %s", r.out.Status, m.FailedStep, m.FailureCause)
	}
	leakFree(t, rt, m.ID)
}

// IAM applies a node role's new policy only after a while: the scripts that
// run right after a stage change (node 0 minting the token once the boot
// install is done, storing the kubeconfig with no addons to enable) ride it
// out. Not parallel: the setting is the runtime's.
func TestNodePolicyChangesTakeTimeToApply(t *testing.T) {
	rt := localrt.Get(t)
	rt.Front.SetIAMPropagation(time.Second)
	t.Cleanup(func() { rt.Front.SetIAMPropagation(10 * time.Millisecond) })
	name := localrt.UniqueName("iamlag")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":2,"haControlPlane":false,"addons":[]}`, name))
	waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second) // a FAILED MEC fails the test with its cause
}

// Without the dns addon no kubelet is pointed at a cluster DNS service that
// nothing answers: pods keep the node's resolver.
func TestNoClusterDNSWithoutTheAddon(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("nodns")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":2,"addons":["hostpath-storage"]}`, name))
	ready := waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	for _, n := range ready.LiveNodes() {
		h, _ := rt.Sim.SSMSim.Host(n.InstanceID)
		if _, set := h.KubeletArgs["--cluster-dns"]; set || slices.Contains(h.Addons, "dns") || !slices.Contains(h.Addons, "hostpath-storage") {
			t.Errorf("node %d: addons %v, kubelet arguments %v", n.Index, h.Addons, h.KubeletArgs)
		}
	}
	deleteClean(t, rt, m.ID)
}

// ebsKmsKeyId encrypts the nodes' volumes with the spec's key; a key EC2
// may not use ends the launch with a cause that names it and the fix. The
// IAM proof evaluates the grants the launch needed against the stack.
func TestEBSKeyFromTheSpec(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	for _, tc := range []struct {
		name   string
		usable bool
	}{{"usable", true}, {"unusable", false}} {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", rt.Region, localrt.Account, uuidFor(tc.name))
			// Tagged as the stack's default policy wants its keys.
			rt.Sim.EC2Sim.SetKMSKey(key, ec2sim.KMSKey{Usable: tc.usable, Tags: map[string]string{"mecd:ebs-key": "true"}})
			name := localrt.UniqueName("cmk")
			r := provision(t, rt, `{"name":"`+name+`","nodeCount":1,"ebsKmsKeyId":"`+key+`"}`)
			m := findByName(t, rt, name)
			if !tc.usable {
				if string(r.out.Status) != "FAILED" || m.FailedStep != mec.StepNodesOnline ||
					!strings.Contains(m.FailureCause, key) || !strings.Contains(m.FailureCause, "ebsKmsKeyId") {
					t.Fatalf("%s at %s: %s", r.out.Status, m.FailedStep, m.FailureCause)
				}
				leakFree(t, rt, m.ID)
				return
			}
			if string(r.out.Status) != "SUCCEEDED" {
				t.Fatalf("%s: %s", r.out.Status, m.FailureCause)
			}
			inst, ok := rt.Sim.EC2Sim.Instance(m.Nodes[0].InstanceID)
			if !ok || len(inst.Volumes) == 0 {
				t.Fatal("no volumes")
			}
			for _, v := range inst.Volumes {
				if !v.Encrypted || v.KmsKeyID != key {
					t.Errorf("volume %s encrypted=%v with %q, want %s", v.ID, v.Encrypted, v.KmsKeyID, key)
				}
			}
		})
	}
}

// uuidFor is a key id, stable per name.
func uuidFor(name string) string {
	h := sha256.Sum256([]byte(name))
	x := hex.EncodeToString(h[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// An AMI whose root device is not /dev/sda1 (Amazon Linux's /dev/xvda):
// the root volume is the one sized and encrypted, not a second volume.
func TestRootDeviceFromTheAMI(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	const ami = "ami-0e1e2e3e4e5e6e7e8"
	rt.Sim.EC2Sim.RegisterImageWithRoot(rt.Region, ami, "arm64", "/dev/xvda")
	name := localrt.UniqueName("xvda")
	r := provision(t, rt, `{"name":"`+name+`","nodeCount":1,"amiId":"`+ami+`","rootVolumeGiB":40}`)
	m := findByName(t, rt, name)
	if string(r.out.Status) != "SUCCEEDED" {
		t.Fatalf("%s at %s: %s", r.out.Status, m.FailedStep, m.FailureCause)
	}
	in, ok := rt.Sim.EC2Sim.Instance(m.Nodes[0].InstanceID)
	if !ok || len(in.Volumes) != 1 {
		t.Fatalf("volumes %+v", in.Volumes)
	}
	if v := in.Volumes[0]; v.DeviceName != "/dev/xvda" || v.SizeGiB != 40 || !v.Encrypted {
		t.Fatalf("root volume %+v, want /dev/xvda, 40 GiB, encrypted", v)
	}
}

// Other SSM commands in the account (an operator's AWS-RunShellScript on a
// MEC node, Patch Manager) are not mecd's: the command-status rule matches
// mecd's own document only, and a status event of a command nobody
// registered writes nothing. Deleting the MEC removes its own command waits.
func TestOtherCommandsAreNotMecds(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	ctx := context.Background()
	m := accepted(t, rt, `{"name":"`+localrt.UniqueName("foreign")+`","nodeCount":1}`)
	ready := waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	c := rt.Clients(ready.Region).SSM
	out, err := c.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{ready.Nodes[0].InstanceID},
		Parameters: map[string][]string{"commands": {"microk8s status --wait-ready >/dev/null; echo operator"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := out.Command.CommandId
	if err := ssm.NewCommandExecutedWaiter(c).Wait(ctx, &ssm.GetCommandInvocationInput{CommandId: id, InstanceId: aws.String(ready.Nodes[0].InstanceID)},
		30*time.Second, func(o *ssm.CommandExecutedWaiterOptions) {
			o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
		}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // EventBridge delivers in milliseconds here
	st := &store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}
	if w, err := st.GetWait(ctx, aws.ToString(id)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an operator's command got a command wait: %+v %v", w, err)
	}
	if len(ready.CommandIDs) == 0 {
		t.Fatal("the record lists no node commands")
	}
	deleteClean(t, rt, m.ID) // the audit includes the MEC's command waits
}

// A node's Parameter Store calls ride out what SSM answers under load:
// throttling is HTTP 400 ThrottlingException, which curl's --retry does not
// retry (finalize storing the kubeconfig), and a 5xx that curl's --retry
// would retry with --fail-with-body writes the failed body before the good
// one (install reading the join token would parse two documents).
func TestNodeParameterCallsRideOutErrors(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	tests := []struct {
		name, action, code string
		nodes              int
	}{
		{"kubeconfig write throttled", "PutParameter", "ThrottlingException", 1},
		{"join token read answered 500", "GetParameter", "InternalServerError", 3},
		// IMDS promises new credentials five minutes before the old expire,
		// nothing about those read earlier: a call may carry expired ones.
		{"kubeconfig write with expired credentials", "PutParameter", "ExpiredTokenException", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := localrt.UniqueName("nodecalls")
			rt.Sim.Faults.FailAPI(fault.API{Service: "ssm", Action: tc.action, Rate: 1, Times: 2, Code: tc.code,
				Host: &fault.Host{TagKey: mec.TagName, TagValue: name, Index: 0}})
			m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":%d}`, name, tc.nodes))
			waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second) // a FAILED MEC fails the test with its cause
		})
	}
}
