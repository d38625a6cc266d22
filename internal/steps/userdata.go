package steps

import (
	"encoding/base64"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/node"
)

// userData is the nodes' user data, base64 as RunInstances takes it: every
// node installs MicroK8s at first boot, while its SSM agent registers, so
// the agent's long start and the install overlap.
func (s *Steps) userData(m *mec.MEC) (string, error) {
	boot, err := node.Render(node.Boot, map[string]string{"CHANNEL": m.Spec.Microk8sChannel,
		"CLUSTER_DNS": node.ClusterDNS(m.Spec.Addons), "RETRY_SECONDS": retrySeconds(s.Env.PollInterval)})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString([]byte(boot)), nil
}
