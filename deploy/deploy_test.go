package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"sigs.k8s.io/yaml"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// root is the repository root, seen from this package's directory.
const root = ".."

// configVar is one variable of the worker's configuration, as read from
// the envconfig struct tags of cmd/provisioner/config.go.
type configVar struct {
	name       string
	def        string
	hasDefault bool
}

// configVars parses cmd/provisioner/config.go and returns its variables by
// name. Reading the source, not a list kept here, is what makes a renamed or
// new variable show up in these tests.
func configVars(t *testing.T) map[string]configVar {
	t.Helper()
	path := filepath.Join(root, "cmd", "provisioner", "config.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	vars := map[string]configVar{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "config" {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			t.Fatalf("%s: type config is not a struct", path)
		}
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			raw, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				t.Fatalf("%s: tag %s: %v", path, field.Tag.Value, err)
			}
			tag := reflect.StructTag(raw)
			name, ok := tag.Lookup("envconfig")
			if !ok {
				continue
			}
			def, hasDefault := tag.Lookup("default")
			vars[name] = configVar{name: name, def: def, hasDefault: hasDefault}
		}
		return false
	})
	if len(vars) < 10 {
		t.Fatalf("%s: found only %d envconfig variables; has the config struct moved?", path, len(vars))
	}
	return vars
}

// defaultOf returns the default of a configuration variable, failing the
// test when it has none.
func defaultOf(t *testing.T, vars map[string]configVar, name string) string {
	t.Helper()
	v, ok := vars[name]
	if !ok || !v.hasDefault {
		t.Fatalf("cmd/provisioner/config.go: %s has no default", name)
	}
	return v.def
}

// notConfig reports whether a manifest may set name although the worker's
// configuration does not read it: the Go runtime reads GOMEMLIMIT, the
// OpenTelemetry SDK the OTEL_ variables (cmd/provisioner/tracing.go).
func notConfig(name string) bool {
	return name == "GOMEMLIMIT" || strings.HasPrefix(name, "OTEL_")
}

// manifest is one document of a file under deploy/.
type manifest struct {
	path string // relative to deploy/
	doc  int    // index in a multi-document YAML file
	obj  map[string]any
}

func (m manifest) String() string { return fmt.Sprintf("%s (document %d)", m.path, m.doc+1) }

func (m manifest) kind() string { s, _ := m.obj["kind"].(string); return s }

func (m manifest) name() string {
	md, _ := m.obj["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadManifests parses every YAML and JSON file under deploy/, each document
// of a multi-document YAML file on its own.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var out []manifest
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".json":
			var obj map[string]any
			if err := json.Unmarshal(data, &obj); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, manifest{path: path, obj: obj})
		case ".yaml", ".yml":
			for i, doc := range docSeparator.Split(string(data), -1) {
				var obj map[string]any
				if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
					return fmt.Errorf("%s (document %d): %w", path, i+1, err)
				}
				if obj == nil { // only comments
					continue
				}
				out = append(out, manifest{path: path, doc: i, obj: obj})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// one returns the single manifest of kind and name among ms whose path is
// under dir.
func one(t *testing.T, ms []manifest, dir, kind, name string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if strings.HasPrefix(m.path, dir+string(filepath.Separator)) && m.kind() == kind && (name == "" || m.name() == name) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %q under deploy/%s, found %d", kind, name, dir, len(found))
	}
	return found[0]
}

// decode converts a parsed manifest (or part of one) into T through JSON,
// refusing fields T does not have when strict.
func decode[T any](t *testing.T, v any, strict bool) T {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode %T: %v", out, err)
	}
	return out
}

// The parts of Kubernetes objects the tests look at. encoding/json matches
// field names case-insensitively, so these need no tags.
type (
	objectMeta struct {
		Name        string
		Labels      map[string]string
		Annotations map[string]string
	}
	configMap struct {
		Metadata objectMeta
		Data     map[string]string
	}
	secret struct {
		Metadata   objectMeta
		StringData map[string]string
		Data       map[string]string
	}
	probe struct {
		HTTPGet *struct {
			Path string
			Port any
		}
	}
	secCtx struct {
		RunAsNonRoot             *bool
		RunAsUser                *int64
		RunAsGroup               *int64
		ReadOnlyRootFilesystem   *bool
		AllowPrivilegeEscalation *bool
		Privileged               *bool
		Capabilities             *struct{ Drop []string }
		SeccompProfile           *struct{ Type string }
	}
	container struct {
		Name  string
		Image string
		Ports []struct {
			Name          string
			ContainerPort int
		}
		EnvFrom []struct {
			ConfigMapRef *struct{ Name string }
		}
		Env []struct {
			Name      string
			Value     string
			ValueFrom *struct {
				SecretKeyRef *struct{ Name, Key string }
			}
		}
		LivenessProbe, ReadinessProbe, StartupProbe *probe
		Resources                                   struct {
			Requests, Limits map[string]string
		}
		SecurityContext secCtx
		VolumeMounts    []struct {
			Name      string
			MountPath string
			ReadOnly  bool
		}
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int64
		SecurityContext               secCtx
		TopologySpreadConstraints     []struct {
			TopologyKey   string
			LabelSelector struct{ MatchLabels map[string]string }
		}
		Containers []container
		Volumes    []volume
	}
	deployment struct {
		Metadata objectMeta
		Spec     struct {
			Replicas *int
			Selector struct{ MatchLabels map[string]string }
			Template struct {
				Metadata objectMeta
				Spec     podSpec
			}
		}
	}
	service struct {
		Spec struct {
			Selector map[string]string
			Ports    []struct {
				Name       string
				Port       int
				TargetPort any
			}
		}
	}
	pdb struct {
		Spec struct {
			MinAvailable   *int
			MaxUnavailable *int
			Selector       struct{ MatchLabels map[string]string }
		}
	}
	scaledObject struct {
		Spec struct {
			ScaleTargetRef  struct{ Name, Kind string }
			MinReplicaCount *int
			MaxReplicaCount *int
			Triggers        []struct {
				Type     string
				Metadata map[string]string
			}
		}
	}
	prometheusRule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string
					Expr  string
				}
			}
		}
	}
	volume struct {
		Name   string
		Secret *struct{ SecretName string }
	}
	kustomization struct {
		Resources []string
		Patches   []struct {
			Path   string
			Patch  string
			Target map[string]string
		}
	}
)

// worker returns the provisioner container of a deployment.
func (d deployment) worker(t *testing.T) container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "provisioner" {
			return c
		}
	}
	t.Fatalf("deployment %s has no container named provisioner", d.Metadata.Name)
	return container{}
}

// baseParts are the objects of deploy/k8s/base.
type baseParts struct {
	config    configMap
	secret    secret
	deploy    deployment
	service   service
	pdb       pdb
	scaler    scaledObject
	manifests []manifest
}

func loadBase(t *testing.T) baseParts {
	t.Helper()
	ms := loadManifests(t)
	base := filepath.Join("k8s", "base")
	return baseParts{
		config:    decode[configMap](t, one(t, ms, base, "ConfigMap", "").obj, false),
		secret:    decode[secret](t, one(t, ms, base, "Secret", "").obj, false),
		deploy:    decode[deployment](t, one(t, ms, base, "Deployment", "").obj, false),
		service:   decode[service](t, one(t, ms, base, "Service", "").obj, false),
		pdb:       decode[pdb](t, one(t, ms, base, "PodDisruptionBudget", "").obj, false),
		scaler:    decode[scaledObject](t, one(t, ms, base, "ScaledObject", "").obj, false),
		manifests: ms,
	}
}

// productionConfig returns the ConfigMap data of the production overlay: the
// base's, with the overlay's ConfigMap patches applied (what kustomize's
// strategic merge does to a ConfigMap's data).
func productionConfig(t *testing.T, b baseParts) map[string]string {
	t.Helper()
	data := map[string]string{}
	for k, v := range b.config.Data {
		data[k] = v
	}
	dir := filepath.Join("k8s", "overlays", "production")
	k := readKustomization(t, dir)
	patched := false
	for _, p := range k.Patches {
		if p.Path == "" {
			continue
		}
		for _, m := range b.manifests {
			if m.path != filepath.Join(dir, p.Path) || m.kind() != "ConfigMap" {
				continue
			}
			if m.name() != b.config.Metadata.Name {
				t.Fatalf("%s patches ConfigMap %q; the base's is %q", m, m.name(), b.config.Metadata.Name)
			}
			for k, v := range decode[configMap](t, m.obj, false).Data {
				data[k] = v
			}
			patched = true
		}
	}
	if !patched {
		t.Fatalf("deploy/%s patches no ConfigMap", dir)
	}
	return data
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// composeFile is the part of docker-compose.yml the tests look at.
type composeFile struct {
	Services map[string]composeService
}

type composeService struct {
	Image string
	Build *struct {
		Context    string
		Dockerfile string
	}
	Entrypoint      []string
	Command         []string
	Environment     map[string]string
	User            string
	ReadOnly        bool   `json:"read_only"`
	StopGracePeriod string `json:"stop_grace_period"`
	Deploy          struct{ Replicas int }
	DependsOn       map[string]struct{ Condition string } `json:"depends_on"`
	Healthcheck     *struct{ Test []string }
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"nats", "cnsim", "provisioner"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	return c
}

// flagValue returns the value of -name in args (as "-name value" or
// "-name=value").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: port: %v", hostport, err)
	}
	return n
}

func duration(t *testing.T, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return d
}

// goLiterals returns the string literals of the non-test Go files under
// dirs (relative to the repository root), by package directory.
func goLiterals(t *testing.T, dirs ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if name := d.Name(); path != filepath.Join(root, dir) && (name == "testdata" || name == "deploy" || strings.HasPrefix(name, ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						out[filepath.Dir(path)] = append(out[filepath.Dir(path)], s)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// servesPath reports whether the Go sources under dir register an HTTP
// route for path: a string literal that is the path or a method pattern
// ending in it ("GET /readyz").
func servesPath(t *testing.T, dir, path string) bool {
	t.Helper()
	for _, lits := range goLiterals(t, dir) {
		for _, s := range lits {
			if s == path || strings.HasSuffix(s, " "+path) {
				return true
			}
		}
	}
	return false
}

// codeMetrics returns the names of the Prometheus metrics the module's
// non-test code defines: literal names ("provisioner_jobs_total"), and
// Namespace/Subsystem/Name options of the client's *Opts structs, string
// constants of the same package resolved.
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	metricName := regexp.MustCompile(`^provisioner_[a-z][a-z0-9_]*$`)
	names := map[string]bool{}
	pkgs := map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || name == "deploy" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, files := range pkgs {
		consts := map[string]string{}
		for _, f := range files {
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, v := range vs.Values {
						if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING && i < len(vs.Names) {
							consts[vs.Names[i].Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
		str := func(e ast.Expr) (string, bool) {
			switch e := e.(type) {
			case *ast.BasicLit:
				if e.Kind == token.STRING {
					s, err := strconv.Unquote(e.Value)
					return s, err == nil
				}
			case *ast.Ident:
				s, ok := consts[e.Name]
				return s, ok
			}
			return "", false
		}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if s, ok := str(n); ok && metricName.MatchString(s) {
						names[s] = true
					}
				case *ast.CompositeLit:
					parts := map[string]string{}
					for _, el := range n.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						key, ok := kv.Key.(*ast.Ident)
						if !ok || (key.Name != "Namespace" && key.Name != "Subsystem" && key.Name != "Name") {
							continue
						}
						if s, ok := str(kv.Value); ok {
							parts[key.Name] = s
						}
					}
					if parts["Name"] == "" {
						return true
					}
					var full []string
					for _, k := range []string{"Namespace", "Subsystem", "Name"} {
						if parts[k] != "" {
							full = append(full, parts[k])
						}
					}
					if s := strings.Join(full, "_"); metricName.MatchString(s) {
						names[s] = true
					}
				}
				return true
			})
		}
	}
	return names
}

var promMetric = regexp.MustCompile(`\bprovisioner_[a-zA-Z0-9_]+`)

// checkPromQL fails for each provisioner_ metric in expr that the code
// does not define, and returns the metrics it names (histogram series
// _bucket, _sum and _count counted as their histogram).
func checkPromQL(t *testing.T, where, expr string, known map[string]bool) []string {
	t.Helper()
	var used []string
	for _, name := range promMetric.FindAllString(expr, -1) {
		base := name
		if !known[name] {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
					base = b
				}
			}
		}
		if !known[base] {
			t.Errorf("%s: metric %s is not defined by the code (known: %s)", where, name, strings.Join(sortedKeys(known), ", "))
			continue
		}
		used = append(used, base)
	}
	return used
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestEveryManifestParses(t *testing.T) {
	ms := loadManifests(t)
	if len(ms) < 15 {
		t.Fatalf("found only %d manifest documents under deploy/", len(ms))
	}
	for _, m := range ms {
		if !strings.HasPrefix(m.path, "k8s") && !strings.HasPrefix(m.path, filepath.Join("nats", "nack")) {
			continue
		}
		if m.obj["apiVersion"] == nil || m.kind() == "" {
			t.Errorf("%s: no apiVersion or kind", m)
		}
		if m.kind() != "Kustomization" && m.name() == "" {
			t.Errorf("%s: no metadata.name", m)
		}
	}
	tests := []struct {
		name, dir, kind string
	}{
		{name: "deployment", dir: "k8s/base", kind: "Deployment"},
		{name: "configmap", dir: "k8s/base", kind: "ConfigMap"},
		{name: "secret", dir: "k8s/base", kind: "Secret"},
		{name: "service", dir: "k8s/base", kind: "Service"},
		{name: "pdb", dir: "k8s/base", kind: "PodDisruptionBudget"},
		{name: "keda", dir: "k8s/base", kind: "ScaledObject"},
		{name: "servicemonitor", dir: "k8s/overlays/production", kind: "ServiceMonitor"},
		{name: "alerts", dir: "k8s/overlays/production", kind: "PrometheusRule"},
		{name: "nack consumer", dir: "nats/nack", kind: "Consumer"},
		{name: "nack bucket", dir: "nats/nack", kind: "KeyValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			one(t, ms, filepath.FromSlash(tt.dir), tt.kind, "")
		})
	}
}

func TestKustomizationsListEveryFile(t *testing.T) {
	dirs := []string{"k8s/base", "k8s/overlays/production", "nats/nack"}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			dir := filepath.FromSlash(dir)
			k := readKustomization(t, dir)
			used := map[string]bool{"kustomization.yaml": true}
			for _, r := range k.Resources {
				p := filepath.Join(dir, r)
				st, err := os.Stat(p)
				if err != nil {
					t.Errorf("resource %s: %v", r, err)
					continue
				}
				if st.IsDir() {
					if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
						t.Errorf("resource %s is a directory without kustomization.yaml", r)
					}
				}
				used[r] = true
			}
			for _, p := range k.Patches {
				if p.Path == "" {
					if p.Patch == "" || p.Target == nil {
						t.Errorf("inline patch without patch or target: %+v", p)
					}
					continue
				}
				if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
					t.Errorf("patch %s: %v", p.Path, err)
				}
				used[p.Path] = true
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") && !used[e.Name()] {
					t.Errorf("%s is in %s but not in its kustomization: it would never be applied", e.Name(), dir)
				}
			}
		})
	}
	t.Run("kubectl kustomize", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl not installed: rendering not checked")
		}
		for _, dir := range dirs {
			out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
			if err != nil {
				t.Errorf("kubectl kustomize %s: %v\n%s", dir, err, out)
				continue
			}
			if dir != "k8s/overlays/production" {
				continue
			}
			kinds := map[string]int{}
			for _, doc := range docSeparator.Split(string(out), -1) {
				var obj struct {
					Kind     string
					Metadata objectMeta
					Data     map[string]string
				}
				if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
					t.Fatalf("rendered %s: %v", dir, err)
				}
				kinds[obj.Kind]++
				if obj.Kind == "ConfigMap" && obj.Data["PROVISIONER_MANAGE_STREAMS"] != "false" {
					t.Errorf("rendered production ConfigMap: PROVISIONER_MANAGE_STREAMS = %q, want false (NACK owns the streams)", obj.Data["PROVISIONER_MANAGE_STREAMS"])
				}
			}
			want := map[string]int{"Deployment": 1, "ConfigMap": 1, "Stream": 2, "Consumer": 1, "KeyValue": 1, "ScaledObject": 1,
				"PodDisruptionBudget": 1, "Service": 1, "ServiceMonitor": 1, "PrometheusRule": 1, "Secret": 0}
			for kind, n := range want {
				if kinds[kind] != n {
					t.Errorf("rendered production overlay has %d %s, want %d", kinds[kind], kind, n)
				}
			}
		}
	})
}

func TestEnvironmentNamesExistInConfig(t *testing.T) {
	vars := configVars(t)
	b := loadBase(t)
	compose := loadCompose(t)
	prod := productionConfig(t, b)

	var deployEnv []string
	for _, e := range b.deploy.worker(t).Env {
		deployEnv = append(deployEnv, e.Name)
	}
	tests := []struct {
		name  string
		names []string
	}{
		{name: "k8s/base ConfigMap", names: sortedKeys(b.config.Data)},
		{name: "production ConfigMap", names: sortedKeys(prod)},
		{name: "k8s/base Deployment env", names: deployEnv},
		{name: "docker-compose.yml provisioner environment", names: sortedKeys(compose.Services["provisioner"].Environment)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.names) == 0 {
				t.Fatal("no variables")
			}
			for _, name := range tt.names {
				if _, ok := vars[name]; !ok && !notConfig(name) {
					t.Errorf("%s is not a variable of cmd/provisioner/config.go", name)
				}
			}
		})
	}
}

func TestConfigMapHasEveryVariable(t *testing.T) {
	vars := configVars(t)
	b := loadBase(t)
	for _, v := range vars {
		if _, ok := b.config.Data[v.name]; v.hasDefault && !ok {
			t.Errorf("k8s/base ConfigMap lacks %s (default %q): every variable with a default is listed there", v.name, v.def)
		}
	}
	if _, ok := b.config.Data["CLOUDNEXUS_API_KEY"]; ok {
		t.Error("k8s/base ConfigMap holds CLOUDNEXUS_API_KEY: the key belongs in the Secret")
	}
	prod := productionConfig(t, b)
	tests := []struct {
		name, variable, want string
		data                 map[string]string
	}{
		{name: "base is not -dev", variable: "PROVISIONER_DEV", want: "false", data: b.config.Data},
		{name: "three stream replicas", variable: "PROVISIONER_STREAM_REPLICAS", want: "3", data: b.config.Data},
		{name: "production leaves streams to NACK", variable: "PROVISIONER_MANAGE_STREAMS", want: "false", data: prod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.data[tt.variable]; got != tt.want {
				t.Errorf("%s = %q, want %q", tt.variable, got, tt.want)
			}
		})
	}
}

func TestDeploymentMatchesTheProgram(t *testing.T) {
	vars := configVars(t)
	b := loadBase(t)
	d := b.deploy
	c := d.worker(t)
	httpPort := portOf(t, b.config.Data["PROVISIONER_HTTP_ADDR"])
	if def := portOf(t, defaultOf(t, vars, "PROVISIONER_HTTP_ADDR")); def != httpPort {
		t.Errorf("ConfigMap PROVISIONER_HTTP_ADDR port %d differs from the default %d that the Dockerfile exposes", httpPort, def)
	}

	t.Run("port", func(t *testing.T) {
		var found bool
		for _, p := range c.Ports {
			if p.Name == "http" {
				found = true
				if p.ContainerPort != httpPort {
					t.Errorf("container port http = %d, PROVISIONER_HTTP_ADDR listens on %d", p.ContainerPort, httpPort)
				}
			}
		}
		if !found {
			t.Error("no container port named http")
		}
	})

	t.Run("probes", func(t *testing.T) {
		probes := []struct {
			name  string
			probe *probe
			path  string
		}{
			{name: "liveness", probe: c.LivenessProbe, path: "/healthz"},
			{name: "readiness", probe: c.ReadinessProbe, path: "/readyz"},
			{name: "startup", probe: c.StartupProbe, path: "/healthz"},
		}
		for _, p := range probes {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe: missing or not httpGet", p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s probe path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
			}
			if port := fmt.Sprint(p.probe.HTTPGet.Port); port != "http" && port != strconv.Itoa(httpPort) {
				t.Errorf("%s probe port %s, want http or %d", p.name, port, httpPort)
			}
			if !servesPath(t, filepath.Join("cmd", "provisioner"), p.path) {
				t.Errorf("%s probe path %s: cmd/provisioner serves no such route", p.name, p.path)
			}
		}
		ann := d.Spec.Template.Metadata.Annotations
		if ann["prometheus.io/port"] != strconv.Itoa(httpPort) {
			t.Errorf("prometheus.io/port annotation %q, want %d", ann["prometheus.io/port"], httpPort)
		}
		if path := ann["prometheus.io/path"]; !servesPath(t, ".", path) {
			t.Errorf("prometheus.io/path annotation %q: the code serves no such route", path)
		}
	})

	t.Run("grace exceeds the shutdown timeout", func(t *testing.T) {
		grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
		if grace == nil {
			t.Fatal("terminationGracePeriodSeconds not set: Kubernetes' default 30s")
		}
		for _, s := range []struct{ what, value string }{
			{"the default PROVISIONER_SHUTDOWN_TIMEOUT", defaultOf(t, vars, "PROVISIONER_SHUTDOWN_TIMEOUT")},
			{"the ConfigMap's PROVISIONER_SHUTDOWN_TIMEOUT", b.config.Data["PROVISIONER_SHUTDOWN_TIMEOUT"]},
		} {
			if timeout := duration(t, s.what, s.value); time.Duration(*grace)*time.Second <= timeout {
				t.Errorf("terminationGracePeriodSeconds %d does not exceed %s (%s)", *grace, s.what, timeout)
			}
		}
	})

	t.Run("security", func(t *testing.T) {
		pod, ctr := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
		is := func(p *bool, want bool) bool { return p != nil && *p == want }
		if !is(pod.RunAsNonRoot, true) && !is(ctr.RunAsNonRoot, true) {
			t.Error("runAsNonRoot is not true")
		}
		uid := ctr.RunAsUser
		if uid == nil {
			uid = pod.RunAsUser
		}
		if want := dockerfileUser(t); uid == nil || strconv.FormatInt(*uid, 10) != want {
			t.Errorf("runAsUser %v, want the Dockerfile's USER %s", uid, want)
		}
		if !is(ctr.ReadOnlyRootFilesystem, true) {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if !is(ctr.AllowPrivilegeEscalation, false) {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if ctr.Capabilities == nil || !slices.Contains(ctr.Capabilities.Drop, "ALL") {
			t.Error("capabilities do not drop ALL")
		}
		seccomp := ctr.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != "RuntimeDefault" {
			t.Error("seccompProfile is not RuntimeDefault")
		}
		for _, kind := range []string{"requests", "limits"} {
			res := c.Resources.Requests
			if kind == "limits" {
				res = c.Resources.Limits
			}
			if res["cpu"] == "" || res["memory"] == "" {
				t.Errorf("resource %s: cpu %q, memory %q", kind, res["cpu"], res["memory"])
			}
		}
	})

	t.Run("configuration and key", func(t *testing.T) {
		var fromConfigMap bool
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == b.config.Metadata.Name {
				fromConfigMap = true
			}
		}
		if !fromConfigMap {
			t.Errorf("the container does not take its environment from ConfigMap %s", b.config.Metadata.Name)
		}
		var key bool
		for _, e := range c.Env {
			if e.Name != "CLOUDNEXUS_API_KEY" {
				continue
			}
			key = true
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatal("CLOUDNEXUS_API_KEY is not read from a Secret")
			}
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != b.secret.Metadata.Name {
				t.Errorf("CLOUDNEXUS_API_KEY from Secret %q; the base's Secret is %q", ref.Name, b.secret.Metadata.Name)
			}
			_, inString := b.secret.StringData[ref.Key]
			_, inData := b.secret.Data[ref.Key]
			if !inString && !inData {
				t.Errorf("Secret %s has no key %q", b.secret.Metadata.Name, ref.Key)
			}
		}
		if !key {
			t.Error("no CLOUDNEXUS_API_KEY in the container's env")
		}
	})

	t.Run("labels", func(t *testing.T) {
		pod := d.Spec.Template.Metadata.Labels
		selectors := map[string]map[string]string{
			"deployment selector": d.Spec.Selector.MatchLabels,
			"service selector":    b.service.Spec.Selector,
			"pdb selector":        b.pdb.Spec.Selector.MatchLabels,
		}
		if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
			t.Error("no topologySpreadConstraints")
		}
		for i, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
			selectors[fmt.Sprintf("topology spread %d", i)] = tsc.LabelSelector.MatchLabels
		}
		for what, sel := range selectors {
			if len(sel) == 0 {
				t.Errorf("%s is empty", what)
			}
			for k, v := range sel {
				if pod[k] != v {
					t.Errorf("%s %s=%s does not match the pod's labels %v", what, k, v, pod)
				}
			}
		}
		for _, p := range b.service.Spec.Ports {
			if tp := fmt.Sprint(p.TargetPort); tp != "http" && tp != strconv.Itoa(httpPort) {
				t.Errorf("service port %s targets %s, want http", p.Name, tp)
			}
		}
	})

	t.Run("production credentials are mounted", func(t *testing.T) {
		creds := productionConfig(t, b)["NATS_CREDS"]
		if creds == "" {
			t.Skip("production sets no NATS_CREDS")
		}
		patch := one(t, b.manifests, filepath.Join("k8s", "overlays", "production"), "Deployment", d.Metadata.Name)
		pd := decode[deployment](t, patch.obj, false)
		var mounted bool
		for _, pc := range pd.Spec.Template.Spec.Containers {
			for _, vm := range pc.VolumeMounts {
				if strings.HasPrefix(creds, strings.TrimSuffix(vm.MountPath, "/")+"/") {
					mounted = true
					if !slices.ContainsFunc(pd.Spec.Template.Spec.Volumes, func(v volume) bool { return v.Name == vm.Name && v.Secret != nil }) {
						t.Errorf("volume %s of mount %s is not a Secret volume of the patch", vm.Name, vm.MountPath)
					}
				}
			}
		}
		if !mounted {
			t.Errorf("NATS_CREDS %s is under no volume mount of the production Deployment patch", creds)
		}
	})
}

func TestScalingAgreesWithTheDeployment(t *testing.T) {
	b := loadBase(t)
	s := b.scaler.Spec
	if s.ScaleTargetRef.Name != b.deploy.Metadata.Name || (s.ScaleTargetRef.Kind != "" && s.ScaleTargetRef.Kind != "Deployment") {
		t.Errorf("ScaledObject targets %s %q, want Deployment %q", s.ScaleTargetRef.Kind, s.ScaleTargetRef.Name, b.deploy.Metadata.Name)
	}
	if s.MinReplicaCount == nil || s.MaxReplicaCount == nil {
		t.Fatal("ScaledObject needs minReplicaCount and maxReplicaCount (KEDA's default minimum is 0)")
	}
	minR, maxR := *s.MinReplicaCount, *s.MaxReplicaCount
	if minR < 2 || maxR < minR {
		t.Errorf("replicas %d to %d: want at least 2, and max >= min", minR, maxR)
	}
	if r := b.deploy.Spec.Replicas; r == nil || *r < minR || *r > maxR {
		t.Errorf("Deployment replicas %v outside KEDA's %d to %d", r, minR, maxR)
	}

	t.Run("disruption budget", func(t *testing.T) {
		p := b.pdb.Spec
		switch {
		case (p.MinAvailable == nil) == (p.MaxUnavailable == nil):
			t.Error("PodDisruptionBudget must set one of minAvailable and maxUnavailable")
		case p.MinAvailable != nil:
			// At the minimum scale a drain must still be able to evict one.
			if *p.MinAvailable < 1 || *p.MinAvailable >= minR {
				t.Errorf("minAvailable %d: want 1 to %d (below KEDA's minReplicaCount %d)", *p.MinAvailable, minR-1, minR)
			}
		default:
			if *p.MaxUnavailable < 1 || *p.MaxUnavailable >= minR {
				t.Errorf("maxUnavailable %d: want 1 to %d (below KEDA's minReplicaCount %d)", *p.MaxUnavailable, minR-1, minR)
			}
		}
	})

	t.Run("trigger", func(t *testing.T) {
		if len(s.Triggers) != 1 || s.Triggers[0].Type != "nats-jetstream" {
			t.Fatalf("want one nats-jetstream trigger, got %+v", s.Triggers)
		}
		md := s.Triggers[0].Metadata
		if md["stream"] != b.config.Data["PROVISIONER_REQUESTS_STREAM"] {
			t.Errorf("trigger stream %q, the worker consumes %q", md["stream"], b.config.Data["PROVISIONER_REQUESTS_STREAM"])
		}
		if md["consumer"] != b.config.Data["PROVISIONER_CONSUMER"] {
			t.Errorf("trigger consumer %q, the worker's is %q", md["consumer"], b.config.Data["PROVISIONER_CONSUMER"])
		}
		if md["account"] == "" {
			t.Error("trigger account is empty ($G without accounts)")
		}
		endpoint := md["natsServerMonitoringEndpoint"]
		if strings.Contains(endpoint, "://") {
			t.Errorf("natsServerMonitoringEndpoint %q: KEDA wants host:port, no scheme", endpoint)
		}
		natsURL, err := url.Parse(strings.Split(b.config.Data["NATS_URL"], ",")[0])
		if err != nil {
			t.Fatal(err)
		}
		if host, _, err := net.SplitHostPort(endpoint); err != nil || host != natsURL.Hostname() {
			t.Errorf("natsServerMonitoringEndpoint %q is not on the NATS_URL host %q", endpoint, natsURL.Hostname())
		}
		lag, err := strconv.Atoi(md["lagThreshold"])
		if err != nil {
			t.Fatalf("lagThreshold %q: %v", md["lagThreshold"], err)
		}
		// KEDA's lag counts messages being worked on: a threshold above what
		// a replica can hold would scale only once requests already wait.
		concurrency, err := strconv.Atoi(b.config.Data["PROVISIONER_CONCURRENCY"])
		if err != nil {
			t.Fatal(err)
		}
		if lag < 1 || lag > concurrency {
			t.Errorf("lagThreshold %d: want 1 to PROVISIONER_CONCURRENCY (%d)", lag, concurrency)
		}
	})
}

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	cmd  string // upper case
	args string
}

// dockerStages parses deploy/Dockerfile into its stages.
func dockerStages(t *testing.T) [][]dockerInstruction {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]dockerInstruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

func instructions(stage []dockerInstruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// dockerfileUser returns the numeric user of the final stage's USER.
func dockerfileUser(t *testing.T) string {
	t.Helper()
	stages := dockerStages(t)
	users := instructions(stages[len(stages)-1], "USER")
	if len(users) == 0 {
		t.Fatal("Dockerfile: the final stage sets no USER")
	}
	user, _, _ := strings.Cut(users[len(users)-1], ":")
	if _, err := strconv.Atoi(user); err != nil {
		t.Fatalf("Dockerfile USER %q is not numeric: Kubernetes' runAsNonRoot cannot verify a name", user)
	}
	return user
}

func TestDockerfileMatchesTheProgram(t *testing.T) {
	vars := configVars(t)
	stages := dockerStages(t)
	final := stages[len(stages)-1]
	build := stages[0]

	t.Run("final stage is distroless nonroot without a shell", func(t *testing.T) {
		from := strings.Fields(final[0].args)[0]
		if !strings.HasPrefix(from, "gcr.io/distroless/static") || !strings.HasSuffix(from, ":nonroot") {
			t.Errorf("final FROM %s, want gcr.io/distroless/static...:nonroot", from)
		}
		for _, cmd := range []string{"RUN", "SHELL"} {
			if got := instructions(final, cmd); len(got) > 0 {
				t.Errorf("final stage has %s %v: distroless has no shell", cmd, got)
			}
		}
		if user := dockerfileUser(t); user == "0" {
			t.Error("USER 0 is root")
		}
	})

	t.Run("expose and entrypoint", func(t *testing.T) {
		port := strconv.Itoa(portOf(t, defaultOf(t, vars, "PROVISIONER_HTTP_ADDR")))
		if got := instructions(final, "EXPOSE"); !slices.Equal(got, []string{port}) {
			t.Errorf("EXPOSE %v, want %s (PROVISIONER_HTTP_ADDR)", got, port)
		}
		eps := instructions(final, "ENTRYPOINT")
		if len(eps) != 1 {
			t.Fatalf("final stage has %d ENTRYPOINTs", len(eps))
		}
		var ep []string
		if err := json.Unmarshal([]byte(eps[0]), &ep); err != nil || len(ep) == 0 {
			t.Fatalf("ENTRYPOINT %s is not in exec form (a JSON array): there is no shell", eps[0])
		}
		if ep[0] != "/provisioner" {
			t.Errorf("ENTRYPOINT runs %s, want /provisioner", ep[0])
		}
		assertCommand(t, ep[0])
	})

	t.Run("static build of the cmd programs", func(t *testing.T) {
		from := strings.Fields(build[0].args)
		goVersion := goDirective(t)
		if image := from[0]; !strings.HasPrefix(image, "golang:"+goVersion) {
			t.Errorf("build FROM %s, want golang:%s (go.mod's go %s)", image, goVersion, goVersion)
		}
		stageName := ""
		if len(from) == 3 && strings.EqualFold(from[1], "AS") {
			stageName = from[2]
		}
		var built bool
		for _, run := range instructions(build, "RUN") {
			if !strings.Contains(run, "go build") {
				continue
			}
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
				if !strings.Contains(run, want) {
					t.Errorf("go build without %s: %s", want, run)
				}
			}
			for _, f := range strings.Fields(run) {
				if pkg, ok := strings.CutPrefix(f, "./cmd/"); ok && pkg != "..." {
					assertCommand(t, "/"+pkg)
				}
			}
		}
		if !built {
			t.Error("the build stage runs no go build")
		}
		var copied bool
		for _, c := range instructions(final, "COPY") {
			if strings.Contains(c, "--from="+stageName) {
				copied = true
			}
		}
		if stageName == "" || !copied {
			t.Errorf("the final stage copies nothing from the build stage %q", stageName)
		}
	})
}

// assertCommand fails unless bin (as /name in the image) is a main package
// under cmd/.
func assertCommand(t *testing.T, bin string) {
	t.Helper()
	dir := filepath.Join(root, "cmd", strings.TrimPrefix(bin, "/"))
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.PackageClauseOnly)
	if err != nil || pkgs["main"] == nil {
		t.Errorf("%s: no main package in cmd/%s (%v)", bin, strings.TrimPrefix(bin, "/"), err)
	}
}

// goDirective returns the major.minor of go.mod's go line.
func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// dockerignored reports whether the .dockerignore patterns exclude path
// (slash-separated, relative to the context root): a pattern matches the
// path or one of its parent directories, "**/" matches any depth, and a
// later "!pattern" re-includes.
func dockerignored(patterns []string, path string) bool {
	parts := strings.Split(path, "/")
	excluded := false
	for _, p := range patterns {
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		matched := false
		for end := 1; end <= len(parts) && !matched; end++ {
			prefix := parts[:end]
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				for start := range prefix {
					if ok, _ := filepath.Match(rest, strings.Join(prefix[start:], "/")); ok {
						matched = true
					}
				}
			} else if ok, _ := filepath.Match(p, strings.Join(prefix, "/")); ok {
				matched = true
			}
		}
		if matched {
			excluded = !negate
		}
	}
	return excluded
}

func TestDockerignoreKeepsTheSources(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	t.Run("matcher", func(t *testing.T) {
		tests := []struct {
			name, path string
			want       bool
		}{
			{name: "git", path: ".git/config", want: true},
			{name: "a test file", path: "worker/worker_test.go", want: true},
			{name: "nested testdata", path: "jobs/testdata/x.json", want: true},
			{name: "deploy", path: "deploy/Dockerfile", want: true},
			{name: "a source", path: "worker/worker.go", want: false},
			{name: "go.sum", path: "go.sum", want: false},
		}
		for _, tt := range tests {
			if got := dockerignored(patterns, tt.path); got != tt.want {
				t.Errorf("%s: dockerignored(%s) = %v, want %v", tt.name, tt.path, got, tt.want)
			}
		}
	})
	needed := []string{"go.mod", "go.sum"}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		needed = append(needed, rel)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Files a package embeds are compiled in too.
		for _, m := range regexp.MustCompile(`(?m)^//go:embed (.+)$`).FindAllSubmatch(src, -1) {
			for _, pat := range strings.Fields(string(m[1])) {
				matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), pat))
				for _, f := range matches {
					r, _ := filepath.Rel(root, f)
					needed = append(needed, filepath.ToSlash(r))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range needed {
		if dockerignored(patterns, p) && !strings.HasPrefix(p, "deploy/") {
			t.Errorf(".dockerignore excludes %s, which the image's go build needs", p)
		}
	}
}

func TestComposeMatchesTheProgram(t *testing.T) {
	vars := configVars(t)
	compose := loadCompose(t)
	w, sim, nats := compose.Services["provisioner"], compose.Services["cnsim"], compose.Services["nats"]
	env := func(name string) string {
		if v, ok := w.Environment[name]; ok {
			return v
		}
		return defaultOf(t, vars, name)
	}

	t.Run("image", func(t *testing.T) {
		for name, s := range map[string]composeService{"provisioner": w, "cnsim": sim} {
			if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || filepath.Clean(s.Build.Context) != root {
				t.Errorf("service %s is not built from deploy/Dockerfile with the repository root as context: %+v", name, s.Build)
			}
			if s.User != dockerfileUser(t)+":"+dockerfileUser(t) || !s.ReadOnly {
				t.Errorf("service %s: user %q, read_only %v; want the Dockerfile's user and a read-only root", name, s.User, s.ReadOnly)
			}
		}
		if len(sim.Entrypoint) == 0 {
			t.Fatal("cnsim has no entrypoint")
		}
		assertCommand(t, sim.Entrypoint[0])
	})

	t.Run("replicas and shutdown grace", func(t *testing.T) {
		if w.Deploy.Replicas != 3 {
			t.Errorf("provisioner replicas %d, want 3", w.Deploy.Replicas)
		}
		grace := duration(t, "stop_grace_period", w.StopGracePeriod)
		timeout := duration(t, "PROVISIONER_SHUTDOWN_TIMEOUT", env("PROVISIONER_SHUTDOWN_TIMEOUT"))
		if grace <= timeout {
			t.Errorf("stop_grace_period %s does not exceed PROVISIONER_SHUTDOWN_TIMEOUT %s", grace, timeout)
		}
		if got, want := portOf(t, env("PROVISIONER_HTTP_ADDR")), portOf(t, defaultOf(t, vars, "PROVISIONER_HTTP_ADDR")); got != want {
			t.Errorf("PROVISIONER_HTTP_ADDR port %d, the image exposes %d", got, want)
		}
	})

	t.Run("wiring", func(t *testing.T) {
		natsURL, err := url.Parse(env("NATS_URL"))
		if err != nil {
			t.Fatal(err)
		}
		if natsURL.Hostname() != "nats" || natsURL.Port() != "4222" {
			t.Errorf("NATS_URL %s, want the nats service's client port nats:4222", natsURL)
		}
		if slices.Contains(nats.Command, "-p") || slices.Contains(nats.Command, "--port") {
			t.Errorf("nats command %v moves the client port off 4222", nats.Command)
		}
		if !slices.Contains(nats.Command, "-js") && !slices.Contains(nats.Command, "--jetstream") {
			t.Errorf("nats command %v does not enable JetStream", nats.Command)
		}
		monitor, _ := flagValue(nats.Command, "m")
		if nats.Healthcheck == nil || !strings.Contains(strings.Join(nats.Healthcheck.Test, " "), ":"+monitor+"/healthz") {
			t.Errorf("nats healthcheck does not query /healthz on the monitoring port %q", monitor)
		}
		if w.DependsOn["nats"].Condition != "service_healthy" || w.DependsOn["cnsim"].Condition == "" {
			t.Errorf("provisioner depends_on %+v: want nats healthy and cnsim started", w.DependsOn)
		}

		apiURL, err := url.Parse(env("CLOUDNEXUS_API_URL"))
		if err != nil {
			t.Fatal(err)
		}
		addr, ok := flagValue(sim.Entrypoint, "addr")
		if !ok {
			addr = "127.0.0.1:8080" // cnsim's default
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("cnsim -addr %q: %v", addr, err)
		}
		if host != "0.0.0.0" && host != "" {
			t.Errorf("cnsim -addr %s listens only inside its own container", addr)
		}
		if apiURL.Hostname() != "cnsim" || apiURL.Port() != port || apiURL.Path != "/v1" {
			t.Errorf("CLOUDNEXUS_API_URL %s, want http://cnsim:%s/v1", apiURL, port)
		}

		key, ok := flagValue(sim.Entrypoint, "api-key")
		if !ok {
			key = sim.Environment["CNSIM_API_KEY"]
		}
		if key == "" {
			key = cnsim.DefaultAPIKey
		}
		if w.Environment["CLOUDNEXUS_API_KEY"] != key {
			t.Error("the workers' CLOUDNEXUS_API_KEY is not the key the simulator accepts")
		}
	})
}

// dashboardPanels returns every panel of the dashboard, those inside
// collapsed rows included.
func dashboardPanels(panels []map[string]any) []map[string]any {
	var out []map[string]any
	for _, p := range panels {
		out = append(out, p)
		if nested, ok := p["panels"].([]any); ok {
			var inner []map[string]any
			for _, n := range nested {
				if m, ok := n.(map[string]any); ok {
					inner = append(inner, m)
				}
			}
			out = append(out, dashboardPanels(inner)...)
		}
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	known := codeMetrics(t)
	data, err := os.ReadFile(filepath.Join("grafana", "provisioner-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string
		UID        string
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
			}
		}
		Panels []map[string]any
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Error("dashboard has no title or uid")
	}
	dsVar := ""
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("dashboard has no Prometheus data source variable")
	}

	used := map[string]bool{}
	ids := map[float64]bool{}
	for _, p := range dashboardPanels(dash.Panels) {
		title, _ := p["title"].(string)
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %q: id %v used twice", title, id)
		}
		ids[id] = true
		grid := decode[struct{ X, Y, W, H int }](t, p["gridPos"], false)
		if grid.W < 1 || grid.H < 1 || grid.X+grid.W > 24 {
			t.Errorf("panel %q: gridPos %+v", title, grid)
		}
		if p["type"] == "row" {
			continue
		}
		ds := decode[struct{ Type, UID string }](t, p["datasource"], false)
		if ds.Type != "prometheus" || (ds.UID != "${"+dsVar+"}" && ds.UID != "$"+dsVar) {
			t.Errorf("panel %q: datasource %+v, want the $%s variable", title, ds, dsVar)
		}
		targets := decode[[]struct{ Expr, RefID string }](t, p["targets"], false)
		if len(targets) == 0 {
			t.Errorf("panel %q has no queries", title)
		}
		refs := map[string]bool{}
		for _, q := range targets {
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: query %+v without expr, without refId or with a refId used twice", title, q)
			}
			refs[q.RefID] = true
			for _, m := range checkPromQL(t, "dashboard panel "+strconv.Quote(title), q.Expr, known) {
				used[m] = true
			}
		}
	}
	for m := range known {
		if !used[m] {
			t.Errorf("metric %s is exported but on no dashboard panel", m)
		}
	}
}

func TestAlertsAndGuideUseExportedMetrics(t *testing.T) {
	known := codeMetrics(t)
	ms := loadManifests(t)
	rule := one(t, ms, filepath.Join("k8s", "overlays", "production"), "PrometheusRule", "")
	spec := decode[prometheusRule](t, rule.obj, false)
	var alerts []string
	for _, g := range spec.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v has no alert name or expr", r)
			}
			alerts = append(alerts, r.Alert)
			checkPromQL(t, "alert "+r.Alert, r.Expr, known)
		}
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```promql\n(.*?)```").FindAllSubmatch(guide, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/OPERATIONS.md has no ```promql examples")
	}
	for i, b := range blocks {
		checkPromQL(t, fmt.Sprintf("docs/OPERATIONS.md promql block %d", i+1), string(b[1]), known)
	}
	for _, a := range alerts {
		if !bytes.Contains(guide, []byte(a)) {
			t.Errorf("alert %s is not explained in docs/OPERATIONS.md", a)
		}
	}
}
