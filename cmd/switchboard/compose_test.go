package main

// These tests check the Docker set-up without a Docker engine, reading each
// file with the tool or library that reads it for real:
//
//   - TestComposeFile checks docker-compose.yml as Debian's docker-compose
//     1.29 resolves it with .env.example (`docker-compose config` prints the
//     file merged and fully interpolated): the services, their wiring, and
//     that their environment passes loadConfig.
//   - TestComposeDefaults checks that without .env docker-compose resolves
//     the file exactly as with .env.example, and that the file reads exactly
//     the variables .env.example documents.
//   - TestComposeDockerfile reads the Dockerfile with BuildKit's parser, runs
//     its `go build` line (split by a POSIX shell parser, less -trimpath, see
//     dockerBuild) on the files .dockerignore lets into the build context
//     (matched by moby/patternmatcher, Docker's own matcher), and checks that
//     the binary is static and stripped and is what ENTRYPOINT runs.
//   - TestComposeStack runs that binary as the stack does: `migrate` once,
//     then two `serve` processes, each with the environment docker-compose
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
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"switchboard/models"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

func repoPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// composeFile is the part of `docker-compose config` output these tests
// read. Only the forms the file uses are accepted (exec-form command,
// short-form ports and volumes), so that a change of form fails here
// instead of being half-checked.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Entrypoint  any               `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Volumes []string `yaml:"volumes"`
	Ports   []string `yaml:"ports"`
}

// composeConfig is docker-compose.yml as Debian's docker-compose resolves it
// with envFile as its .env ("" for none). It skips the test when
// docker-compose is not installed.
func composeConfig(t *testing.T, envFile string) composeFile {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not found on PATH: install Debian's docker-compose 1.29 (scripts/test.sh does)")
	}
	if envFile == "" {
		envFile = filepath.Join(t.TempDir(), "empty.env")
		if err := os.WriteFile(envFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--env-file", envFile, "--project-directory", repoPath(t, "."),
		"-f", repoPath(t, "docker-compose.yml"), "config")
	// Only the env file may supply variables.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config (env file %s): %v\n%s", envFile, err, stderr.String())
	}
	var cf composeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatalf("docker-compose config output is not in the form these tests read: %v\n%s", err, out)
	}
	return cf
}

// switchboardServices splits the services built from this repository into
// the migration job and the servers (sorted by name).
func switchboardServices(t *testing.T, cf composeFile) (migrate string, servers []string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(cf.Services)) {
		s := cf.Services[name]
		switch {
		case s.Build == nil:
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

// containerArgs is the command line a service's container runs: the
// service's command, else the image's CMD.
func containerArgs(s composeService, d dockerfile) []string {
	if s.Command != nil {
		return s.Command
	}
	return d.cmd
}

// parsePort splits a short-form port mapping [IP:]HOST:CONTAINER[/tcp].
func parsePort(s string) (hostIP, host, container string, err error) {
	parts := strings.Split(strings.TrimSuffix(s, "/tcp"), ":")
	switch len(parts) {
	case 2:
		return "", parts[0], parts[1], nil
	case 3:
		return parts[0], parts[1], parts[2], nil
	}
	return "", "", "", fmt.Errorf("port %q: want [IP:]HOST:CONTAINER", s)
}

func TestComposeFile(t *testing.T) {
	cf := composeConfig(t, repoPath(t, ".env.example"))
	df := readDockerfile(t)

	// Keys one of the two Compose versions rejects or ignores (the output
	// of docker-compose config always has a version, so read the file).
	var raw map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, "docker-compose.yml"), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "name", "include"} {
		if _, ok := raw[k]; ok {
			t.Errorf("docker-compose.yml has top-level %q: remove it (Compose v2 warns on version, docker-compose 1.29 rejects name and include)", k)
		}
	}

	// PostgreSQL: official image, data in a named volume; Redis: official
	// image; both with a healthcheck.
	pg, rd := cf.Services["postgres"], cf.Services["redis"]
	if !strings.HasPrefix(pg.Image, "postgres:") || !strings.HasPrefix(rd.Image, "redis:") {
		t.Fatalf("postgres, redis images = %q, %q, want the official postgres:TAG and redis:TAG", pg.Image, rd.Image)
	}
	if !slices.ContainsFunc(pg.Volumes, func(v string) bool {
		src, dst, _ := strings.Cut(v, ":")
		_, declared := cf.Volumes[src]
		return declared && strings.HasPrefix(dst+":", "/var/lib/postgresql/data:")
	}) {
		t.Errorf("postgres volumes = %q, want a top-level named volume on /var/lib/postgresql/data", pg.Volumes)
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
		if s.Build.Context != repoPath(t, ".") || s.Build.Dockerfile != "" {
			t.Errorf("service %s: build = %+v, want \".\" (the Dockerfile at the root)", name, *s.Build)
		}
		if s.Image != "" {
			t.Errorf("service %s: image = %q alongside build; leave it out so each service builds (from cache) rather than pulls", name, s.Image)
		}
		if s.Entrypoint != nil {
			t.Errorf("service %s: entrypoint = %v; the image's ENTRYPOINT is the binary (see TestComposeDockerfile)", name, s.Entrypoint)
		}
		if args := containerArgs(s, df); len(args) == 0 || !strings.Contains(usage, "\n  "+args[0]+" ") {
			t.Errorf("service %s runs %q: not a switchboard command", name, args)
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
	cfg, err := loadConfig(func(k string) string { return want[k] })
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
	if u, err := url.Parse(cfg.RedisURL); err != nil || u.Hostname() != "redis" {
		t.Errorf("REDIS_URL = %q, want redis://redis:PORT/DB (broker and presence on Redis)", cfg.RedisURL)
	}
	// No secret in the file: empty JWT_SECRET means the shared file,
	// generated by the migrate job on a volume every replica mounts.
	if cfg.JWTSecret != "" {
		t.Errorf("JWT_SECRET defaults to %q: no secret may be committed", cfg.JWTSecret)
	}
	if !strings.HasPrefix(cfg.JWTSecretFile, "/var/lib/switchboard/") {
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

func readRepoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// composeRef matches $$ (a literal $) or the start of $VAR / ${VAR...}.
var composeRef = regexp.MustCompile(`\$(\$|\{?([A-Za-z_][A-Za-z0-9_]*))`)

// TestComposeDefaults: a fresh clone has no .env, so the defaults in
// docker-compose.yml must be the values .env.example documents, and the two
// must name the same variables.
func TestComposeDefaults(t *testing.T) {
	example := composeConfig(t, repoPath(t, ".env.example"))
	bare := composeConfig(t, "")
	for _, name := range slices.Sorted(maps.Keys(example.Services)) {
		if with, without := example.Services[name], bare.Services[name]; !reflect.DeepEqual(with, without) {
			t.Errorf("service %s resolves differently without .env; make the defaults in docker-compose.yml match .env.example:\n  without .env:      %+v\n  with .env.example: %+v", name, without, with)
		}
	}
	if !reflect.DeepEqual(example.Volumes, bare.Volumes) || len(example.Services) != len(bare.Services) {
		t.Errorf("docker-compose.yml resolves differently without .env:\n  without: %+v\n  with .env.example: %+v", bare, example)
	}

	// The variables the file reads (docker-compose 1.29 has no
	// `config --variables`), from every line but comments.
	refs := map[string]bool{}
	for _, line := range strings.Split(string(readRepoFile(t, "docker-compose.yml")), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range composeRef.FindAllStringSubmatch(line, -1) {
			if m[2] != "" {
				refs[m[2]] = true
			}
		}
	}

	// .env.example in the form both Compose versions read alike: KEY=value
	// lines and # comments, no quotes, $, # or outer spaces in values.
	documented := map[string]bool{}
	for n, line := range strings.Split(string(readRepoFile(t, ".env.example")), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, `"'$#`) || v != strings.TrimSpace(v) || documented[k] {
			t.Errorf(".env.example:%d: %q: want KEY=value, each key once, the value without quotes, $, # or outer spaces (Compose versions read those differently)", n+1, line)
		}
		documented[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		if !documented[k] {
			t.Errorf("docker-compose.yml reads ${%s}, which .env.example does not document", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !refs[k] {
			t.Errorf(".env.example sets %s, which docker-compose.yml never reads", k)
		}
	}
}

// dockerfile is what the Dockerfile says about building the binary, read
// with BuildKit's own parser (the one docker build uses).
type dockerfile struct {
	builder, final instructions.Stage
	env            []string // NAME=value before go
	argv           []string // go build ...
	binary         string   // where the final stage copies go build's -o
	user           string   // the final stage's USER
	entrypoint     []string
	cmd            []string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	res, err := dockerparser.Parse(bytes.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final stage", len(stages))
	}
	var d dockerfile
	d.final = stages[len(stages)-1]
	for _, st := range stages[:len(stages)-1] {
		for _, c := range st.Commands {
			if run, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
				d.builder = st
				d.env, d.argv = shellCommand(t, run.ShellDependantCmdLine)
			}
		}
	}
	if len(d.argv) < 2 || d.argv[0] != "go" || d.argv[1] != "build" {
		t.Fatal("Dockerfile: no build stage has RUN [NAME=value ...] go build ...")
	}
	out := ""
	if i := slices.Index(d.argv, "-o"); i >= 0 && i+1 < len(d.argv) {
		out = d.argv[i+1]
	}
	for _, c := range d.final.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" && c.From == d.builder.Name && slices.Equal(c.SourcePaths, []string{out}) {
				d.binary = c.DestPath
			}
		case *instructions.UserCommand:
			d.user = c.User
		case *instructions.EntrypointCommand:
			d.entrypoint = execForm(t, c.Name(), c.ShellDependantCmdLine)
		case *instructions.CmdCommand:
			d.cmd = execForm(t, c.Name(), c.ShellDependantCmdLine)
		}
	}
	if d.binary == "" {
		t.Fatalf("Dockerfile: the final stage has no COPY --from=%s %s DEST (go build -o %[2]s; args %q)", d.builder.Name, out, d.argv)
	}
	return d
}

func execForm(t *testing.T, name string, c instructions.ShellDependantCmdLine) []string {
	t.Helper()
	if c.PrependShell || len(c.CmdLine) == 0 {
		t.Fatalf("Dockerfile: %s %q: want exec form [\"...\"] (no shell in the final image)", name, c.CmdLine)
	}
	return c.CmdLine
}

// shellCommand splits a RUN line with a POSIX shell parser (mvdan.cc/sh)
// into its variable assignments and its words. It must be one plain command
// whose words use no variables, so that the test can run it without a shell.
func shellCommand(t *testing.T, run instructions.ShellDependantCmdLine) (env, argv []string) {
	t.Helper()
	if !run.PrependShell {
		return nil, run.CmdLine
	}
	line := strings.Join(run.CmdLine, " ")
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(line), "RUN")
	if err != nil {
		t.Fatalf("Dockerfile: RUN %s: %v", line, err)
	}
	var call *syntax.CallExpr
	if len(f.Stmts) == 1 && len(f.Stmts[0].Redirs) == 0 && !f.Stmts[0].Negated && !f.Stmts[0].Background {
		call, _ = f.Stmts[0].Cmd.(*syntax.CallExpr)
	}
	if call == nil {
		t.Fatalf("Dockerfile: RUN %s: more than one plain command; keep go build on a RUN of its own", line)
	}
	cfg := &expand.Config{NoUnset: true} // the build stage's variables are unknown here
	for _, a := range call.Assigns {
		v := ""
		if a.Value != nil {
			if v, err = expand.Literal(cfg, a.Value); err != nil {
				t.Fatalf("Dockerfile: RUN %s: %v", line, err)
			}
		}
		env = append(env, a.Name.Value+"="+v)
	}
	if argv, err = expand.Fields(cfg, call.Args...); err != nil {
		t.Fatalf("Dockerfile: RUN %s: %v", line, err)
	}
	return env, argv
}

// dockerignore is .dockerignore as Docker reads and matches it.
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

func TestComposeDockerfile(t *testing.T) {
	d := readDockerfile(t)

	// The builder's Go is the one go.mod asks for.
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readRepoFile(t, "go.mod"))
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "golang:" + string(goLine[1]); !strings.HasPrefix(d.builder.BaseName, want) {
		t.Errorf("build stage FROM %s, want %s (go.mod's go %s)", d.builder.BaseName, want, goLine[1])
	}
	if !strings.HasPrefix(d.final.BaseName, "gcr.io/distroless/static") && d.final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-* or scratch (a static binary needs no libc)", d.final.BaseName)
	}
	if uid, _, _ := strings.Cut(d.user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER = %q, want a non-root user", d.user)
	}

	// The binary is built from ./cmd/switchboard, static and stripped, and
	// is what ENTRYPOINT runs.
	if !slices.Contains(d.env, "CGO_ENABLED=0") {
		t.Errorf("go build environment = %q, want CGO_ENABLED=0", d.env)
	}
	for _, flag := range []string{"-trimpath", "-ldflags=-s -w"} {
		if !slices.Contains(d.argv, flag) {
			t.Errorf("go build args = %q, missing %s", d.argv, flag)
		}
	}
	if d.argv[len(d.argv)-1] != "./cmd/switchboard" {
		t.Errorf("go build args = %q, want the package ./cmd/switchboard last", d.argv)
	}
	if !slices.Equal(d.entrypoint, []string{d.binary}) {
		t.Errorf("ENTRYPOINT %q, want [%q] (where the binary is copied)", d.entrypoint, d.binary)
	}
	if !slices.Equal(d.cmd, []string{"serve"}) {
		t.Errorf("CMD %q, want [\"serve\"]", d.cmd)
	}

	// Secrets and local databases stay out of the build context.
	ignore := dockerignore(t)
	for _, p := range []string{".env", "switchboard.db", "switchboard.db-wal", "switchboard.db.jwt-secret", ".git/config", "cmd/switchboard/compose_test.go"} {
		if excluded, err := ignore.MatchesOrParentMatches(p); err != nil || !excluded {
			t.Errorf(".dockerignore lets %s into the build context (err %v)", p, err)
		}
	}

	bin := dockerBuild(t, d)
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

// dockerBuild copies the files .dockerignore lets into the build context to
// a temporary directory and runs the Dockerfile's go build line there, with
// -o pointed at a temporary file, which it returns, and without -trimpath.
func dockerBuild(t *testing.T, d dockerfile) string {
	t.Helper()
	ignore := dockerignore(t)
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
		excluded, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel))
		switch {
		case err != nil:
			return err
		case excluded && e.IsDir() && !ignore.Exclusions():
			return fs.SkipDir
		case excluded || e.IsDir():
			return nil
		case !e.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(ctxDir, rel)
		n++
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy build context: %v", err)
	}
	bin := filepath.Join(dir, "switchboard")
	argv := slices.Clone(d.argv)
	argv[slices.Index(argv, "-o")+1] = bin
	// -trimpath only rewrites file paths in the binary, but it changes
	// every package's build cache key: with it a cold cache recompiles
	// everything (minutes, modernc SQLite above all) where without it the
	// packages go vet compiled are reused.
	argv = slices.DeleteFunc(argv, func(a string) bool { return a == "-trimpath" })
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), d.env...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in the build context (%d files): %s %s: %v\n%s", n, strings.Join(d.env, " "), strings.Join(argv, " "), err, out)
	}
	t.Logf("%s %s: %d-file build context, %s", strings.Join(d.env, " "), strings.Join(argv, " "), n, time.Since(start).Round(100*time.Millisecond))
	return bin
}

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
	// The role, unless it exists, as a plain login role (the image's
	// POSTGRES_USER is a superuser): the stack must work with a database
	// owner's rights alone. PostgreSQL's format() quotes the password.
	role := pgx.Identifier{cu.User.Username()}.Sanitize()
	pass, _ := cu.User.Password()
	var create string
	if err := db.QueryRow(`SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) THEN ''
		ELSE format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text) END`, cu.User.Username(), pass).Scan(&create); err != nil {
		t.Fatal(err)
	}
	if create != "" {
		run(create)
		t.Cleanup(func() { run("DROP ROLE IF EXISTS " + role) })
	}
	// A fresh database, never the compose file's own name: the test server
	// may be a developer's.
	name := fmt.Sprintf("%s_compose_%d", strings.TrimPrefix(cu.Path, "/"), time.Now().UnixNano())
	run("CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " OWNER " + role)
	t.Cleanup(func() { run("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)") })
	cu.Host, cu.Path = tu.Host, "/"+name
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

func TestComposeStack(t *testing.T) {
	testDB, testRedis := os.Getenv("TEST_DATABASE_URL"), os.Getenv("TEST_REDIS_URL")
	if testDB == "" || testRedis == "" {
		t.Skip("TEST_DATABASE_URL or TEST_REDIS_URL not set: compose stack test skipped (scripts/test.sh sets them)")
	}
	cf := composeConfig(t, repoPath(t, ".env.example"))
	df := readDockerfile(t)
	migrate, servers := switchboardServices(t, cf)
	if len(servers) != 2 {
		t.Fatalf("switchboard servers = %q, want two", servers)
	}
	bin := dockerBuild(t, df)

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
	rewrite := func(env map[string]string, addr string) []string {
		env = maps.Clone(env)
		env["DATABASE_URL"], env["REDIS_URL"] = dbURL, ru.String()
		env["JWT_SECRET_FILE"] = filepath.Join(secretsDir, filepath.Base(env["JWT_SECRET_FILE"]))
		if addr != "" {
			env["ADDR"] = addr
		}
		var list []string
		for _, k := range slices.Sorted(maps.Keys(env)) {
			list = append(list, k+"="+env[k])
		}
		return list
	}
	t.Logf("compose environment, rewritten: DATABASE_URL=%s REDIS_URL=%s", dbURL, ru)

	// migrate runs once, as the one-shot service does.
	mcmd := exec.Command(bin, containerArgs(cf.Services[migrate], df)...)
	mcmd.Env = rewrite(composeEnv, "")
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
		procs[i] = startBinary(t, bin, name, addr, containerArgs(s, df), rewrite(s.Environment, addr))
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
	sc, sd := p1.chat(tokCara), p2.chat(tokCody)
	from := func(s *sock, typ, user string) map[string]any { // nil after 10 s
		deadline := time.Now().Add(10 * time.Second)
		for f := s.next(typ, time.Until(deadline)); f != nil; f = s.next(typ, time.Until(deadline)) {
			if f["user"] == user {
				return f
			}
		}
		return nil
	}
	if from(sc, "join", cody) == nil {
		t.Fatalf("cara on %s never saw %s (on %s) join", p1.name, cody, p2.name)
	}
	sc.send("hello from " + p1.name)
	if f := from(sd, "message", cara); f == nil || f["text"] != "hello from "+p1.name {
		t.Errorf("cody on %s got %v, want cara's message from %s", p2.name, f, p1.name)
	}
	sd.send("hello from " + p2.name)
	if f := from(sc, "message", cody); f == nil || f["text"] != "hello from "+p2.name {
		t.Errorf("cara on %s got %v, want cody's message from %s", p1.name, f, p2.name)
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
