// Package deploy_test checks what deploy/ ships: the Kubernetes manifests
// decode strictly into Kubernetes' API types and fit the binary (its
// ports, probes and configuration), the systemd units pass
// systemd-analyze verify, the sysusers entry passes systemd-sysusers, and
// the container image builds where a Docker daemon runs.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sedna-go/sedna/cloud"
)

// decode decodes every document of a manifest file strictly into the
// Kubernetes type of its kind; an unknown kind or field is an error.
func decode(t *testing.T, raw []byte) ([]any, error) {
	t.Helper()
	var out []any
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, err
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			obj = &corev1.Namespace{}
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1/Secret":
			obj = &corev1.Secret{}
		case "v1/PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "apps/v1/DaemonSet":
			obj = &appsv1.DaemonSet{}
		default:
			t.Fatalf("a manifest of kind %s/%s, which this test does not know", tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The cloud tier's manifests decode strictly, and fit together and the
// binary: the ConfigMap's cloud.yaml is a cloud configuration (decoded
// strictly) whose mutual-TLS, join and metrics addresses are the
// container's ports, which the Services target; the probes ask /healthz
// and /readyz; the volume claim and the Secret are the ones mounted. A
// field Kubernetes does not know is refused (the check's control).
func TestCloudManifests(t *testing.T) {
	raw := read(t, "kubernetes/cloud.yaml")
	objs, err := decode(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	var (
		cm       *corev1.ConfigMap
		dep      *appsv1.Deployment
		services []*corev1.Service
		claims   []string
		secrets  []string
	)
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.ConfigMap:
			cm = v
		case *appsv1.Deployment:
			dep = v
		case *corev1.Service:
			services = append(services, v)
		case *corev1.PersistentVolumeClaim:
			claims = append(claims, v.Name)
		case *corev1.Secret:
			secrets = append(secrets, v.Name)
		}
	}
	if cm == nil || dep == nil || len(services) != 2 || len(claims) != 1 || len(secrets) != 1 {
		t.Fatalf("want a ConfigMap, a Deployment, two Services, a claim and a Secret: %d objects", len(objs))
	}
	var cfg cloud.Config
	if err := yaml.UnmarshalStrict([]byte(cm.Data["cloud.yaml"]), &cfg); err != nil {
		t.Fatalf("the ConfigMap's cloud.yaml: %v", err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for addr, name := range map[string]string{cfg.Identity.TLSListen: "mqtts", cfg.Identity.JoinListen: "join", cfg.Metrics: "metrics"} {
		if want := ":" + itoa(ports[name]); addr != want {
			t.Errorf("cloud.yaml listens on %q, the container's port %s is %s", addr, name, want)
		}
	}
	for _, s := range services {
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.StrVal]; !ok {
				t.Errorf("service %s targets port %q, which the container does not name", s.Name, p.TargetPort.StrVal)
			}
		}
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: %s, %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols["data"]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claims[0] {
		t.Errorf("the data volume is not claim %s", claims[0])
	}
	if v := vols["credentials"]; v.Secret == nil || v.Secret.SecretName != secrets[0] ||
		!strings.HasPrefix(cfg.Broker.CredentialsFile, "/etc/sedna/credentials/") {
		t.Errorf("the credentials: volume %+v, file %s", v.Secret, cfg.Broker.CredentialsFile)
	}
	if !slices.Equal(c.Args[:3], []string{"cloud", "--data", "/var/lib/sedna/cloud"}) {
		t.Errorf("args %v", c.Args)
	}
	typo := bytes.Replace(raw, []byte("readinessProbe:"), []byte("readynessProbe:"), 1)
	if _, err := decode(t, typo); err == nil || !strings.Contains(err.Error(), "readynessProbe") {
		t.Errorf("a field Kubernetes does not know was taken: %v", err)
	}
}

// The edge agent's DaemonSet decodes strictly and runs on KubeEdge's edge
// nodes (their label and taint), on the host's network (device apps reach
// its broker on the node's 127.0.0.1:1883), its data in a host directory.
func TestEdgeDaemonSet(t *testing.T) {
	objs, err := decode(t, read(t, "kubernetes/edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects, want the DaemonSet", len(objs))
	}
	ds, ok := objs[0].(*appsv1.DaemonSet)
	if !ok {
		t.Fatalf("a %T", objs[0])
	}
	spec := ds.Spec.Template.Spec
	if _, ok := spec.NodeSelector["node-role.kubernetes.io/edge"]; !ok || !spec.HostNetwork {
		t.Errorf("node selector %v, host network %v", spec.NodeSelector, spec.HostNetwork)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool { return tl.Key == "node-role.kubernetes.io/edge" }) {
		t.Errorf("no toleration of the edge nodes' taint: %v", spec.Tolerations)
	}
	v := spec.Volumes[slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "data" })]
	if v.HostPath == nil || v.HostPath.Path != "/var/lib/sedna/edge" || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("the data volume: %+v", v.HostPath)
	}
	if args := spec.Containers[0].Args; !slices.Equal(args[:3], []string{"edge", "--data", "/var/lib/sedna/edge"}) {
		t.Errorf("args %v", args)
	}
}

// The systemd units pass systemd-analyze verify without a word (it warns
// of an unknown key and still exits 0: its output must be empty), with
// their ExecStart pointed at a real sedna binary; the sysusers entry makes
// the user. A misspelt key makes verify speak (the check's control).
func TestSystemdUnits(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sedna")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/sedna").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	verify := func(unit string, edit func(string) string) string {
		t.Helper()
		text := strings.ReplaceAll(string(read(t, filepath.Join("systemd", unit))), "/usr/local/bin/sedna", bin)
		path := filepath.Join(dir, unit)
		if err := os.WriteFile(path, []byte(edit(text)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
		if err != nil {
			return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
		}
		return strings.TrimSpace(string(out))
	}
	same := func(s string) string { return s }
	for _, unit := range []string{"sedna-edge.service", "sedna-cloud.service"} {
		if out := verify(unit, same); out != "" {
			t.Errorf("systemd-analyze verify %s: %s", unit, out)
		}
		text := string(read(t, filepath.Join("systemd", unit)))
		for _, want := range []string{"User=sedna", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
			"CapabilityBoundingSet=\n", "StateDirectory=sedna/"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", unit, strings.TrimSpace(want))
			}
		}
	}
	if out := verify("sedna-edge.service", func(s string) string {
		return strings.Replace(s, "ProtectHome=yes", "ProtectHom=yes", 1)
	}); !strings.Contains(out, "Unknown key 'ProtectHom'") {
		t.Errorf("a misspelt key passed verify: %q", out)
	}
	sysusers, _ := filepath.Abs(filepath.Join("systemd", "sedna.sysusers"))
	out, err := exec.Command("systemd-sysusers", "--dry-run", sysusers).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'sedna'") {
		t.Errorf("systemd-sysusers --dry-run: %v\n%s", err, out)
	}
}

// The container image builds from deploy/Dockerfile and its binary says
// its version, where a Docker daemon runs; without one the test is
// skipped, saying so.
func TestContainerImage(t *testing.T) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon here to build the image with (docker info: %v: %s)", err, firstLine(out))
	}
	tag := "sedna-deploy-test:" + itoa(int32(os.Getpid()))
	build := exec.Command("docker", "build", "-f", "Dockerfile", "-t", tag, "--build-arg", "VERSION=v0.0.0-test", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })
	out, err := exec.Command("docker", "run", "--rm", tag, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sedna v0.0.0-test") {
		t.Fatalf("docker run %s version: %v %s", tag, err, out)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// exported is every metric name the binary's code exports: the broker
// family's (Namespace "sedna" in broker/metrics) and every "sedna_..."
// name written out in a Go file of the module.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	metricsGo := string(read(t, "../broker/metrics/metrics.go"))
	for _, m := range regexp.MustCompile(`(?:cv\(|Name: )"([a-z_]+)"`).FindAllStringSubmatch(metricsGo, -1) {
		names["sedna_"+m[1]] = true
	}
	quoted := regexp.MustCompile(`"(sedna_[a-z_]+)"`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		for _, m := range quoted.FindAllStringSubmatch(string(read(t, path)), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkDashboard returns what is wrong with a Grafana dashboard: panels
// without a query, a query of a metric the code does not export, a job
// metric no Go file names, overlapping ids, a panel outside the grid.
func checkDashboard(raw []byte, names map[string]bool, source string) []string {
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int                      `json:"id"`
			Type    string                   `json:"type"`
			Title   string                   `json:"title"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		return []string{err.Error()}
	}
	var bad []string
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		bad = append(bad, "no title, uid or panels")
	}
	ids := map[int]bool{}
	metricName := regexp.MustCompile(`\bsedna_[a-z_]+`)
	jobMetric := regexp.MustCompile(`metric="([A-Za-z0-9]+)"`)
	for _, p := range dash.Panels {
		if ids[p.ID] {
			bad = append(bad, fmt.Sprintf("panel id %d twice", p.ID))
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			bad = append(bad, fmt.Sprintf("panel %q outside the grid: %+v", p.Title, p.GridPos))
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			bad = append(bad, fmt.Sprintf("panel %q has no query", p.Title))
		}
		for _, tg := range p.Targets {
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				if !names[n] {
					bad = append(bad, fmt.Sprintf("panel %q queries %s, which Sedna-Go does not export", p.Title, n))
				}
			}
			for _, m := range jobMetric.FindAllStringSubmatch(tg.Expr, -1) {
				if !strings.Contains(source, `"`+m[1]+`"`) {
					bad = append(bad, fmt.Sprintf("panel %q asks job metric %q, which no worker reports", p.Title, m[1]))
				}
			}
		}
	}
	return bad
}

// The Grafana dashboard (deploy/grafana/sedna.json) is a dashboard whose
// every query asks series Sedna-Go exports, and whose job panels ask
// numbers its workers report; a misspelt metric is caught (the check's
// control).
func TestGrafanaDashboard(t *testing.T) {
	raw := read(t, "grafana/sedna.json")
	names := exported(t)
	var source strings.Builder
	for _, dir := range []string{"../jointinference", "../federated", "../incremental", "../lifelong"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				source.Write(read(t, f))
			}
		}
	}
	if bad := checkDashboard(raw, names, source.String()); len(bad) > 0 {
		t.Fatalf("the dashboard:\n%s", strings.Join(bad, "\n"))
	}
	typo := bytes.Replace(raw, []byte("sedna_bridge_link_up"), []byte("sedna_bridge_link_upp"), 1)
	if bad := checkDashboard(typo, names, source.String()); len(bad) != 1 || !strings.Contains(bad[0], "sedna_bridge_link_upp") {
		t.Errorf("a misspelt metric: %v", bad)
	}
	typo = bytes.Replace(raw, []byte(`metric=\"uploadRatio\"`), []byte(`metric=\"uploadRatios\"`), 1)
	if bad := checkDashboard(typo, names, source.String()); len(bad) != 1 || !strings.Contains(bad[0], "uploadRatios") {
		t.Errorf("a misspelt job metric: %v", bad)
	}
}
