// Package api owns the MEC resource API (DESIGN section 5): the Lambda handler
// behind API Gateway, its routes, validation, answers and the OpenAPI document.
//
// It is the MEC resource API (DESIGN section 5): one Lambda handler
// behind API Gateway (REST, IAM auth, proxy integration). It translates
// requests into calls on the record store and the workflows, and the
// outcomes into HTTP answers described by openapi.yaml.
package api
