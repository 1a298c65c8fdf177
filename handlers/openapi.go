package handlers

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPI is the OpenAPI 3.1 description of every REST endpoint. The
// handler tests (openapi_test.go) check it against the registered routes
// and validate every response they receive against it, so it cannot drift
// from the code.
//
//go:embed openapi.yaml
var openAPI []byte

// handleSchema is GET /api/schema/: the OpenAPI document, as YAML.
func handleSchema() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Data(http.StatusOK, "application/yaml", openAPI)
	}
}
