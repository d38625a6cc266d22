// Package ssmsim is the node simulator's SSM side, a test double documented as
// such: SSM Run Command (SendCommand, GetCommandInvocation,
// ListCommandInvocations, DescribeInstanceInformation, CreateDocument,
// DescribeDocument, DeleteDocument in SSM's JSON 1.1 protocol), a simulated host per EC2 instance on which commands really run in
// bash, `snap` and `microk8s` stand-ins that keep host and cluster state, and
// an IMDSv2 stand-in that hands each host its role credentials. Nothing in
// functions/ or internal/ imports it. All traffic stays on 127.0.0.0/8:
// New refuses an Endpoint off loopback.
//
// # Wiring
//
// The composition layer adapts ec2sim to Instances (optionally InstanceLister)
// and kumo's EventBridge to EventSink, and routes in its front:
// requests for which Handles(r) is true (X-Amz-Target AmazonSSM.<one of
// Actions>) to Sim.ServeHTTP, the /_sim/ paths to Sim.ControlHandler (full
// path or with /_sim stripped), everything else to kumo. ServeHTTP applies
// fault.API faults for service "ssm" itself; a front must not apply them again
// to these four actions.
//
// # Run Command
//
// SendCommand accepts AWS-RunShellScript and the Command documents created
// in the request's region by CreateDocument (schema 2.2, one
// aws:runShellScript step; DescribeDocument, DeleteDocument; documents are
// regional, AWS-RunShellScript is everywhere; else InvalidDocument), 1-50
// InstanceIds (more: ValidationException; Targets are not supported), each
// registered and Online (else InvalidInstanceId "Instances [[...]] not in a
// valid state for account ..."), the parameters the document declares
// (AWS-RunShellScript: commands (required), executionTimeout (1-172800 s,
// default 3600) and workingDirectory (relative to the host root)), else
// InvalidParameters; TimeoutSeconds 30-2592000. Each
// invocation is Pending, InProgress after latency.Dispatch, then runs
// `bash _script.sh` (the commands joined by newlines, in the agent's
// orchestration directory under the host root) with cwd = host root, in its
// own process group, and ends:
//   - Success: exit 0, ResponseCode 0;
//   - Failed: exit N, ResponseCode N, "failed to run commands: exit status N"
//     appended to stderr as the agent does (ResponseCode -1 when a signal ended it);
//   - TimedOut: executionTimeout (real seconds, not scaled) reached: the whole
//     process group is SIGKILLed, ResponseCode 137, StatusDetails ExecutionTimedOut;
//   - Failed/Undeliverable (ResponseCode -1): the instance was not running at dispatch;
//     Failed (ResponseCode -1) when it stops running under the script, which is killed;
//   - Cancelled: Close cut it short (no events then).
//
// After a script's bash exits, what is left of its process group is killed too
// (a node script must not leave processes behind). A command is Success when
// every invocation is, else Failed (MaxErrors 0), Cancelled when all were.
// GetCommandInvocation cuts stdout at 24,000 and stderr at 8,000 characters;
// ListCommandInvocations (CommandId, InstanceId, Filters Status/DocumentName/
// InvokedAfter/InvokedBefore, MaxResults 1-50, NextToken, newest first) with
// Details gives the plugin Output: stdout, "\n----------ERROR-------\n", stderr,
// cut to 2,500 characters with the agent's truncation markers. Invocations are
// visible (Pending) as soon as SendCommand returns: the simulator does not
// reproduce the brief InvocationDoesNotExist window of AWS, so that runs stay
// deterministic; ssm.NewCommandExecutedWaiter works unchanged.
//
// When an invocation is terminal and visible, EventSink.PutEvent gets, as SSM
// sends them, source aws.ssm, detail-type "EC2 Command Invocation Status-change
// Notification", resources [instance ARN], detail {command-id, document-name,
// instance-id, requested-date-time, status}; once the whole command is
// terminal, "EC2 Command Status-change Notification" with resources [every
// instance ARN] and detail {command-id, document-name, instance-ids,
// expire-after, parameters, requested-date-time, status} (like SSM's, the
// command event carries the parameters: never put a secret in them).
//
// DescribeInstanceInformation lists an instance Online once it is running and
// latency.AgentOnline (drawn once per instance) has passed since RunningAt,
// never with a fault.NeverOnline; an instance that got there and then stopped
// running is ConnectionLost; others are absent (also when asked for by id).
// Filters: InstanceIds, PingStatus, PlatformTypes, ResourceType, AgentVersion,
// IamRole, tag:<key>, tag-key; MaxResults 5-50; NextToken.
//
// # Hosts
//
// Instance i gets <Dir>/<i>/ with bin/ (snap and microk8s: symlinks to
// os.Executable()) and root/ (the host's "/"). A script's absolute paths in
// the host's own directories (/var/snap/, /var/lib/cloud/, /run/cloud-init/,
// /etc/mecd/, /var/lib/mecd/) are mapped under root/ before it runs, so node
// scripts are written for a real node and know nothing of the simulator;
// MECD_HOST_ROOT names root/ for the simulator's own tests' scratch files.
// Commands run with a clean environment, nothing inherited
// from the test process (no AWS credentials: a script gets them from IMDS):
//
//	PATH=<host>/bin:<PATH of the simulator>   HOME=<root>/root   USER=root   LANG=C.UTF-8   TMPDIR=<root>/tmp
//	MECD_HOST_ROOT=<root>                     AWS_REGION=AWS_DEFAULT_REGION=<instance region>
//	AWS_EC2_METADATA_SERVICE_ENDPOINT=<Endpoint>/_sim/imds/<i>
//	AWS_ENDPOINT_URL_SSM=AWS_ENDPOINT_URL=<Endpoint>
//	MECD_SIM_HOST_URL=<Endpoint>/_sim/host/<i>   MECD_SIM_INSTANCE_ID=<i>   NO_PROXY=no_proxy=127.0.0.1,localhost
//
// The stand-ins are the binary importing this package, re-executed: this
// package's init() sees argv[0] named snap or microk8s, posts argv to
// MECD_SIM_HOST_URL/exec, prints the answer's stdout and stderr, exits with
// its code. State lives in the Sim; files only where scripts read them.
// Every stand-in command first consults Faults.CommandFault (prefix match on
// the argv joined by spaces, e.g. "snap install", "microk8s join"): a fault
// fails it with the fault's exit code and message, on stderr (on stdout for
// microk8s join, whose join.py prints its failures). Like the real tools, snap
// writes errors to stderr and microk8s mostly to stdout (scripts that want a
// microk8s error in the command's stderr redirect it).
//
// snap:
//   - install microk8s --classic --channel=<track/risk>: needs --classic, a track
//     latest or 1.20-1.36; takes latency.SnapInstall; then reads the launch
//     configuration <root>/var/snap/microk8s/common/.microk8s.yaml if present
//     (version 0.1.0: extraSANs, extraKubeletArgs, addons [{name, disable}],
//     persistentClusterToken, join {url, worker}; invalid: the configure
//     hook fails, exit 1; absent: MicroK8s' default configuration, dns and its
//     kubelet arguments), writes a
//     real self-signed server.crt (and server.key) in
//     <root>/var/snap/microk8s/current/certs with SANs 127.0.0.1, 10.152.183.1,
//     the private IP, the hostname ip-a-b-c-d, the kubernetes service names and
//     every extraSAN, and <root>/snap/bin/microk8s. Prints
//     "microk8s (<ch>) v1.X.0 from Canonical✓ installed". Already installed:
//     `snap "microk8s" is already installed, see 'snap help refresh'`, exit 0.
//     A persistentClusterToken is registered (no expiry, reusable); a join runs
//     in the background, retried while the leader is not up or does not know
//     the token yet, for 600 s of AWS time (scaled, at least 2 s).
//   - list [microk8s] ("error: no matching snaps installed", exit 1, when absent),
//     wait system seed.loaded (exit 0), remove microk8s (the node stays listed
//     NotReady in its cluster and known to dqlite until a remove-node), version.
//
// microk8s (not installed: "microk8s: command not found", exit 127):
//   - status [--wait-ready] [--timeout N] [--format pretty|short|yaml] [-a addon]:
//     ready once installed and any launch-configuration join settled; not ready
//     after the wait: "microk8s is not running. ...", exit 1. HA shows the dqlite
//     voters and standbys.
//   - add-node [--token T (32+ chars)] [--token-ttl S] [--format pretty|short|token|token-check|json|yaml]:
//     registers T on this node, expiring after S real seconds, single-use without
//     --token-ttl (consumed by the first join presenting it, even one that fails
//     later); prints the join instructions, token included, as MicroK8s does:
//     scripts must discard them. Not on a worker.
//   - join <ip>:25000/<token>[/<check>] [--worker] [--skip-verify]: routed to the
//     host owning <ip> (no connection is made); checks, in
//     this order: connection refused (unknown address, leader not installed),
//     same node, fingerprint mismatch (<check> is not the first 12 hex of SHA-256
//     of the leader's server.crt DER; no check or --skip-verify skips it, and the
//     member records CheckVerified/SkipVerify), invalid token (unknown or expired),
//     "the joining node (<ip>) is already known to dqlite", "already part of a
//     MicroK8s cluster" (an active member of a multi-node cluster), leftover
//     partial state. Success takes latency.Join; the node becomes a control-plane
//     member (or worker with --worker); the first three control-plane members,
//     the founder included, are dqlite voters, later ones standby, workers
//     neither; a standby is promoted when a voter goes.
//   - leave, remove-node <ip|hostname> [--force] (on a control-plane node; an
//     active member needs --force, a node that left or a partial join does not),
//     enable/disable <addon>... (enable reads the enabled addons first, so it
//     fails at once while the API server is down; skips those already
//     enabled, taking no time if none is left; enables the others one by
//     one (cert-manager and observability enable dns first, as their
//     scripts do), latency.Addons per call shared between them, each enabled as
//     soon as it starts (its manifests applied) and failing at its end if
//     the API server is down then, before the kubelet arguments it sets:
//     dns --cluster-domain/--cluster-dns, metrics-server
//     --authentication-token-webhook, on the node and every member; core:
//     dns, hostpath-storage, ingress, metrics-server, cert-manager, observability,
//     rbac, community, dashboard, metallb, registry, and the default ha-cluster,
//     helm, helm3 — the addons of MicroK8s 1.35's real core and community
//     addons.yaml (testdata/addons), community ones after `microk8s enable
//     community`; any other: "Addon X was not found in any repository", exit
//     1, as for any unknown addon), kubectl get nodes [-o wide|json|name]
//     [--no-headers] (ROLES <none> as on MicroK8s; -o json carries the
//     node.kubernetes.io/microk8s-controlplane|worker labels), kubectl wait
//     --for=condition=Ready node --all|<name> [--timeout], config (control-plane
//     nodes: a ~5.5 KB kubeconfig with embedded RSA CA and admin client
//     certificate and key, cluster microk8s-cluster, server
//     https://<this host's private IP>:16443; a worker: "This MicroK8s deployment
//     is acting as a node in a cluster. Please use the microk8s config on the
//     control plane.", exit 1), version.
//
// # A failed join and its reset
//
// An injected `microk8s join` fault (or a join whose process is killed) fails
// the join and leaves partial state on both sides: the leader's dqlite knows the
// joiner's address, and the joiner holds partial cluster data. A retry then
// succeeds if and only if both are cleared:
//   - the leader forgets the joiner only through `microk8s remove-node
//     <joiner ip|hostname> [--force]` on a control-plane node of its cluster;
//     until then every retry fails with "already known to dqlite";
//   - the joiner's partial state is cleared only by `microk8s leave` on it; with
//     the leader cleared but not the joiner, a retry fails asking for
//     `microk8s leave`. leave does not make the leader forget the joiner.
//
// The order of the two does not matter. A node force-removed while active is
// left with partial state as well (it must leave before joining again).
//
// # IMDSv2
//
// Under /_sim/imds/<i>/ (HttpTokens=required): PUT /latest/api/token with
// X-aws-ec2-metadata-token-ttl-seconds 1-21600 gives a token (400 without);
// every GET needs a live token of that instance (401 otherwise):
// meta-data/instance-id, local-ipv4, public-ipv4 (404 without one),
// local-hostname, hostname, placement/region, placement/availability-zone,
// iam/info, iam/security-credentials/ (the role name, taken to be the instance
// profile's name) and iam/security-credentials/<role> (Code, AccessKeyId
// ASIA..., SecretAccessKey, Token, Expiration: 6 h, rotated 5 min before).
// CredentialOwner maps an access key id back to its instance.
//
// Secrets: the simulator logs (slog) commands by id, stand-ins by tool and
// subcommand, never arguments, tokens, credentials or kubeconfigs.
package ssmsim
