package ssmsim

import (
	"regexp"
	"strings"
	"testing"

	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/latency"
)

const testManifest = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "docker.io/library/postgres:16.3-alpine3.20"}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "docker.io/edgexfoundry/core-data:4.0.1"}]
---
apiVersion: v1
kind: Service
metadata: {name: edgex-web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 59880}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: internal, namespace: shop}
spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: seed, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: seed, image: "docker.io/library/busybox:1.37"}]
`

// kubectl apply, rollout status, wait for a job and get pods, as kubectl
// answers them: a claim stays Pending without a default StorageClass, an
// image the registry refuses stays in ImagePullBackOff, a Job's changed
// template is refused (immutable).
func TestWorkloads(t *testing.T) {
	lat := latency.New(0.001, latency.Typical, 1)
	e := newEnv(t, envOptions{lat: lat})
	inst := e.addInstance(func(i *Instance) { i.Tags = map[string]string{"mecd:name": "shop-1"} })
	e.install(t, inst)
	write := "f=$(mktemp)\ncat > \"$f\" <<'EOF'\n" + testManifest + "EOF\n"

	// Before the namespace exists, the namespaced objects are refused.
	r := e.sh(t, inst.ID, write+"sed -i '1,4d' \"$f\"\nmicrok8s kubectl apply -f \"$f\"")
	if r.code != 1 || !strings.Contains(r.stderr, `namespaces "shop" not found`) {
		t.Fatalf("apply without the namespace: %+v", r)
	}
	r = e.mustSh(t, inst.ID, write+"microk8s kubectl apply -f \"$f\"")
	for _, w := range []string{"namespace/shop created", "persistentvolumeclaim/data created", "deployment.apps/db created", "service/edgex-web created",
		"job.batch/seed created", "networkpolicy.networking.k8s.io/internal created"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("apply lacks %q:\n%s", w, r.stdout)
		}
	}
	if r = e.mustSh(t, inst.ID, write+"microk8s kubectl apply -f \"$f\""); !strings.Contains(r.stdout, "deployment.apps/web unchanged") {
		t.Errorf("a second apply:\n%s", r.stdout)
	}
	if r = e.mustSh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/web --timeout=5s"); !strings.Contains(r.stdout, `deployment "web" successfully rolled out`) {
		t.Errorf("rollout of web: %+v", r)
	}
	if r = e.mustSh(t, inst.ID, "microk8s kubectl wait --for=condition=complete job/seed -n shop --timeout=5s"); !strings.Contains(r.stdout, "job.batch/seed condition met") {
		t.Errorf("wait for the job: %+v", r)
	}
	r = e.sh(t, inst.ID, write+"sed -i 's/busybox:1.37/busybox:1.38/' \"$f\"\nmicrok8s kubectl apply -f \"$f\"")
	if r.code != 1 || !strings.Contains(r.stderr, `The Job "seed" is invalid: spec.template`) || !strings.Contains(r.stderr, "field is immutable") {
		t.Errorf("a Job's changed template: %+v", r)
	}
	// No default StorageClass: db's claim never binds.
	r = e.sh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/db --timeout=1s")
	if r.code != 1 || !strings.Contains(r.stderr, "timed out waiting for the condition") {
		t.Errorf("rollout of db without storage: %+v", r)
	}
	if r = e.mustSh(t, inst.ID, "microk8s kubectl get pods -n shop --no-headers"); !regexp.MustCompile(`db-\w+\s+0/1\s+Pending`).MatchString(r.stdout) ||
		!regexp.MustCompile(`seed-\w+\s+0/1\s+Completed`).MatchString(r.stdout) {
		t.Errorf("pods:\n%s", r.stdout)
	}
	e.mustSh(t, inst.ID, "microk8s enable hostpath-storage")
	if r = e.sh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/db --timeout=5s"); r.code != 0 {
		t.Errorf("rollout of db with hostpath-storage: %+v", r)
	}

	// An image the registry refuses, on this MEC's hosts only.
	e.faults.FailImage(fault.Host{TagKey: "mecd:name", TagValue: "shop-1", Index: fault.AnyIndex},
		"docker.io/edgexfoundry/core-data:4.0.1", "manifest unknown")
	e.mustSh(t, inst.ID, write+"sed -i 's/core-data:4.0.1\"}]/core-data:4.0.1\", imagePullPolicy: Always}]/' \"$f\"\nmicrok8s kubectl apply -f \"$f\"")
	r = e.sh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/web --timeout=1s")
	if r.code != 1 {
		t.Errorf("rollout of an image the registry refuses: %+v", r)
	}
	if r = e.mustSh(t, inst.ID, "microk8s kubectl get pods -n shop"); !regexp.MustCompile(`web-\w+\s+0/1\s+ImagePullBackOff`).MatchString(r.stdout) {
		t.Errorf("pods:\n%s", r.stdout)
	}
	if r = e.mustSh(t, inst.ID, "microk8s kubectl get pods -n nowhere"); r.stdout != "" || !strings.Contains(r.stderr, "No resources found in nowhere namespace.") {
		t.Errorf("pods of an empty namespace: %+v", r)
	}
}
