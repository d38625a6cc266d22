package ssmsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// serverCert makes the API server certificate of a host: self-signed, with
// MicroK8s's standard SANs (the kubernetes service names, 127.0.0.1 and the
// service IP 10.152.183.1), the host's address and name, and the extraSANs of
// the launch configuration. ECDSA keeps it fast; only the SANs and the DER
// hash matter to the product.
func serverCert(hostname, ip string, extra []string) (certDER []byte, keyPEM []byte, sans []string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	var ips []net.IP
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"}
	addIP := func(s string) {
		if p := net.ParseIP(s); p != nil {
			for _, have := range ips {
				if have.Equal(p) {
					return
				}
			}
			ips = append(ips, p)
		}
	}
	addDNS := func(s string) {
		for _, have := range dns {
			if have == s {
				return
			}
		}
		dns = append(dns, s)
	}
	addIP("127.0.0.1")
	addIP("10.152.183.1")
	addIP(ip)
	addDNS(hostname)
	for _, e := range extra {
		if net.ParseIP(e) != nil {
			addIP(e)
		} else if e != "" {
			addDNS(e)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1", Organization: []string{"Canonical"}, Country: []string{"GB"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, p := range ips {
		sans = append(sans, p.String())
	}
	sans = append(sans, dns...)
	return certDER, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), sans, nil
}

// certCheck is MicroK8s's join check: the first 12 hex characters of the
// SHA-256 of server.crt in DER form.
func certCheck(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])[:12]
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// kubePKI is a cluster's CA and admin client credentials, as `microk8s config`
// embeds them. RSA 2048 like MicroK8s, which is what makes a kubeconfig 5-6 KB.
type kubePKI struct {
	caPEM, clientCertPEM, clientKeyPEM []byte
}

func newKubePKI() (*kubePKI, error) {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "10.152.183.1"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	clientKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	clientTmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, ca, &clientKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return &kubePKI{
		caPEM:         pemCert(caDER),
		clientCertPEM: pemCert(clientDER),
		clientKeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(clientKey)}),
	}, nil
}
