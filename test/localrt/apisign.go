package localrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// sign signs an API request with SigV4 as LocalCaller.
func (rt *Runtime) sign(ctx context.Context, req *http.Request, payload []byte) error {
	sum := sha256.Sum256(payload)
	return v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}, req,
		hex.EncodeToString(sum[:]), "execute-api", rt.Region, time.Now())
}
