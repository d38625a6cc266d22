package api

import _ "embed"

// OpenAPI is the OpenAPI 3 document of this API; the tests check the
// handler's routes and answers against it.
//
//go:embed openapi.yaml
var OpenAPI []byte
