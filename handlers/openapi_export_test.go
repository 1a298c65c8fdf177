package handlers

import "github.com/gin-gonic/gin"

// Routes lists the routes NewServer registers for d (NewServer wraps its
// gin engine, so the list cannot be read from what it returns). For
// TestOpenAPIRoutes.
func Routes(d Deps) gin.RoutesInfo {
	r := gin.New()
	addRoutes(r, d)
	return r.Routes()
}

// OpenAPIDocument is the embedded document /api/schema/ serves.
func OpenAPIDocument() []byte { return openAPI }
