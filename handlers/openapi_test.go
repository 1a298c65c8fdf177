package handlers_test

// The OpenAPI document (openapi.yaml, embedded and served at /api/schema/)
// is the REST contract. checkOpenAPI validates one answer against it, and
// env.send (harness_test.go), which every request of the handler tests
// goes through, calls it for every answer: a handler that drifts from the
// document fails the tests that reach it. TestOpenAPIRoutes keeps the
// document's operations and gin's routes the same set.
//
// Left out on purpose: requests to /ws/... (WebSocket endpoints are not
// REST; the document's description names them) and a CORS preflight's 204
// (answered by the CORS middleware before any route).
//
// The validator is kin-openapi (openapi3, openapi3filter, the gorillamux
// router), which validates OpenAPI 3.1 responses with a JSON Schema
// 2020-12 validator (santhosh-tekuri/jsonschema).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"switchboard/handlers"
	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/models"
	"switchboard/web"
	"switchboard/ws"
)

// trailingSlashExt marks a path item that is served alike with and
// without its final slash (handlers' both()).
const trailingSlashExt = "x-trailing-slash"

// openAPIContract is the loaded document and a router over it.
type openAPIContract struct {
	doc *openapi3.T
	// router matches requests; paths marked x-trailing-slash: optional are
	// in it under both spellings.
	router routers.Router
	// covered records "operationId status" of every answer that passed.
	covered sync.Map
}

var loadOpenAPI = sync.OnceValues(func() (*openAPIContract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(handlers.OpenAPIDocument())
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	routing := *doc
	routing.Paths = openapi3.NewPaths()
	for path, item := range doc.Paths.Map() {
		routing.Paths.Set(path, item)
		if slashOptional(item) {
			routing.Paths.Set(toggleSlash(path), item)
		}
	}
	router, err := gorillamux.NewRouter(&routing)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &openAPIContract{doc: doc, router: router}, nil
})

func slashOptional(item *openapi3.PathItem) bool {
	return item.Extensions[trailingSlashExt] == "optional"
}

func toggleSlash(path string) string {
	if s, ok := strings.CutSuffix(path, "/"); ok {
		return s
	}
	return path + "/"
}

// checkOpenAPI fails tb unless the answer (status, Content-Type, body,
// documented headers) to req is one openapi.yaml allows for req's
// operation. A path the document lacks must answer 404 and a method it
// lacks 405, both in the standard error shape; HEAD is checked as GET
// without a body. Only the answer is checked: the tests send invalid
// requests on purpose, so req's body is not needed. Safe for concurrent
// use; it reports with tb.Errorf.
func checkOpenAPI(tb testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	tb.Helper()
	if strings.HasPrefix(req.URL.Path, "/ws/") {
		return // WebSocket endpoints: not REST, not in the document
	}
	if req.Method == http.MethodOptions && req.Header.Get("Origin") != "" &&
		req.Header.Get("Access-Control-Request-Method") != "" && status == http.StatusNoContent {
		if len(body) > 0 {
			tb.Errorf("OPTIONS %s (CORS preflight) = 204 with a body %.300q", req.URL.RequestURI(), body)
		}
		return // a CORS preflight, answered before routing
	}
	c, err := loadOpenAPI()
	if err != nil {
		tb.Errorf("openapi.yaml: %v", err)
		return
	}
	if err := c.check(req, status, header, body); err != nil {
		tb.Errorf("%s %s = %d (Content-Type %q, body %.300q) does not match openapi.yaml:\n%v",
			req.Method, req.URL.RequestURI(), status, header.Get("Content-Type"), body, err)
	}
}

func (c *openAPIContract) check(req *http.Request, status int, header http.Header, body []byte) error {
	head := req.Method == http.MethodHead
	if head {
		get := req.Clone(context.Background())
		get.Method = http.MethodGet
		req = get
	}
	route, params, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if status != http.StatusNotFound {
			return fmt.Errorf("the path is not in the document, so the answer must be 404, not %d", status)
		}
		route = c.routeFor(req, status, "NotFound")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if status != http.StatusMethodNotAllowed {
			return fmt.Errorf("the path has no %s operation in the document, so the answer must be 405, not %d", req.Method, status)
		}
		route = c.routeFor(req, status, "MethodNotAllowed")
	case err != nil:
		return err
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil {
		return fmt.Errorf("status %d is not documented for %s %s", status, req.Method, route.Path)
	}
	switch {
	case len(resp.Value.Content) == 0 && len(body) > 0:
		// kin-openapi does not check that a body-less answer has none.
		return fmt.Errorf("status %d has no body in the document, got %d bytes", status, len(body))
	case head && len(body) > 0:
		return fmt.Errorf("HEAD answered with a %d-byte body", len(body))
	case head && len(resp.Value.Content) > 0:
		// No body to validate: GET's Content-Type is what HEAD must carry.
		if resp.Value.Content.Get(header.Get("Content-Type")) == nil {
			return fmt.Errorf("Content-Type %q is not documented for GET %s %d", header.Get("Content-Type"), route.Path, status)
		}
		return nil
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err == nil && route.Operation.OperationID != "" {
		c.covered.Store(fmt.Sprintf("%s %d", route.Operation.OperationID, status), true)
	}
	return err
}

// routeFor is a route whose only answer is components.responses[name] at
// status: what an unknown path (404) or method (405) must answer.
func (c *openAPIContract) routeFor(req *http.Request, status int, name string) *routers.Route {
	op := openapi3.NewOperation()
	op.Responses = openapi3.NewResponses(openapi3.WithStatus(status, c.doc.Components.Responses[name]))
	return &routers.Route{Spec: c.doc, Path: req.URL.Path, Method: req.Method, Operation: op}
}

// withContractDeps turns on every optional route and dependency (metrics,
// the page, history, the API key, readiness checks), so the routes and
// answers are a production server's. redisDown fails the "redis" check.
func withContractDeps(tb testing.TB, redisDown *atomic.Bool, captured **handlers.Deps) envOption {
	tb.Helper()
	db := testenv.Database(tb, models.SQLite)
	return func(d *handlers.Deps, _ *middleware.AuthConfig) {
		d.History = models.NewHistoryStore(db.Gorm)
		d.Metrics = handlers.NewMetrics(ws.NewHub(ws.NewMemoryBroker()), nil)
		d.Page = web.Files()
		d.PublishAPIKey = "contract-key"
		d.Checks = map[string]handlers.Check{
			"database": func(ctx context.Context) error { return db.SQL.PingContext(ctx) },
			"redis": func(context.Context) error {
				if redisDown.Load() {
					return errors.New("down")
				}
				return nil
			},
		}
		if captured != nil {
			*captured = d // newEnv fills in Auth, Hub and Presence after the options
		}
	}
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIRoutes: the document is valid OpenAPI 3.1, and every REST
// route gin registers is in it (under both spellings where it says
// x-trailing-slash: optional) and vice versa.
func TestOpenAPIRoutes(t *testing.T) {
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !c.doc.IsOpenAPI31OrLater() || !strings.HasPrefix(c.doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", c.doc.OpenAPI)
	}
	var (
		down atomic.Bool
		deps *handlers.Deps
	)
	newEnv(t, models.SQLite, withContractDeps(t, &down, &deps))
	site, err := web.NewSite(web.Files())
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, r := range handlers.Routes(*deps) {
		switch {
		case strings.HasPrefix(r.Path, "/ws/"):
			t.Logf("not in openapi.yaml: %s %s (WebSocket endpoint, named in the description)", r.Method, r.Path)
		case slices.Contains(site.Paths(), r.Path):
			t.Logf("not in openapi.yaml: %s %s (the chat page)", r.Method, r.Path)
		default:
			registered[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
			if slashOptional(item) {
				documented[method+" "+toggleSlash(path)] = true
			}
		}
	}
	for _, r := range sortedKeys(registered) {
		if !documented[r] {
			t.Errorf("gin serves %s, openapi.yaml does not describe it", r)
		}
	}
	for _, d := range sortedKeys(documented) {
		if !registered[d] {
			t.Errorf("openapi.yaml describes %s, gin does not serve it", d)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestOpenAPISchemaServed: GET /api/schema/ (and without the slash) serves
// the document byte for byte as application/yaml.
func TestOpenAPISchemaServed(t *testing.T) {
	e := newEnv(t, models.SQLite)
	for _, path := range []string{"/api/schema/", "/api/schema"} {
		r := e.rest(t, http.MethodGet, path, "", "", nil)
		if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); r.status != http.StatusOK || mt != "application/yaml" {
			t.Errorf("GET %s = %d %q, want 200 application/yaml", path, r.status, r.header.Get("Content-Type"))
		}
		if !bytes.Equal(r.body, handlers.OpenAPIDocument()) || !bytes.HasPrefix(r.body, []byte("openapi: 3.1.")) {
			t.Errorf("GET %s body (%d bytes) is not openapi.yaml (%d bytes)", path, len(r.body), len(handlers.OpenAPIDocument()))
		}
	}
}

// TestOpenAPIOperations calls every documented operation through env.send,
// which validates each answer, so the parts of the API the other handler
// tests do not reach are checked against the document too, and then
// checks that each operation answered at least once.
func TestOpenAPIOperations(t *testing.T) {
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var redisDown atomic.Bool
	e := newEnv(t, models.SQLite, withContractDeps(t, &redisDown, nil))
	staff := e.createUser(t, "boss", true)
	alice := e.createUser(t, "alice", false)
	carol := e.createUser(t, "carol", false)
	dave := e.createUser(t, "dave", false)
	staffAuth, aliceAuth := "JWT "+e.token(t, staff), "Bearer "+e.token(t, alice)
	revoke, err := e.auth.MintService("revoke", alice.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const key, js, form = "Api-Key contract-key", "application/json", "application/x-www-form-urlencoded"
	calls := []struct {
		method, path, auth, contentType, body string
		want                                  int
	}{
		{"GET", "/healthz", "", "", "", 200},
		{"HEAD", "/healthz", "", "", "", 200},
		{"GET", "/readyz", "", "", "", 200},
		{"GET", "/metrics", "", "", "", 200},
		{"GET", "/api/schema/", "", "", "", 200},

		{"POST", "/api/users/", "", js, `{"username":"bob","password":"password123","email":"bob@example.com"}`, 201},
		{"POST", "/api/users", "", form, `username=bob&password=password123`, 400},
		{"POST", "/api-token-auth/", "", js, `{"username":"bob","password":"password123"}`, 200},
		{"POST", "/api-token-auth", "", form, `username=bob&password=wrong-password`, 400},
		{"POST", "/api-token-auth/", "", form, `password=x`, 400},
		{"POST", "/api-token-refresh/", "", js, `{"token":"` + e.token(t, alice) + `"}`, 200},
		{"POST", "/api-token-refresh/", "", form, `token=a.b.c`, 400},
		{"POST", "/api-token-verify/", "", form, `token=` + e.token(t, alice), 200},
		{"POST", "/api-token-verify/", "", js, `{}`, 400},
		{"POST", "/api-token-logout/", "", "", "", 204},

		{"GET", "/api/users/me", aliceAuth, "", "", 200},
		{"HEAD", "/api/users/me", aliceAuth, "", "", 200},
		{"GET", "/api/users/me/", "", "", "", 401},
		{"GET", "/api/users/?limit=2", staffAuth, "", "", 200},
		{"GET", "/api/users/?limit=0", staffAuth, "", "", 400},
		{"GET", "/api/users", aliceAuth, "", "", 403},
		{"GET", fmt.Sprintf("/api/users/%d", alice.ID), staffAuth, "", "", 200},
		{"GET", "/api/users/99999/", staffAuth, "", "", 404},
		{"PATCH", fmt.Sprintf("/api/users/%d", alice.ID), staffAuth, js, `{"email":"alice@example.com"}`, 200},
		{"POST", "/api/users/me/password", "JWT " + e.token(t, carol), js, `{"old_password":"wrong-password","new_password":"password456"}`, 400},
		{"POST", "/api/users/me/password/", "JWT " + e.token(t, carol), js, `{"old_password":"password123","new_password":"password456"}`, 200},
		{"POST", "/api/users/me/logout-all", "JWT " + e.token(t, dave), "", "", 204},

		{"POST", "/api/groups/chat-a/messages", key, js, `{"data":{"n":1}}`, 202},
		{"POST", "/api/groups/chat-a/messages/", staffAuth, js, `{"data":null}`, 202},
		{"POST", "/api/groups/a%20b/messages", key, js, `{"data":1}`, 400},
		{"POST", "/api/groups/chat-a/messages", "Api-Key wrong", js, `{"data":1}`, 401},
		{"POST", "/api/groups/chat-a/messages", aliceAuth, js, `{"data":1}`, 403},
		{"GET", "/api/groups/chat-a/presence", aliceAuth, "", "", 200},
		{"GET", "/api/groups/chat-b/presence/", aliceAuth, "", "", 403},
		{"GET", "/api/groups/chat-b/presence", key, "", "", 200},
		{"GET", "/api/groups/chat-a/history", aliceAuth, "", "", 200},
		{"GET", "/api/groups/chat-a/history/?since=0&limit=10", key, "", "", 200},
		{"GET", "/api/groups/chat-a/history?since=x", key, "", "", 400},

		{"GET", "/api/status/system", aliceAuth, "", "", 200},
		{"PUT", "/api/status/system", key, js, `{"value":{"load":0.42}}`, 200},
		{"PUT", "/api/status/system/", staffAuth, "text/plain", `{"value":1}`, 415},
		{"PUT", "/api/status/system", aliceAuth, js, `{"value":1}`, 403},
		{"GET", "/api/status/system/", key, "", "", 200},
		{"GET", "/api/status/bad%20key", key, "", "", 400},

		{"POST", "/api/internal/revoke", "JWT " + e.token(t, alice), "", "", 401},
		{"POST", "/api/internal/revoke", "Bearer " + revoke, "", "", 200},
		{"DELETE", fmt.Sprintf("/api/users/%d/", alice.ID), staffAuth, "", "", 204},

		{"GET", "/api/nowhere", "", "", "", 404},
		{"DELETE", "/healthz", "", "", "", 405},
	}
	for _, tt := range calls {
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		if r := e.rest(t, tt.method, tt.path, tt.contentType, tt.auth, body); r.status != tt.want {
			t.Errorf("%s %s = %d, want %d (body %.300s)", tt.method, tt.path, r.status, tt.want, r.body)
		}
	}
	redisDown.Store(true)
	if r := e.rest(t, "GET", "/readyz", "", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with redis down = %d, want 503 (body %s)", r.status, r.body)
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			hit := false
			c.covered.Range(func(k, _ any) bool {
				hit = strings.HasPrefix(k.(string), op.OperationID+" ")
				return !hit
			})
			if !hit {
				t.Errorf("%s %s (%s) never answered validly", method, path, op.OperationID)
			}
		}
	}
}

// TestOpenAPICheckRejects: the validator itself is not lenient. Each
// answer here breaks the document in one way and must be refused.
func TestOpenAPICheckRejects(t *testing.T) {
	c, err := loadOpenAPI()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	js := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	user := `{"id":1,"username":"a","email":"","is_active":true,"is_staff":false}`
	tests := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		wantOK             bool
	}{
		{"a user", "GET", "/api/users/me", 200, js, user, true},
		{"a user, other spelling", "GET", "/api/users/me/", 200, js, user, true},
		{"extra field", "GET", "/api/users/me", 200, js, `{"id":1,"username":"a","email":"","is_active":true,"is_staff":false,"password":"x"}`, false},
		{"missing field", "GET", "/api/users/me", 200, js, `{"id":1,"username":"a","email":"","is_active":true}`, false},
		{"wrong content type", "GET", "/api/users/me", 200, http.Header{"Content-Type": {"text/html"}}, user, false},
		{"HEAD", "HEAD", "/api/users/me", 200, js, ``, true},
		{"HEAD with a body", "HEAD", "/api/users/me", 200, js, user, false},
		{"HEAD, wrong content type", "HEAD", "/api/users/me", 200, http.Header{"Content-Type": {"text/html"}}, ``, false},
		{"undocumented status", "GET", "/api/users/me", 418, js, `{"error":{"code":"invalid","message":"x"}}`, false},
		{"error code for another status", "GET", "/api/users/me", 401, js, `{"error":{"code":"forbidden","message":"token missing"}}`, false},
		{"401 message not in README", "GET", "/api/users/me", 401, js, `{"error":{"code":"unauthorized","message":"nope"}}`, false},
		{"500 showing details", "GET", "/api/users/me", 500, js, `{"error":{"code":"internal","message":"dial tcp 10.0.0.1:5432"}}`, false},
		{"body on 204", "DELETE", "/api/users/3", 204, js, `{}`, false},
		{"204", "DELETE", "/api/users/3", 204, http.Header{}, ``, true},
		{"DRF error", "POST", "/api-token-auth/", 400, js, `{"non_field_errors":["Unable to log in with provided credentials."]}`, true},
		{"DRF required", "POST", "/api-token-auth", 400, js, `{"username":["This field is required."],"password":["This field is required."]}`, true},
		{"DRF error, other message", "POST", "/api-token-auth/", 400, js, `{"non_field_errors":["Signature has expired."]}`, false},
		{"DRF unknown field", "POST", "/api-token-verify/", 400, js, `{"username":["This field is required."]}`, false},
		{"429 without Retry-After", "POST", "/api-token-auth/", 429, js, `{"error":{"code":"rate_limited","message":"slow down"}}`, false},
		{"status never set", "GET", "/api/status/k", 200, js, `{"key":"k","value":null,"version":0,"ts":null}`, true},
		{"status without ts", "GET", "/api/status/k", 200, js, `{"key":"k","value":1,"version":1}`, false},
		{"unknown path, 404", "GET", "/api/nope", 404, js, `{"error":{"code":"not_found","message":"no such endpoint"}}`, true},
		{"unknown path, 200", "GET", "/api/nope", 200, js, `{}`, false},
		{"unknown method, 404", "PUT", "/healthz", 404, js, `{"error":{"code":"not_found","message":"no such endpoint"}}`, false},
		{"unknown method, 405 without Allow", "PUT", "/healthz", 405, js, `{"error":{"code":"method_not_allowed","message":"method not allowed"}}`, false},
		{"healthz", "GET", "/healthz", 200, js, `{"status":"ok"}`, true},
		{"healthz other status", "GET", "/healthz", 200, js, `{"status":"fine"}`, false},
		{"readyz degraded as 200", "GET", "/readyz", 200, js, `{"status":"ok","checks":{"redis":"gone"}}`, false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		err := c.check(req, tt.status, tt.header, []byte(tt.body))
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: %s %s = %d %s: check error %v, want ok %v", tt.name, tt.method, tt.path, tt.status, tt.body, err, tt.wantOK)
		}
	}
}
