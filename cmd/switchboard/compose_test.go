package main

// These tests check the Docker set-up without a Docker engine:
//
//   - TestComposeFile reads docker-compose.yml as Compose would (YAML merge
//     keys, ${VAR} interpolation from .env.example) and checks the services,
//     their wiring and that their environment passes loadConfig.
//   - TestComposeMatchesDockerCompose asks Debian's docker-compose for the
//     same resolution, so that the interpolation here cannot drift from it.
//   - TestComposeDockerfile checks the Dockerfile's stages, then runs its
//     `go build` line (less -trimpath, see dockerBuild) on the files
//     .dockerignore lets into the build context, and checks that the binary
//     is static and stripped and is what ENTRYPOINT runs.
//   - TestComposeStack runs that binary as the stack does: `migrate` once,
//     then two `serve` processes, each with the environment docker-compose.yml
//     gives it, only the hosts postgres and redis pointed at the test servers
//     and the listen port made free.
//
// Not covered: building the image, pulling postgres/redis, container
// networking and the healthchecks themselves (they need an engine).

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/gorilla/websocket"

	"switchboard/models"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

// composeFile is the part of docker-compose.yml these tests read, after
// interpolation. Only the forms the file uses are accepted (exec-form
// command, environment as a map, short-form ports and volumes), so that a
// change of form fails here instead of being half-checked.
type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string                       `json:"image"`
	Build       any                          `json:"build"`
	Entrypoint  any                          `json:"entrypoint"`
	Command     []string                     `json:"command"`
	Environment map[string]string            `json:"environment"`
	DependsOn   map[string]composeDependency `json:"depends_on"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	Volumes []string `json:"volumes"`
	Ports   []string `json:"ports"`
}

type composeDependency struct {
	Condition string `json:"condition"`
}

// loadCompose parses docker-compose.yml and interpolates it with vars, the
// variables an .env file would give (nil: no .env). It returns the file, its
// top-level keys and the variables it referenced.
func loadCompose(t *testing.T, vars map[string]string) (composeFile, []string, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	refs := map[string]bool{}
	v, err := interpolateTree(raw, vars, refs)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	cf := decodeCompose(t, v)
	return cf, sortedKeys(raw), sortedKeys(refs)
}

// decodeCompose turns a parsed, interpolated compose tree into composeFile.
func decodeCompose(t *testing.T, v any) composeFile {
	t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := json.Unmarshal(j, &cf); err != nil {
		t.Fatalf("docker-compose.yml is not in the form these tests read: %v", err)
	}
	return cf
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// interpolateTree interpolates every string value (Compose never
// interpolates keys).
func interpolateTree(v any, vars map[string]string, refs map[string]bool) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			r, err := interpolateTree(e, vars, refs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := interpolateTree(e, vars, refs)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case string:
		return interpolate(v, vars, refs)
	}
	return v, nil
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// interpolate expands what both Compose versions agree on: $$, $VAR,
// ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message} and
// ${VAR?message}, with defaults that hold no further $.
func interpolate(s string, vars map[string]string, refs map[string]bool) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		switch {
		case strings.HasPrefix(s, "$"):
			b.WriteByte('$')
			s = s[1:]
		case strings.HasPrefix(s, "{"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			expr := s[1:end]
			s = s[end+1:]
			name := varName.FindString(expr)
			if name == "" {
				return "", fmt.Errorf("bad variable ${%s}", expr)
			}
			refs[name] = true
			val, set := vars[name]
			op, arg := expr[len(name):], ""
			for _, o := range []string{":-", ":?", "-", "?"} {
				if strings.HasPrefix(op, o) {
					op, arg = o, op[len(o):]
					break
				}
			}
			if strings.Contains(arg, "$") {
				return "", fmt.Errorf("nested interpolation in ${%s}: docker-compose 1.29 cannot read it", expr)
			}
			switch op {
			case "":
			case ":-":
				if val == "" {
					val = arg
				}
			case "-":
				if !set {
					val = arg
				}
			case ":?", "?":
				if !set || (op == ":?" && val == "") {
					return "", fmt.Errorf("variable %s is required: %s", name, arg)
				}
			default:
				return "", fmt.Errorf("unsupported ${%s}", expr)
			}
			b.WriteString(val)
		default:
			name := varName.FindString(s)
			if name == "" {
				return "", fmt.Errorf("lone $ before %q: write $$ for a literal $", s)
			}
			refs[name] = true
			b.WriteString(vars[name])
			s = s[len(name):]
		}
	}
}

// readEnvFile reads an .env file in the form both Compose versions read
// alike: KEY=value lines, # comments, no quotes, no export.
func readEnvFile(t *testing.T, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || varName.FindString(k) != k {
			t.Fatalf("%s:%d: %q is not KEY=value", name, n+1, line)
		}
		if strings.ContainsAny(v, `"'$#`) || v != strings.TrimSpace(v) {
			t.Fatalf("%s:%d: %s's value has quotes, $, # or outer spaces, which Compose versions read differently", name, n+1, k)
		}
		if _, dup := vars[k]; dup {
			t.Fatalf("%s:%d: %s set twice", name, n+1, k)
		}
		vars[k] = v
	}
	return vars
}

// switchboardServices splits the services built from this repository into
// the migration job and the servers (sorted by name).
func switchboardServices(t *testing.T, cf composeFile) (migrate string, servers []string) {
	t.Helper()
	for _, name := range sortedKeys(cf.Services) {
		s := cf.Services[name]
		if s.Build == nil {
			continue
		}
		switch {
		case slices.Equal(s.Command, []string{"migrate"}):
			if migrate != "" {
				t.Errorf("services %s and %s both run migrate", migrate, name)
			}
			migrate = name
		case s.Command == nil, slices.Equal(s.Command, []string{"serve"}):
			servers = append(servers, name)
		default:
			t.Errorf("service %s: command %q, want [migrate], [serve] or none (the image's CMD)", name, s.Command)
		}
	}
	if migrate == "" {
		t.Fatal("no service built from this repository runs [migrate]")
	}
	return migrate, servers
}

// parsePort splits a short-form port mapping [IP:]HOST:CONTAINER[/tcp].
func parsePort(s string) (hostIP, host, container string, err error) {
	s = strings.TrimSuffix(s, "/tcp")
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 2:
		return "", parts[0], parts[1], nil
	case 3:
		return parts[0], parts[1], parts[2], nil
	}
	return "", "", "", fmt.Errorf("port %q: want [IP:]HOST:CONTAINER", s)
}

func envGetter(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestComposeFile(t *testing.T) {
	example := readEnvFile(t, ".env.example")
	cf, top, refs := loadCompose(t, example)

	// Keys one of the two Compose versions rejects or ignores.
	for _, k := range []string{"version", "name", "include"} {
		if slices.Contains(top, k) {
			t.Errorf("docker-compose.yml has top-level %q: remove it (Compose v2 warns on version, docker-compose 1.29 rejects name and include)", k)
		}
	}

	// A fresh clone has no .env: the defaults in the file must be the
	// values .env.example documents, and each must be used.
	bare, _, _ := loadCompose(t, nil)
	if !reflect.DeepEqual(bare, cf) {
		for _, name := range sortedKeys(cf.Services) {
			with, without := cf.Services[name], bare.Services[name]
			for _, k := range sortedKeys(with.Environment) {
				if with.Environment[k] != without.Environment[k] {
					t.Errorf("service %s: %s = %q without .env, %q with .env.example; make the default in docker-compose.yml match", name, k, without.Environment[k], with.Environment[k])
				}
			}
			if reflect.DeepEqual(with.Environment, without.Environment) && !reflect.DeepEqual(with, without) {
				t.Errorf("service %s differs without .env:\n  without: %+v\n  with .env.example: %+v", name, without, with)
			}
		}
	}
	for _, k := range refs {
		if _, ok := example[k]; !ok {
			t.Errorf("docker-compose.yml reads ${%s}, which .env.example does not document", k)
		}
	}
	for _, k := range sortedKeys(example) {
		if !slices.Contains(refs, k) {
			t.Errorf(".env.example sets %s, which docker-compose.yml never reads", k)
		}
	}

	// PostgreSQL: official image, data in a named volume, a healthcheck.
	pg, ok := cf.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	if !strings.HasPrefix(pg.Image, "postgres:") {
		t.Errorf("postgres image = %q, want the official postgres:TAG", pg.Image)
	}
	namedData := false
	for _, v := range pg.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		if _, declared := cf.Volumes[src]; declared && dst == "/var/lib/postgresql/data" {
			namedData = true
		}
	}
	if !namedData {
		t.Errorf("postgres volumes = %q, want a top-level named volume on /var/lib/postgresql/data", pg.Volumes)
	}
	// Redis: official image.
	rd, ok := cf.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	if !strings.HasPrefix(rd.Image, "redis:") {
		t.Errorf("redis image = %q, want the official redis:TAG", rd.Image)
	}
	for name, s := range map[string]composeService{"postgres": pg, "redis": rd} {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("service %s: healthcheck = %+v, want test: [CMD, ...]", name, s.Healthcheck)
		}
	}

	migrate, servers := switchboardServices(t, cf)
	if len(servers) != 2 {
		t.Fatalf("switchboard servers = %q, want two replicas", servers)
	}
	want := cf.Services[servers[0]].Environment
	hostPorts := map[string]string{}
	for _, name := range append([]string{migrate}, servers...) {
		s := cf.Services[name]
		if ctx, ok := s.Build.(string); !ok || ctx != "." {
			t.Errorf("service %s: build = %v, want \".\" (the Dockerfile at the root)", name, s.Build)
		}
		if s.Image != "" {
			t.Errorf("service %s: image = %q alongside build; leave it out so each service builds (from cache) rather than pulls", name, s.Image)
		}
		if s.Entrypoint != nil {
			t.Errorf("service %s: entrypoint = %v; the image's ENTRYPOINT is the binary (see TestComposeDockerfile)", name, s.Entrypoint)
		}
		if !reflect.DeepEqual(s.Environment, want) {
			t.Errorf("service %s: environment = %v, want the same as %s: %v", name, s.Environment, servers[0], want)
		}
		if c := s.DependsOn["postgres"].Condition; c != "service_healthy" {
			t.Errorf("service %s: depends_on postgres condition = %q, want service_healthy", name, c)
		}
	}
	for _, name := range servers {
		s := cf.Services[name]
		for dep, cond := range map[string]string{"redis": "service_healthy", migrate: "service_completed_successfully"} {
			if c := s.DependsOn[dep].Condition; c != cond {
				t.Errorf("service %s: depends_on %s condition = %q, want %s", name, dep, c, cond)
			}
		}
		if len(s.Ports) != 1 {
			t.Errorf("service %s: ports = %q, want one mapping", name, s.Ports)
			continue
		}
		ip, host, container, err := parsePort(s.Ports[0])
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		if ip != "127.0.0.1" {
			t.Errorf("service %s: port %q is published on %q, want 127.0.0.1 (a development secret is in use)", name, s.Ports[0], ip)
		}
		if _, addrPort, _ := net.SplitHostPort(s.Environment["ADDR"]); addrPort != container {
			t.Errorf("service %s: publishes container port %s, but ADDR = %q", name, container, s.Environment["ADDR"])
		}
		if other, dup := hostPorts[host]; dup {
			t.Errorf("services %s and %s both publish host port %s", other, name, host)
		}
		hostPorts[host] = name
	}
	if s := cf.Services[migrate]; len(s.Ports) != 0 {
		t.Errorf("service %s: ports = %q, want none (it exits after migrating)", migrate, s.Ports)
	}

	// The environment is a valid configuration of the stack's shape.
	cfg, err := loadConfig(envGetter(want))
	if err != nil {
		t.Fatalf("loadConfig(environment of %s) = %v", servers[0], err)
	}
	if h, _, _ := net.SplitHostPort(cfg.Addr); h != "0.0.0.0" {
		t.Errorf("ADDR = %q, want 0.0.0.0:PORT (loopback is unreachable from outside the container)", cfg.Addr)
	}
	if cfg.Database.Dialect != models.Postgres {
		t.Fatalf("DATABASE_URL dialect = %s, want postgres", cfg.Database.Dialect)
	}
	db, err := url.Parse(cfg.Database.DSN)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := db.User.Password()
	for _, c := range []struct{ what, got, want string }{
		{"DATABASE_URL host", db.Hostname(), "postgres"},
		{"DATABASE_URL user", db.User.Username(), pg.Environment["POSTGRES_USER"]},
		{"DATABASE_URL password", pass, pg.Environment["POSTGRES_PASSWORD"]},
		{"DATABASE_URL database", strings.TrimPrefix(db.Path, "/"), pg.Environment["POSTGRES_DB"]},
	} {
		if c.got != c.want || c.got == "" {
			t.Errorf("%s = %q, want %q (the postgres service's)", c.what, c.got, c.want)
		}
	}
	rdURL, err := url.Parse(cfg.RedisURL)
	if err != nil || rdURL.Hostname() != "redis" {
		t.Errorf("REDIS_URL = %q, want redis://redis:PORT/DB (broker and presence on Redis)", cfg.RedisURL)
	}
	// No secret in the file: empty JWT_SECRET means the shared file,
	// generated by the migrate job on a volume every replica mounts.
	if cfg.JWTSecret != "" {
		t.Errorf("JWT_SECRET defaults to %q: no secret may be committed", cfg.JWTSecret)
	}
	if cfg.JWTSecretFile == "" || !strings.HasPrefix(cfg.JWTSecretFile, "/var/lib/switchboard/") {
		t.Errorf("JWT_SECRET_FILE = %q, want a file on the shared /var/lib/switchboard volume", cfg.JWTSecretFile)
	}
	for host := range hostPorts {
		for _, o := range []string{"http://localhost:" + host, "http://127.0.0.1:" + host} {
			if !slices.Contains(cfg.AllowedOrigins, o) {
				t.Errorf("ALLOWED_ORIGINS = %q, missing %s (the page published there)", cfg.AllowedOrigins, o)
			}
		}
	}
}

// TestComposeMatchesDockerCompose checks that Debian's docker-compose
// resolves the file to the same images, commands and environments as
// loadCompose, with .env.example and with no .env at all.
func TestComposeMatchesDockerCompose(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not installed: cross-check skipped (scripts/test.sh installs it)")
	}
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		envFile string
		vars    map[string]string
	}{
		{"with .env.example", filepath.Join(root, ".env.example"), readEnvFile(t, ".env.example")},
		{"without .env", empty, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "--env-file", tt.envFile, "--project-directory", root,
				"-f", filepath.Join(root, "docker-compose.yml"), "config")
			// Only the env file may supply variables.
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
			}
			var raw map[string]any
			if err := yaml.Unmarshal(out, &raw); err != nil {
				t.Fatalf("parse docker-compose config output: %v", err)
			}
			theirs := decodeCompose(t, raw)
			ours, _, _ := loadCompose(t, tt.vars)
			if got, want := sortedKeys(theirs.Services), sortedKeys(ours.Services); !slices.Equal(got, want) {
				t.Fatalf("docker-compose services = %q, want %q", got, want)
			}
			for _, name := range sortedKeys(ours.Services) {
				o, d := ours.Services[name], theirs.Services[name]
				if !reflect.DeepEqual(d.Environment, o.Environment) && !(len(d.Environment) == 0 && len(o.Environment) == 0) {
					t.Errorf("service %s environment: docker-compose %v, loadCompose %v", name, d.Environment, o.Environment)
				}
				if d.Image != o.Image || !slices.Equal(d.Command, o.Command) {
					t.Errorf("service %s: docker-compose image %q command %q, loadCompose %q %q", name, d.Image, d.Command, o.Image, o.Command)
				}
				if !reflect.DeepEqual(d.DependsOn, o.DependsOn) {
					t.Errorf("service %s depends_on: docker-compose %v, loadCompose %v", name, d.DependsOn, o.DependsOn)
				}
			}
		})
	}
}

// dockerInstr is one Dockerfile instruction.
type dockerInstr struct {
	cmd, args string
	line      int
}

type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

// parseDockerfile splits the Dockerfile into stages of instructions,
// joining continuation lines and dropping comments.
func parseDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages  []dockerStage
		pending string
		start   int
	)
	for n, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if pending == "" {
			start = n + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		full := pending + trimmed
		pending = ""
		cmd, args, _ := strings.Cut(full, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	return stages
}

// execForm decodes a JSON-array (exec form) ENTRYPOINT or CMD.
func execForm(t *testing.T, in dockerInstr) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s: want exec form [\"...\"] (no shell in the final image)", in.line, in.cmd, in.args)
	}
	return argv
}

// shellWords splits a simple shell command line: words, "..." and '...'.
// Operators are refused, so the line is one command the test can run.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var (
		words []string
		cur   strings.Builder
		quote rune
		inTok bool
	)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inTok = r, true
		case r == ' ' || r == '\t':
			if inTok {
				words = append(words, cur.String())
				cur.Reset()
				inTok = false
			}
		case strings.ContainsRune(";&|<>`$\\()", r):
			t.Fatalf("RUN %s: %q is more than one plain command; keep go build on a RUN of its own", s, r)
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if quote != 0 {
		t.Fatalf("RUN %s: unterminated quote", s)
	}
	if inTok {
		words = append(words, cur.String())
	}
	return words
}

// dockerBuildSpec is what the Dockerfile says about building the binary.
type dockerBuildSpec struct {
	env        []string // NAME=value before go
	argv       []string // go build ...
	out        string   // -o path in the build stage
	binary     string   // where the final stage copies it
	entrypoint []string
	cmd        []string
	final      dockerStage
	builder    dockerStage
}

// readDockerfile checks the Dockerfile's shape and returns its build spec.
func readDockerfile(t *testing.T) dockerBuildSpec {
	t.Helper()
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final stage", len(stages))
	}
	var spec dockerBuildSpec
	spec.final = stages[len(stages)-1]
	for _, in := range spec.final.instrs {
		switch in.cmd {
		case "ENTRYPOINT":
			spec.entrypoint = execForm(t, in)
		case "CMD":
			spec.cmd = execForm(t, in)
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) == 3 && strings.HasPrefix(f[0], "--from=") {
				for _, st := range stages[:len(stages)-1] {
					if st.name == strings.TrimPrefix(f[0], "--from=") {
						spec.builder = st
						spec.binary = f[2]
						spec.out = f[1]
					}
				}
			}
		}
	}
	if spec.builder.name == "" {
		t.Fatal("Dockerfile: the final stage copies nothing from a named build stage (COPY --from=NAME SRC DST)")
	}
	for _, in := range spec.builder.instrs {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words := shellWords(t, in.args)
		i := 0
		for i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-") {
			spec.env = append(spec.env, words[i])
			i++
		}
		spec.argv = words[i:]
	}
	if len(spec.argv) < 2 || spec.argv[0] != "go" || spec.argv[1] != "build" {
		t.Fatalf("Dockerfile: build stage %s has no RUN [NAME=value ...] go build ...", spec.builder.name)
	}
	return spec
}

func TestComposeDockerfile(t *testing.T) {
	spec := readDockerfile(t)

	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "golang:" + string(goLine[1]); !strings.HasPrefix(spec.builder.from, want) {
		t.Errorf("build stage FROM %s, want %s (go.mod's go %s)", spec.builder.from, want, goLine[1])
	}
	if !strings.HasPrefix(spec.final.from, "gcr.io/distroless/static") && spec.final.from != "scratch" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-* or scratch (a static binary needs no libc)", spec.final.from)
	}
	user := ""
	for _, in := range spec.final.instrs {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER = %q, want a non-root user", user)
	}

	// The binary is built from ./cmd/switchboard, static and stripped, and
	// is what ENTRYPOINT runs.
	if !slices.Contains(spec.env, "CGO_ENABLED=0") {
		t.Errorf("go build environment = %q, want CGO_ENABLED=0", spec.env)
	}
	for _, flag := range []string{"-trimpath", "-ldflags=-s -w"} {
		if !slices.Contains(spec.argv, flag) {
			t.Errorf("go build args = %q, missing %s", spec.argv, flag)
		}
	}
	if spec.argv[len(spec.argv)-1] != "./cmd/switchboard" {
		t.Errorf("go build args = %q, want the package ./cmd/switchboard last", spec.argv)
	}
	if i := slices.Index(spec.argv, "-o"); i < 0 || i+1 >= len(spec.argv) || spec.argv[i+1] != spec.out {
		t.Errorf("go build args = %q, want -o %s (what the final stage copies)", spec.argv, spec.out)
	}
	if len(spec.entrypoint) != 1 || spec.entrypoint[0] != spec.binary {
		t.Errorf("ENTRYPOINT %q, want [%q] (where the binary is copied)", spec.entrypoint, spec.binary)
	}
	if !slices.Equal(spec.cmd, []string{"serve"}) {
		t.Errorf("CMD %q, want [\"serve\"]", spec.cmd)
	}
	// Every command the compose services run is one the binary has.
	cf, _, _ := loadCompose(t, readEnvFile(t, ".env.example"))
	migrate, servers := switchboardServices(t, cf)
	for _, name := range append([]string{migrate}, servers...) {
		args := containerArgs(cf.Services[name], spec)
		if !strings.Contains(usage, "\n  "+args[0]+" ") {
			t.Errorf("service %s runs %q: not a switchboard command", name, args)
		}
	}

	// Secrets and local databases stay out of the build context.
	ignore := readDockerignore(t)
	for _, p := range []string{".env", "switchboard.db", "switchboard.db-wal", "switchboard.db.jwt-secret", ".git/config", "cmd/switchboard/compose_test.go"} {
		if !ignore.excludes(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}

	bin := dockerBuild(t, spec)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a PT_INTERP program header: dynamically linked, will not run on distroless/static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("binary needs shared libraries %q (err %v), want none", libs, err)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("binary has section %s: not stripped (-ldflags=\"-s -w\")", s)
		}
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "migrate") {
		t.Errorf("%s help = %v\n%s", bin, err, out)
	}
}

// containerArgs is the command line a service's container runs: the
// service's command, else the image's CMD.
func containerArgs(s composeService, spec dockerBuildSpec) []string {
	if s.Command != nil {
		return s.Command
	}
	return spec.cmd
}

// dockerignore holds .dockerignore's patterns, matched as Docker does:
// relative to the context root, ** for any number of directories, a
// pattern matching a directory excludes what is in it, later ! patterns
// re-include.
type dockerignore []string

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		p := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			t.Fatalf(".dockerignore: bad pattern %q", line)
		}
		if neg {
			p = "!" + p
		}
		d = append(d, p)
	}
	return d
}

func (d dockerignore) excludes(name string) bool {
	excluded := false
	segs := strings.Split(name, "/")
	for _, p := range d {
		neg := strings.HasPrefix(p, "!")
		pat := strings.Split(strings.TrimPrefix(p, "!"), "/")
		for i := 1; i <= len(segs); i++ {
			if matchSegs(pat, segs[:i]) {
				excluded = !neg
				break
			}
		}
	}
	return excluded
}

func matchSegs(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if matchSegs(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, _ := path.Match(pat[0], name[0])
	return ok && matchSegs(pat[1:], name[1:])
}

// dockerBuild copies the files .dockerignore lets into the build context to
// a temporary directory and runs the Dockerfile's go build line there, with
// -o pointed at a temporary file, which it returns, and without -trimpath.
func dockerBuild(t *testing.T, spec dockerBuildSpec) string {
	t.Helper()
	ignore := readDockerignore(t)
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "context")
	n := 0
	err := filepath.WalkDir(repoRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if e.IsDir() {
			return nil
		}
		if ignore.excludes(rel) {
			return nil
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", rel)
		}
		dst := filepath.Join(ctxDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		n++
		return copyFile(p, dst)
	})
	if err != nil {
		t.Fatalf("copy build context: %v", err)
	}
	bin := filepath.Join(dir, "switchboard")
	argv := slices.Clone(spec.argv)
	argv[slices.Index(argv, "-o")+1] = bin
	// -trimpath only rewrites file paths in the binary, but it changes
	// every package's build cache key: with it a cold cache recompiles
	// everything (minutes, modernc SQLite above all) where without it the
	// packages go vet compiled are reused.
	argv = slices.DeleteFunc(argv, func(a string) bool { return a == "-trimpath" })
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), spec.env...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in the build context (%d files): %s %s: %v\n%s", n, strings.Join(spec.env, " "), strings.Join(argv, " "), err, out)
	}
	t.Logf("%s %s: %d-file build context, %s", strings.Join(spec.env, " "), strings.Join(argv, " "), n, time.Since(start).Round(100*time.Millisecond))
	return bin
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// composeDatabase makes, on the test PostgreSQL server, the role the
// compose file connects as (unless it exists) and a fresh database it owns.
// It returns DATABASE_URL with only the host and the database name changed.
func composeDatabase(t *testing.T, composeURL, testURL string) string {
	t.Helper()
	cu, err := url.Parse(composeURL)
	if err != nil {
		t.Fatal(err)
	}
	tu, err := url.Parse(testURL)
	if err != nil {
		t.Fatal(err)
	}
	admin := os.Getenv("TEST_PG_ADMIN_URL")
	if admin == "" {
		admin = testURL
	}
	db, err := openSQL(admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	run := func(stmt string) {
		t.Helper()
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	role := cu.User.Username()
	pass, _ := cu.User.Password()
	var exists bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		// Not a superuser (the image's POSTGRES_USER is one): the
		// stack must work with a database owner's rights alone.
		run("CREATE ROLE " + quoteIdent(role) + " LOGIN PASSWORD " + quoteLiteral(pass))
		t.Cleanup(func() { run("DROP ROLE IF EXISTS " + quoteIdent(role)) })
	}
	// A fresh database, never the compose file's own name: the test server
	// may be a developer's.
	name := fmt.Sprintf("%s_compose_%d", strings.TrimPrefix(cu.Path, "/"), time.Now().UnixNano())
	run("CREATE DATABASE " + quoteIdent(name) + " OWNER " + quoteIdent(role))
	t.Cleanup(func() { run("DROP DATABASE IF EXISTS " + quoteIdent(name) + " WITH (FORCE)") })
	cu.Host = tu.Host
	cu.Path = "/" + name
	return cu.String()
}

// startBinary runs bin with args and env, and waits for /healthz on addr:
// proc.run for a binary other than the -race build.
func startBinary(t *testing.T, bin, name, addr string, args, env []string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, addr: addr, env: env, log: &syncBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(p.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done = nil
			t.Fatalf("%s exited at start: %v\n%s", name, err, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy in 30s\n%s", name, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func envList(env map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func TestComposeStack(t *testing.T) {
	testDB, testRedis := os.Getenv("TEST_DATABASE_URL"), os.Getenv("TEST_REDIS_URL")
	if testDB == "" || testRedis == "" {
		t.Skip("TEST_DATABASE_URL or TEST_REDIS_URL not set: compose stack test skipped (scripts/test.sh sets them)")
	}
	cf, _, _ := loadCompose(t, readEnvFile(t, ".env.example"))
	spec := readDockerfile(t)
	migrate, servers := switchboardServices(t, cf)
	if len(servers) != 2 {
		t.Fatalf("switchboard servers = %q, want two", servers)
	}
	bin := dockerBuild(t, spec)

	// The compose environment, with the hosts postgres and redis replaced
	// by the test servers and the listen port by a free one.
	composeEnv := cf.Services[migrate].Environment
	dbURL := composeDatabase(t, composeEnv["DATABASE_URL"], testDB)
	ru, err := url.Parse(composeEnv["REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	tr, err := url.Parse(testRedis)
	if err != nil {
		t.Fatal(err)
	}
	ru.Host = tr.Host
	// The secrets volume, shared by migrate and both replicas, is one
	// directory here.
	secretsDir := t.TempDir()
	rewrite := func(env map[string]string, addr string) map[string]string {
		out := map[string]string{}
		for k, v := range env {
			out[k] = v
		}
		out["DATABASE_URL"], out["REDIS_URL"] = dbURL, ru.String()
		out["JWT_SECRET_FILE"] = filepath.Join(secretsDir, filepath.Base(env["JWT_SECRET_FILE"]))
		if addr != "" {
			out["ADDR"] = addr
		}
		return out
	}
	t.Logf("compose environment, rewritten: DATABASE_URL=%s REDIS_URL=%s", dbURL, ru)

	// migrate runs once, as the one-shot service does.
	mcmd := exec.Command(bin, containerArgs(cf.Services[migrate], spec)...)
	mcmd.Env = envList(rewrite(composeEnv, ""))
	out, err := mcmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "database ready") || strings.Contains(string(out), "migrations_applied=0") {
		t.Fatalf("service %s: %v\n%s", migrate, err, out)
	}

	// Both replicas, each with its own service's environment.
	procs := make([]*proc, len(servers))
	origins := make([]string, len(servers))
	for i, name := range servers {
		s := cf.Services[name]
		addr := freePort(t)
		procs[i] = startBinary(t, bin, name, addr, containerArgs(s, spec), envList(rewrite(s.Environment, addr)))
		_, hostPort, _, err := parsePort(s.Ports[0])
		if err != nil {
			t.Fatal(err)
		}
		origins[i] = "http://localhost:" + hostPort
	}
	p1, p2 := procs[0], procs[1]

	for _, p := range procs {
		// Ready: PostgreSQL and Redis both reachable.
		status, body := p.call("GET", "/readyz", "", nil)
		var ready struct{ Checks map[string]string }
		json.Unmarshal(body, &ready)
		if status != 200 || ready.Checks["database"] != "ok" || ready.Checks["redis"] != "ok" {
			t.Errorf("GET /readyz on %s = %d %s, want 200 with database and redis ok", p.name, status, body)
		}
		// The migrate service left nothing for serve to apply.
		if !strings.Contains(p.log.String(), "migrations_applied=0") {
			t.Errorf("%s applied migrations itself; want them done by %s\n%s", p.name, migrate, p.log)
		}
		// The page.
		resp, err := http.Get(p.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(page, []byte("<html")) {
			t.Errorf("GET / on %s = %d %s, want the chat page", p.name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}

	// One database, one JWT secret: registered on one, logs in on the other.
	// The names are new on every run, so that no presence left in Redis by
	// an earlier run hides a join; both are in group chat-c.
	n := time.Now().UnixNano() % 1e9
	cara, cody := fmt.Sprint("cara", n), fmt.Sprint("cody", n)
	tokCara, _ := p1.register(cara, false)
	if tok := p2.login(cara); tok == "" {
		t.Error("cara registered on the first replica has no token from the second")
	}
	if status, body := p2.call("GET", "/api/users/me", "JWT "+tokCara, nil); status != 200 {
		t.Errorf("GET /api/users/me on %s with %s's token = %d %s, want 200", p2.name, p1.name, status, body)
	}
	tokCody, _ := p2.register(cody, false)

	// One Redis: a message sent on one replica reaches a member on the other.
	sc := p1.chat(tokCara)
	sd := p2.chat(tokCody)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := sc.next("join", time.Until(deadline))
		if f == nil {
			t.Fatalf("cara on %s never saw %s (on %s) join", p1.name, cody, p2.name)
		}
		if f["user"] == cody {
			break
		}
	}
	sc.send("hello from " + p1.name)
	if f := sd.next("message", 5*time.Second); f == nil || f["text"] != "hello from "+p1.name || f["user"] != cara {
		t.Errorf("cody on %s got %v, want cara's message from %s", p2.name, f, p1.name)
	}
	sd.send("hello from " + p2.name)
	for {
		// cara's own message comes back to her first.
		f := sc.next("message", 5*time.Second)
		if f == nil {
			t.Errorf("cara on %s did not get cody's message from %s", p1.name, p2.name)
			break
		}
		if f["user"] == cody {
			if f["text"] != "hello from "+p2.name {
				t.Errorf("cara on %s got %v, want cody's message from %s", p1.name, f, p2.name)
			}
			break
		}
	}

	// Origin: the published pages' origins upgrade, a foreign one is refused.
	tests := []struct {
		p      *proc
		origin string
		want   int
	}{
		{p1, origins[0], http.StatusSwitchingProtocols},
		{p2, origins[1], http.StatusSwitchingProtocols},
		{p2, strings.Replace(origins[1], "localhost", "127.0.0.1", 1), http.StatusSwitchingProtocols},
		{p1, "http://evil.example", http.StatusForbidden},
		{p2, "http://evil.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		u := tt.p.wsURL("/ws/chat/?token=" + url.QueryEscape(tokCara))
		conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {tt.origin}})
		if conn != nil {
			conn.Close()
		}
		if resp == nil {
			t.Errorf("upgrade on %s with Origin %s: %v", tt.p.name, tt.origin, err)
			continue
		}
		if resp.StatusCode != tt.want {
			t.Errorf("upgrade on %s with Origin %s = %d, want %d", tt.p.name, tt.origin, resp.StatusCode, tt.want)
		}
	}
}
