// Package e2e runs mecd end to end on the local runtime: the real state
// machines, the real Lambda binaries and the real node scripts on simulated
// hosts.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"gopkg.in/yaml.v3"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

func TestMain(m *testing.M) {
	opts := localrt.Options{Scale: 0.01, Processes: 4}
	if path := os.Getenv("MECD_LAMBDA_LOG"); path != "" {
		// Debugging aid: every Lambda log line, as written.
		f, err := os.Create(path)
		if err == nil {
			defer f.Close()
			opts.LogMirror = f
		}
	}
	localrt.MainThen(m, opts, proveIAM)
}

type run struct {
	out     *sfn.DescribeExecutionOutput
	summary steps.Summary
}

// provision starts the provision state machine as the console does (a bare
// spec) and waits for the execution to end.
func provision(t *testing.T, rt *localrt.Runtime, specJSON string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	arn, err := rt.StartExecution(ctx, rt.Deployed.StateMachineArns["provision"], "", specJSON)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rt.WaitExecution(ctx, arn, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := run{out: out}
	if out.Output != nil {
		if err := json.Unmarshal([]byte(aws.ToString(out.Output)), &r.summary); err != nil {
			t.Fatalf("output %s: %v", aws.ToString(out.Output), err)
		}
	}
	return r
}

// findByName reads the record of the MEC named name.
func findByName(t *testing.T, rt *localrt.Runtime, name string) *mec.MEC {
	t.Helper()
	st := &store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}
	q := store.ListQuery{Limit: store.MaxListLimit}
	for range 1000 {
		page, next, err := st.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			if m.Name == name {
				return m
			}
		}
		if next == "" {
			break
		}
		q.Token = next
	}
	t.Fatalf("no record named %s", name)
	return nil
}

func stepNames(m *mec.MEC) []string {
	var out []string
	for _, s := range m.Steps {
		out = append(out, s.Name+"="+s.Outcome)
	}
	return out
}

func leakFree(t *testing.T, rt *localrt.Runtime, clusterID string) {
	t.Helper()
	leaks, err := rt.LeakAudit(context.Background(), clusterID)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) > 0 {
		t.Fatalf("leaked after rollback:\n%s", strings.Join(leaks, "\n"))
	}
}

func TestProvisionThreeNodeMEC(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("edge")
	r := provision(t, rt, fmt.Sprintf(`{"name":%q,"apiAccessCidrs":["10.20.0.0/16"],"nodePortCidrs":["192.168.0.0/24"],"tags":{"team":"edge"}}`, name))
	if r.out.Status != "SUCCEEDED" {
		m := findByName(t, rt, name)
		t.Fatalf("execution %s: %s %s; record %s step %s cause %s", r.out.Status, aws.ToString(r.out.Error), aws.ToString(r.out.Cause), m.Status, m.FailedStep, m.FailureCause)
	}
	m := findByName(t, rt, name)
	ctx := context.Background()

	t.Run("record", func(t *testing.T) {
		if m.Status != mec.Ready || len(m.Nodes) != 3 || m.Endpoint == "" {
			t.Fatalf("record: status %s nodes %d endpoint %q", m.Status, len(m.Nodes), m.Endpoint)
		}
		if r.summary.ClusterID != m.ID || r.summary.Status != mec.Ready || r.summary.Endpoint != m.Endpoint {
			t.Fatalf("execution output %+v does not describe the record", r.summary)
		}
		if m.Endpoint != "https://"+m.Nodes[0].PrivateIP+":16443" {
			t.Fatalf("endpoint %s is not node 0's private address %s", m.Endpoint, m.Nodes[0].PrivateIP)
		}
		want := []string{mec.StepRecord, mec.StepResolve, mec.StepSecurityGroup, mec.StepLaunch, mec.StepNodesOnline,
			mec.StepInstall, mec.StepJoinToken, mec.StepJoin, mec.StepFinalize, mec.StepAddons,
			mec.StepVerify, mec.StepKubeconfig, mec.StepReady}
		for _, w := range want {
			st := m.Step(w)
			if st == nil || st.Outcome != mec.OutcomeSucceeded || st.EndedAt == nil {
				t.Errorf("step %s missing or not succeeded: %v", w, stepNames(m))
			}
		}
		// Every node joined in time: node 0 finished the build in the
		// install command, and the finalize step sent no command of its own.
		if st := m.Step(mec.StepFinalize); st == nil || st.Detail != "the install command finished the build" {
			t.Errorf("finalize step %+v: want it done by the install command", st)
		}
		for _, inv := range rt.Sim.SSMSim.Invocations() {
			if strings.HasPrefix(inv.Comment, "mecd "+m.ID+" ") && inv.Comment != "mecd "+m.ID+" "+mec.StepInstall {
				t.Errorf("command %q sent besides the install command", inv.Comment)
			}
		}
		for i, nd := range m.Nodes {
			if nd.Index != i || nd.Role != "control-plane" || nd.PrivateIP == "" {
				t.Errorf("node %d: %+v", i, nd)
			}
		}
	})

	t.Run("cluster", func(t *testing.T) {
		h, ok := rt.Sim.SSMSim.Host(m.Nodes[0].InstanceID)
		if !ok {
			t.Fatal("node 0 has no host")
		}
		if len(h.Members) != 3 {
			t.Fatalf("members %d, want 3", len(h.Members))
		}
		voters := 0
		for _, mem := range h.Members {
			if mem.Voter {
				voters++
			}
			if mem.InstanceID != m.Nodes[0].InstanceID && (!mem.CheckVerified || mem.SkipVerify) {
				t.Errorf("%s joined without the certificate check (verified=%v skip=%v)", mem.InstanceID, mem.CheckVerified, mem.SkipVerify)
			}
			if mem.Role != "control-plane" {
				t.Errorf("%s role %s", mem.InstanceID, mem.Role)
			}
		}
		if voters != 3 {
			t.Errorf("dqlite voters %d, want 3", voters)
		}
		// Every node installed MicroK8s at first boot, from its user data.
		for _, n := range m.Nodes {
			if _, err := os.Stat(filepath.Join(rt.Dir(), "hosts", n.InstanceID, "root/var/lib/mecd/state/boot-install")); err != nil {
				log, _ := os.ReadFile(filepath.Join(rt.Dir(), "hosts", n.InstanceID, "root/var/log/cloud-init-output.log"))
				t.Errorf("node %d did not install at boot: %v; cloud-init output:\n%s", n.Index, err, tail(string(log), 2000))
			}
		}
		// MicroK8s keeps a used TTL token valid until it expires: once every
		// node joined, node 0 holds none of the build's tokens.
		if len(h.Tokens) != 0 {
			t.Errorf("node 0 still holds %d join tokens after READY", len(h.Tokens))
		}
		if !slices.Contains(h.Addons, "dns") {
			t.Errorf("addons %v lack dns", h.Addons)
		}
		host := strings.TrimSuffix(strings.TrimPrefix(m.Endpoint, "https://"), ":16443")
		if !slices.Contains(h.CertSANs, host) {
			t.Errorf("API server SANs %v lack the endpoint %s", h.CertSANs, host)
		}
	})

	t.Run("kubeconfig and token parameters", func(t *testing.T) {
		c := rt.Clients(m.Region).SSM
		p, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID)), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if p.Parameter.Type != ssmtypes.ParameterTypeSecureString {
			t.Errorf("kubeconfig parameter type %s", p.Parameter.Type)
		}
		servers, err := kubeconfigServers([]byte(aws.ToString(p.Parameter.Value)))
		if err != nil || len(servers) == 0 {
			t.Fatalf("kubeconfig is not YAML with a cluster: %v", err)
		}
		if servers[0] != m.Endpoint {
			t.Errorf("kubeconfig server %s, want %s", servers[0], m.Endpoint)
		}
		_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(mec.TokenParam(m.ID))})
		var nf *ssmtypes.ParameterNotFound
		if err == nil || !errors.As(err, &nf) {
			t.Errorf("join token parameter still there (err %v)", err)
		}
	})

	t.Run("a READY MEC's nodes reach none of its parameters", func(t *testing.T) {
		ic := iam.NewFromConfig(rt.AWSConfig(""))
		p, err := ic.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(m.RoleName()), PolicyName: aws.String(nodepolicy.InlineName)})
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := url.QueryUnescape(aws.ToString(p.PolicyDocument))
		if want := nodepolicy.Inline(m.ID, m.Region, nodepolicy.Phase{Stage: nodepolicy.Sealed}); doc != want {
			t.Errorf("node role policy after READY:\n%s\nwant it sealed:\n%s", doc, want)
		}
		// With the credentials a hostNetwork pod on any node could take from
		// IMDS, the front deciding as AWS would.
		for _, n := range m.Nodes {
			c := nodeSSM(t, rt, n.InstanceID)
			for _, call := range []struct {
				what string
				do   func() error
			}{
				{"read the kubeconfig", func() error {
					_, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID)), WithDecryption: aws.Bool(true)})
					return err
				}},
				{"overwrite the kubeconfig", func() error {
					_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID)), Value: aws.String("x"),
						Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)})
					return err
				}},
				{"read the join token", func() error {
					_, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(mec.TokenParam(m.ID)), WithDecryption: aws.Bool(true)})
					return err
				}},
			} {
				var ae smithy.APIError
				if err := call.do(); !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" {
					t.Errorf("node %d (%s) may %s: %v", n.Index, n.Role, call.what, err)
				}
			}
		}
	})

	t.Run("security group", func(t *testing.T) {
		var found bool
		for _, sg := range rt.Sim.EC2Sim.SecurityGroups() {
			if sg.ID != m.SecurityGroupID {
				continue
			}
			found = true
			for _, rule := range sg.Ingress {
				if slices.Contains(rule.CIDRs, "0.0.0.0/0") {
					t.Errorf("ingress open to 0.0.0.0/0: %+v", rule)
				}
				if rule.Protocol == "-1" && len(rule.CIDRs) > 0 || rule.FromPort <= 22 && rule.ToPort >= 22 && rule.Protocol != "-1" {
					t.Errorf("ingress covers port 22 or all traffic from CIDRs: %+v", rule)
				}
				if rule.Protocol == "-1" && !slices.Equal(rule.GroupIDs, []string{sg.ID}) {
					t.Errorf("all-traffic rule not limited to the group itself: %+v", rule)
				}
			}
			if sg.Tags[mec.TagClusterID] != m.ID || sg.Tags["team"] != "edge" {
				t.Errorf("group tags %v", sg.Tags)
			}
		}
		if !found {
			t.Fatalf("security group %s not found", m.SecurityGroupID)
		}
	})

	t.Run("instances", func(t *testing.T) {
		for _, nd := range m.Nodes {
			in, ok := rt.Sim.EC2Sim.Instance(nd.InstanceID)
			if !ok {
				t.Fatalf("instance %s missing", nd.InstanceID)
			}
			if in.HTTPTokens != "required" {
				t.Errorf("%s IMDS tokens %q", in.ID, in.HTTPTokens)
			}
			if len(in.Volumes) == 0 || !in.Volumes[0].Encrypted || in.Volumes[0].VolumeType != "gp3" || in.Volumes[0].SizeGiB != 30 {
				t.Errorf("%s volumes %+v", in.ID, in.Volumes)
			}
			if in.Tags[mec.TagClusterID] != m.ID || in.Tags[mec.TagManaged] != "true" || in.Tags["team"] != "edge" {
				t.Errorf("%s tags %v", in.ID, in.Tags)
			}
			if len(in.Volumes) > 0 && in.Volumes[0].Tags[mec.TagClusterID] != m.ID {
				t.Errorf("%s volume tags %v", in.ID, in.Volumes[0].Tags)
			}
			if !strings.HasSuffix(in.IamInstanceProfileArn, ":instance-profile/mecd/"+m.RoleName()) {
				t.Errorf("%s profile %s is not the MEC's own", in.ID, in.IamInstanceProfileArn)
			}
		}
	})
}

func TestProvisionRoles(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	tests := []struct {
		nodes         int
		controlPlanes int
		workers       int
	}{
		{1, 1, 0},
		{5, 3, 2},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d nodes", tc.nodes), func(t *testing.T) {
			t.Parallel()
			name := localrt.UniqueName(fmt.Sprintf("n%d", tc.nodes))
			r := provision(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":%d}`, name, tc.nodes))
			m := findByName(t, rt, name)
			if r.out.Status != "SUCCEEDED" || m.Status != mec.Ready {
				t.Fatalf("status %s / %s: %s %s", r.out.Status, m.Status, m.FailedStep, m.FailureCause)
			}
			h, _ := rt.Sim.SSMSim.Host(m.Nodes[0].InstanceID)
			cp, wk, voters := 0, 0, 0
			for _, mem := range h.Members {
				switch mem.Role {
				case "control-plane":
					cp++
				case "worker":
					wk++
				}
				if mem.Voter {
					voters++
				}
			}
			oneCommandPerAttempt(t, rt, m)
			if cp != tc.controlPlanes || wk != tc.workers || len(h.Members) != tc.nodes || voters != tc.controlPlanes {
				t.Fatalf("members %d: control planes %d workers %d voters %d, want %d/%d", len(h.Members), cp, wk, voters, tc.controlPlanes, tc.workers)
			}
			for _, nd := range m.Nodes {
				wantRole := "control-plane"
				if nd.Index >= tc.controlPlanes {
					wantRole = "worker"
				}
				if nd.Role != wantRole {
					t.Errorf("node %d role %s, want %s", nd.Index, nd.Role, wantRole)
				}
			}
		})
	}
}

func TestProvisionFailuresRollBack(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	tests := []struct {
		name      string
		inject    func(name string)
		wantStep  string
		wantCause string
		notCause  string // a cause that would mean the failure was found late (the joiners timed out)
	}{
		{
			name: "a host never reaches SSM Online",
			inject: func(name string) {
				rt.Sim.Faults.NeverOnline(fault.Host{TagKey: mec.TagName, TagValue: name, Index: 1})
			},
			wantStep: mec.StepNodesOnline, wantCause: "never reported Online",
		},
		{
			name: "an install command fails",
			inject: func(name string) {
				rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: 2},
					Prefix: "snap install", ExitCode: 1, Stderr: "error: cannot install \"microk8s\": snap store unreachable (injected)"})
			},
			wantStep: mec.StepInstall, wantCause: "snap store unreachable (injected)",
		},
		{
			// The joiners wait for node 0's token inside the same command:
			// node 0's failure ends the step at once (a fail-fast wait), not
			// when the joiners give up waiting.
			name: "node 0 cannot mint the join token",
			inject: func(name string) {
				rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: 0},
					Prefix: "microk8s add-node", ExitCode: 1, Stderr: "cluster agent unreachable (injected)"})
			},
			wantStep: mec.StepInstall, wantCause: "(node 0): Failed", notCause: "(node 1)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := localrt.UniqueName("fail")
			tc.inject(name)
			r := provision(t, rt, fmt.Sprintf(`{"name":%q}`, name))
			m := findByName(t, rt, name)
			if r.out.Status != "FAILED" || m.Status != mec.Failed {
				t.Fatalf("execution %s, record %s: want FAILED", r.out.Status, m.Status)
			}
			if m.FailedStep != tc.wantStep || !strings.Contains(m.FailureCause, tc.wantCause) {
				t.Fatalf("failed step %q cause %q; want step %q cause containing %q", m.FailedStep, m.FailureCause, tc.wantStep, tc.wantCause)
			}
			if tc.notCause != "" && strings.Contains(m.FailureCause, tc.notCause) {
				t.Fatalf("cause %q: the failure was found only when the other nodes gave up", m.FailureCause)
			}
			if st := m.Step(mec.StepRollback); st == nil || st.Outcome != mec.OutcomeSucceeded {
				t.Fatalf("rollback step: %v", stepNames(m))
			}
			// The rolled-back nodes are history: terminated, no public address.
			if live := m.LiveNodes(); len(live) > 0 || len(m.Nodes) == 0 || m.Nodes[0].PublicIP != "" {
				t.Errorf("a FAILED MEC lists live nodes %+v (of %+v)", live, m.Nodes)
			}
			leakFree(t, rt, m.ID)
		})
	}
}

func TestProvisionJoinRetriedAfterReset(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("rejoin")
	rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: 1},
		Prefix: "microk8s join", Times: 1, ExitCode: 1, Stderr: "Connection failed. Timeout (injected)"})
	r := provision(t, rt, fmt.Sprintf(`{"name":%q}`, name))
	m := findByName(t, rt, name)
	if r.out.Status != "SUCCEEDED" || m.Status != mec.Ready {
		t.Fatalf("status %s / %s: %s %s (%v)", r.out.Status, m.Status, m.FailedStep, m.FailureCause, stepNames(m))
	}
	if st := m.Step(mec.StepReset); st == nil || st.Outcome != mec.OutcomeSucceeded {
		t.Fatalf("no successful reset step: %v", stepNames(m))
	}
	if st := m.Step(mec.StepJoin); st == nil || st.Attempt != 2 {
		t.Fatalf("join attempts: %v", stepNames(m))
	}
	// join.py prints why it failed on stdout: the first attempt's cause says it.
	var first *mec.Step
	for i := range m.Steps {
		if m.Steps[i].Name == mec.StepJoin && m.Steps[i].Attempt == 1 {
			first = &m.Steps[i]
		}
	}
	if first == nil || first.Outcome != mec.OutcomeFailed || !strings.Contains(first.Detail, "Connection failed. Timeout (injected)") {
		t.Fatalf("first join attempt %+v does not say why it failed", first)
	}
	h, _ := rt.Sim.SSMSim.Host(m.Nodes[0].InstanceID)
	if len(h.Members) != 3 {
		t.Fatalf("members %d after the retried join", len(h.Members))
	}
}

// TestSecretsStayInParameterStore provisions a MEC, collects every place a
// secret could leak to and searches them for the token and the kubeconfig.
func TestSecretsStayInParameterStore(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("secret")
	// Capture the join token while it exists: poll Parameter Store during the run.
	var tokenMu sync.Mutex
	var token string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			m := tryFindByName(rt, name)
			if m == nil {
				continue
			}
			p, err := rt.Clients("").SSM.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(mec.TokenParam(m.ID)), WithDecryption: aws.Bool(true)})
			if err == nil {
				tokenMu.Lock()
				token = aws.ToString(p.Parameter.Value)
				tokenMu.Unlock()
				return
			}
		}
	}()
	r := provision(t, rt, fmt.Sprintf(`{"name":%q}`, name))
	close(stop)
	<-done
	m := findByName(t, rt, name)
	if m.Status != mec.Ready {
		t.Fatalf("status %s", m.Status)
	}
	p, err := rt.Clients("").SSM.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID)), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := aws.ToString(p.Parameter.Value)
	tokenMu.Lock()
	tok := token
	tokenMu.Unlock()
	if len(tok) < 32 {
		t.Fatalf("did not capture the join token during the run (len %d)", len(tok))
	}
	secrets := map[string]string{"join token": tok}
	// Every distinctive line of the kubeconfig (certificates, keys) is a secret.
	for _, line := range strings.Split(kubeconfig, "\n") {
		if strings.Contains(line, "-data:") {
			secrets["kubeconfig "+strings.TrimSpace(strings.SplitN(line, ":", 2)[0])] = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
		}
	}
	if len(secrets) < 2 {
		t.Fatalf("kubeconfig has no embedded credentials to look for")
	}

	var haystacks []string
	for _, l := range rt.Logs.Lines("") {
		haystacks = append(haystacks, "log "+l.Function+": "+l.Text)
	}
	items := scanTable(t, rt)
	haystacks = append(haystacks, items...)
	for _, inv := range rt.Sim.SSMSim.Invocations() {
		params, _ := json.Marshal(inv.Parameters)
		haystacks = append(haystacks, "command parameters: "+string(params), "command stdout: "+inv.Stdout, "command stderr: "+inv.Stderr)
	}
	haystacks = append(haystacks, "execution output: "+aws.ToString(r.out.Output), "execution input: "+aws.ToString(r.out.Input))
	for what, secret := range secrets {
		for _, h := range haystacks {
			if strings.Contains(h, secret) {
				t.Errorf("%s found in %s", what, h[:min(len(h), 80)])
			}
		}
	}
}

func tryFindByName(rt *localrt.Runtime, name string) *mec.MEC {
	out, err := rt.Clients("").DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(localrt.TableName), Key: map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: "name#" + name}}})
	if err != nil || out.Item == nil {
		return nil
	}
	id, _ := out.Item["clusterId"].(*dtypes.AttributeValueMemberS)
	if id == nil {
		return nil
	}
	return &mec.MEC{ID: id.Value}
}

func scanTable(t *testing.T, rt *localrt.Runtime) []string {
	t.Helper()
	var out []string
	p := dynamodb.NewScanPaginator(rt.Clients("").DynamoDB, &dynamodb.ScanInput{TableName: aws.String(localrt.TableName)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(m)
			out = append(out, "dynamodb item: "+string(b))
		}
	}
	return out
}

func TestPublicEndpoint(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("public")
	r := provision(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1,"publicEndpoint":true,"apiAccessCidrs":["198.51.100.0/24"]}`, name))
	m := findByName(t, rt, name)
	if r.out.Status != "SUCCEEDED" || m.Status != mec.Ready {
		t.Fatalf("status %s: %s %s", r.out.Status, m.FailedStep, m.FailureCause)
	}
	n0 := m.Nodes[0]
	if n0.PublicIP == "" || m.Endpoint != "https://"+n0.PublicIP+":16443" {
		t.Fatalf("endpoint %s, node 0 public IP %q", m.Endpoint, n0.PublicIP)
	}
	h, _ := rt.Sim.SSMSim.Host(n0.InstanceID)
	if !slices.Contains(h.CertSANs, n0.PublicIP) {
		t.Fatalf("API server SANs %v lack the public IP %s", h.CertSANs, n0.PublicIP)
	}
	p, err := rt.Clients("").SSM.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID)), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(p.Parameter.Value), "server: https://"+n0.PublicIP+":16443") {
		t.Fatal("kubeconfig does not point at the public endpoint")
	}
}

// TestProvisionUnderThrottling: AWS answers some calls with throttling
// errors; the SDK's retryer and the state machine's Retry absorb them.
func TestProvisionUnderThrottling(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	for _, f := range []fault.API{
		{Service: "ec2", Action: "RunInstances", Rate: 1, Code: "RequestLimitExceeded", Times: 2},
		{Service: "ec2", Action: "DescribeInstances", Rate: 0.3, Code: "RequestLimitExceeded", Times: 6},
		{Service: "ssm", Action: "SendCommand", Rate: 0.3, Code: "ThrottlingException", Times: 3},
		{Service: "dynamodb", Action: "PutItem", Rate: 0.2, Code: "ThrottlingException", Times: 6},
	} {
		rt.Sim.Faults.FailAPI(f)
	}
	name := localrt.UniqueName("throttled")
	r := provision(t, rt, fmt.Sprintf(`{"name":%q}`, name))
	m := findByName(t, rt, name)
	if r.out.Status != "SUCCEEDED" || m.Status != mec.Ready {
		t.Fatalf("status %s / %s: %s %s", r.out.Status, m.Status, m.FailedStep, m.FailureCause)
	}
	if got := len(rt.Sim.EC2Sim.Instances()); got == 0 {
		t.Fatal("no instances")
	}
	n := 0
	for _, in := range rt.Sim.EC2Sim.Instances() {
		if in.Tags[mec.TagClusterID] == m.ID {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d instances for the MEC, want exactly 3 (a retried RunInstances must not launch more)", n)
	}
}

// TestMECsInTwoRegionsAtOnce: every region's default VPC hands out the same
// private addresses; concurrent MECs in two regions must still each form
// their own cluster, in their own region.
func TestMECsInTwoRegionsAtOnce(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	regions := []string{"us-east-1", "eu-central-1"}
	var wg sync.WaitGroup
	mecs := make([]*mec.MEC, len(regions))
	for i, region := range regions {
		wg.Add(1)
		go func(i int, region string) {
			defer wg.Done()
			name := localrt.UniqueName("r" + strconv.Itoa(i))
			provision(t, rt, fmt.Sprintf(`{"name":%q,"region":%q}`, name, region))
			mecs[i] = findByName(t, rt, name)
		}(i, region)
	}
	wg.Wait()
	for i, m := range mecs {
		if m == nil || m.Status != mec.Ready || m.Region != regions[i] {
			t.Fatalf("MEC %d: %+v", i, m)
		}
		h, _ := rt.Sim.SSMSim.Host(m.Nodes[0].InstanceID)
		if len(h.Members) != 3 {
			t.Fatalf("%s has %d members", m.Region, len(h.Members))
		}
		for _, mem := range h.Members {
			in, _ := rt.Sim.EC2Sim.Instance(mem.InstanceID)
			if in.Region != m.Region || in.Tags[mec.TagClusterID] != m.ID {
				t.Fatalf("%s cluster has a member from %s / %s", m.Region, in.Region, in.Tags[mec.TagClusterID])
			}
		}
	}
}

// kubeconfigServers reads the server of each cluster of a kubeconfig.
func kubeconfigServers(b []byte) ([]string, error) {
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
	}
	err := yaml.Unmarshal(b, &kc)
	var out []string
	for _, c := range kc.Clusters {
		out = append(out, c.Cluster.Server)
	}
	return out, err
}

// nodeSSM is a Parameter Store client with an instance's role credentials.
func nodeSSM(t *testing.T, rt *localrt.Runtime, instanceID string) *ssm.Client {
	t.Helper()
	cfg, err := rt.NodeConfig(context.Background(), instanceID)
	if err != nil {
		t.Fatal(err)
	}
	return ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Retryer = aws.NopRetryer{} })
}

// oneCommandPerAttempt: every node step sent one command per attempt (a
// second one would run the same script twice at once on a node).
func oneCommandPerAttempt(t *testing.T, rt *localrt.Runtime, m *mec.MEC) {
	t.Helper()
	cmds := map[string]map[string]bool{}
	prefix := "mecd " + m.ID + " "
	for _, inv := range rt.Sim.SSMSim.Invocations() {
		if step, ok := strings.CutPrefix(inv.Comment, prefix); ok {
			if cmds[step] == nil {
				cmds[step] = map[string]bool{}
			}
			cmds[step][inv.CommandID] = true
		}
	}
	for step, ids := range cmds {
		attempts := 1
		if st := m.Step(step); st != nil {
			attempts = max(st.Attempt, 1)
		}
		if len(ids) > attempts {
			t.Errorf("step %s: %d commands for %d attempts", step, len(ids), attempts)
		}
	}
}
