// Package deploy holds no code: its tests check the deployment files users rely on
// (deploy/k8s, docker-compose.yml, Dockerfile) without a cluster or a Docker engine.
//
//   - Every object `kubectl kustomize` renders from the base and each overlay is decoded
//     strictly (unknown fields fail) into the Kubernetes API Go types, then checked for what
//     operators depend on: grace periods, probes, non-root, no secret literals, references that
//     resolve, selectors that match, one autoscaler per workload.
//   - KEDA objects decode into small local mirrors of the CRD fields we use (strictly too):
//     KEDA's own Go module pulls in most of Kubernetes and controller-runtime, far too much for
//     a test. The list names are checked against Asynq itself on a real redis-server.
//   - docker-compose.yml is loaded with the Compose specification's own Go loader.
//   - The Dockerfile's build is reproduced with `go build` (static binaries) and its embedded
//     healthcheck program is compiled and run.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/linkharvest/linkharvest/providers/registry"
)

const (
	namespace = "linkharvest"
	// The image that holds our four programs, as the base's kustomize `images:` names it.
	ourImage = "ghcr.io/linkharvest/linkharvest"
)

// The Asynq queues workers serve: one per provider plus "default" for job control.
var queues = append(registry.Names(), "default")

// Env names whose values are credentials; they may only come from a Secret.
var sensitiveName = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|APIKEY|ACCESS_KEY|_KEY$|LOGIN|_USER$|AUTH$|^REDIS_URL$)`)

// Secret values allowed in the templates: placeholders, and the sandbox's fake credentials.
var placeholder = regexp.MustCompile(`CHANGE_ME|^sandbox$`)

func requireIntegration() bool { return os.Getenv("LINKHARVEST_REQUIRE_INTEGRATION") == "1" }

// repoRoot is the module root (this file lives in deploy/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	return root
}

// ---------------------------------------------------------------------------------------------
// KEDA mirrors. Only the fields our manifests use, with KEDA's JSON names
// (github.com/kedacore/keda/v2/apis/keda/v1alpha1); anything else fails strict decoding.

type scaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            scaledObjectSpec  `json:"spec"`
}

type scaledObjectSpec struct {
	ScaleTargetRef struct {
		APIVersion string `json:"apiVersion,omitempty"`
		Kind       string `json:"kind,omitempty"`
		Name       string `json:"name"`
	} `json:"scaleTargetRef"`
	PollingInterval *int32 `json:"pollingInterval,omitempty"`
	CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
	MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
	Advanced        *struct {
		HorizontalPodAutoscalerConfig *struct {
			Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
		} `json:"horizontalPodAutoscalerConfig,omitempty"`
	} `json:"advanced,omitempty"`
	Triggers []scaleTrigger `json:"triggers"`
}

type scaleTrigger struct {
	Type              string            `json:"type"`
	Name              string            `json:"name,omitempty"`
	Metadata          map[string]string `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	} `json:"authenticationRef,omitempty"`
}

// Metadata keys of KEDA's redis (lists) scaler; metadata is a free-form map in the CRD,
// so a misspelt key would otherwise pass.
var redisScalerKeys = []string{"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
	"usernameFromEnv", "passwordFromEnv", "listName", "listLength", "activationListLength",
	"databaseIndex", "enableTLS", "unsafeSsl"}

type triggerAuthentication struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// ---------------------------------------------------------------------------------------------
// Rendering and strict decoding.

// object is one rendered manifest, decoded into its Go type.
type object struct {
	APIVersion, Kind, Name, Namespace string
	Obj                               any
}

func (o object) String() string { return o.Kind + "/" + o.Name }

// types maps apiVersion/kind to a new Go value; a kind not listed here fails the test, so
// every rendered object is checked.
var types = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":           func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                       func() any { return &batchv1.Job{} },
	"batch/v1/CronJob":                   func() any { return &batchv1.CronJob{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any {
		return &autoscalingv2.HorizontalPodAutoscaler{}
	},
	"keda.sh/v1alpha1/ScaledObject":          func() any { return &scaledObject{} },
	"keda.sh/v1alpha1/TriggerAuthentication": func() any { return &triggerAuthentication{} },
}

// command is exec.Command with a deadline, so a stuck tool fails its test with a message
// instead of hanging the whole package until go test's global timeout.
func command(t *testing.T, timeout time.Duration, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second // also give up on output pipes held open by grandchildren
	return cmd
}

func kubectl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		if requireIntegration() {
			t.Fatalf("kubectl not found: %v", err)
		}
		t.Skip("kubectl not installed")
	}
	return path
}

// render runs `kubectl kustomize dir` (dir relative to the module root) and decodes every
// document, once per directory for the whole package: tests only read the objects.
func render(t *testing.T, dir string) []object {
	t.Helper()
	bin := kubectl(t)
	v, _ := renders.LoadOrStore(dir, &renderOnce{})
	r := v.(*renderOnce)
	r.once.Do(func() { r.objs, r.err = renderDir(bin, filepath.Join(repoRoot(t), dir)) })
	if r.err != nil {
		t.Fatalf("%s: %v", dir, r.err)
	}
	return r.objs
}

var renders sync.Map // dir -> *renderOnce

type renderOnce struct {
	once sync.Once
	objs []object
	err  error
}

func renderDir(kubectl, dir string) ([]object, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	objs, err := decodeAll(out)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, errors.New("rendered nothing")
	}
	return objs, nil
}

// decodeAll splits a multi-document YAML stream and strictly decodes each document.
func decodeAll(stream []byte) ([]object, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		newObj, ok := types[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("%s/%s %q: no Go type registered for this kind; add one so it is checked",
				head.APIVersion, head.Kind, head.Metadata.Name)
		}
		obj := newObj()
		if err := strictDecode(doc, obj); err != nil {
			return nil, fmt.Errorf("%s/%s %q: %w", head.APIVersion, head.Kind, head.Metadata.Name, err)
		}
		objs = append(objs, object{head.APIVersion, head.Kind, head.Metadata.Name, head.Metadata.Namespace, obj})
	}
}

// strictDecode decodes like the API server: YAML to JSON rejecting duplicate keys, then
// case-sensitive JSON rejecting unknown and duplicate fields. (sigs.k8s.io/yaml.UnmarshalStrict
// alone uses encoding/json, which matches field names case-insensitively: "targetport" would pass.)
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// The decoder must really be strict, or every check above is weaker than it looks.
func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"nested typo":   "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80, targetport: 8080}]\n",
		"wrong type":    "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec: {suspend: \"yes\", schedule: x, jobTemplate: {}}\n",
		"duplicate":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: \"1\", A: \"2\"}\n",
		"keda typo":     "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: w}\n  minReplicas: 1\n  triggers: []\n",
		"unknown kind":  "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
	} {
		if _, err := decodeAll([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Lookups over a render.

type rendered []object

func (r rendered) find(kind, name string) (object, bool) {
	for _, o := range r {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func get[T any](t *testing.T, r rendered, kind, name string) T {
	t.Helper()
	o, ok := r.find(kind, name)
	if !ok {
		t.Fatalf("%s/%s not rendered", kind, name)
	}
	return o.Obj.(T)
}

func (r rendered) all(kind string) []object {
	var out []object
	for _, o := range r {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// podTemplates returns the pod template of every workload, keyed "Kind/name".
func (r rendered) podTemplates() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range r {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			out[o.String()] = &v.Spec.Template
		case *appsv1.StatefulSet:
			out[o.String()] = &v.Spec.Template
		case *batchv1.Job:
			out[o.String()] = &v.Spec.Template
		case *batchv1.CronJob:
			out[o.String()] = &v.Spec.JobTemplate.Spec.Template
		}
	}
	return out
}

func (r rendered) configData(name string) (map[string]string, bool) {
	o, ok := r.find("ConfigMap", name)
	if !ok {
		return nil, false
	}
	return o.Obj.(*corev1.ConfigMap).Data, true
}

func (r rendered) secretKeys(name string) (map[string]bool, bool) {
	o, ok := r.find("Secret", name)
	if !ok {
		return nil, false
	}
	s := o.Obj.(*corev1.Secret)
	keys := map[string]bool{}
	for k := range s.Data {
		keys[k] = true
	}
	for k := range s.StringData {
		keys[k] = true
	}
	return keys, true
}

// envValue resolves a container's variable as the kubelet would from literal values, ConfigMap
// envFrom and configMapKeyRef (not Secrets); ok=false if unset or from elsewhere.
func (r rendered) envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range slices.Backward(c.Env) {
		if e.Name != name {
			continue
		}
		if e.ValueFrom == nil {
			return e.Value, true
		}
		if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
			data, _ := r.configData(ref.Name)
			v, ok := data[ref.Key]
			return v, ok
		}
		return "", false
	}
	for _, ef := range slices.Backward(c.EnvFrom) {
		if ef.ConfigMapRef != nil {
			if data, ok := r.configData(ef.ConfigMapRef.Name); ok {
				if v, ok := data[ef.Prefix+name]; ok {
					return v, true
				}
			}
		}
	}
	return "", false
}

// envFromSecret reports whether the variable comes from a Secret (secretKeyRef or envFrom).
func (r rendered) envFromSecret(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			if keys, ok := r.secretKeys(ef.SecretRef.Name); ok && keys[strings.TrimPrefix(name, ef.Prefix)] {
				return true
			}
		}
	}
	return false
}

func container(t *testing.T, pod *corev1.PodTemplateSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// ---------------------------------------------------------------------------------------------
// The renders.

type variant struct {
	dir  string
	keda bool // KEDA ScaledObject (else the HPA)
	// ConfigMaps a pod may reference although the render does not define them (the user creates them).
	userConfigMaps []string
	sandbox        bool
}

var variants = []variant{
	{dir: "deploy/k8s/base", keda: true, userConfigMaps: []string{"enqueue-domains"}},
	{dir: "deploy/k8s/overlays/hpa", keda: false, userConfigMaps: []string{"enqueue-domains"}},
	{dir: "deploy/k8s/overlays/sandbox", keda: true, sandbox: true},
}

func TestKustomize(t *testing.T) {
	t.Parallel()
	binaries := dockerBinaries(t)
	for _, v := range variants {
		t.Run(filepath.Base(v.dir), func(t *testing.T) {
			t.Parallel()
			r := rendered(render(t, v.dir))
			t.Run("namespace", func(t *testing.T) { checkNamespace(t, r) })
			t.Run("pods", func(t *testing.T) { checkPods(t, r, binaries) })
			t.Run("secrets", func(t *testing.T) { checkSecrets(t, r) })
			t.Run("references", func(t *testing.T) { checkReferences(t, r, v.userConfigMaps) })
			t.Run("selectors", func(t *testing.T) { checkSelectors(t, r) })
			t.Run("worker", func(t *testing.T) { checkWorker(t, r) })
			t.Run("autoscaling", func(t *testing.T) { checkAutoscaling(t, r, v.keda) })
			t.Run("redis", func(t *testing.T) { checkRedis(t, r) })
			t.Run("asynqmon", func(t *testing.T) { checkAsynqmon(t, r) })
			t.Run("enqueue", func(t *testing.T) { checkEnqueue(t, r) })
			t.Run("networkpolicy", func(t *testing.T) { checkNetworkPolicies(t, r) })
			if v.sandbox {
				t.Run("sandbox", func(t *testing.T) { checkSandbox(t, r) })
			} else {
				t.Run("no sandbox", func(t *testing.T) {
					for _, name := range []string{"sandbox", "minio"} {
						if _, ok := r.find("Deployment", name); ok {
							t.Errorf("%s deployed outside the sandbox overlay", name)
						}
					}
					cfg, _ := r.configData("linkharvest-config")
					for k, val := range cfg {
						if strings.HasSuffix(k, "_BASE_URL") && !strings.HasPrefix(val, "https://") {
							t.Errorf("%s=%q: vendors are reached over HTTPS", k, val)
						}
					}
				})
			}
		})
	}
}

func checkNamespace(t *testing.T, r rendered) {
	if _, ok := r.find("Namespace", namespace); !ok {
		t.Errorf("Namespace %s not rendered", namespace)
	}
	for _, o := range r {
		if o.Kind == "Namespace" {
			continue
		}
		if o.Namespace != namespace {
			t.Errorf("%s in namespace %q, want %q", o, o.Namespace, namespace)
		}
	}
}

// checkPods: resources, probes and the restricted Pod Security profile for every container;
// our image runs only programs the Dockerfile builds.
func checkPods(t *testing.T, r rendered, binaries []string) {
	for name, pod := range r.podTemplates() {
		spec := pod.Spec
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
		}
		if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pod securityContext.runAsUser must be a non-zero UID", name)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile RuntimeDefault missing", name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false (no pod needs the Kubernetes API)", name)
		}
		if len(spec.InitContainers) > 0 {
			t.Errorf("%s: init containers are not checked here; extend the test", name)
		}
		for _, c := range spec.Containers {
			where := name + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true", where)
			}
			if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: capabilities must drop ALL", where)
			}
			if sc != nil && sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			req, lim := c.Resources.Requests, c.Resources.Limits
			if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
				t.Errorf("%s: needs cpu and memory requests and a memory limit, got %v / %v", where, req, lim)
			}
			if !lim.Memory().IsZero() && lim.Memory().Cmp(*req.Memory()) < 0 {
				t.Errorf("%s: memory limit below request", where)
			}
			if c.Image == "" || strings.HasSuffix(c.Image, ":latest") && !strings.HasPrefix(c.Image, ourImage+":") {
				t.Errorf("%s: third-party image %q must be pinned to a version", where, c.Image)
			}
			long := strings.HasPrefix(name, "Deployment/") || strings.HasPrefix(name, "StatefulSet/")
			if long && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
				t.Errorf("%s: long-running container without readiness and liveness probes", where)
			}
			if strings.HasPrefix(c.Image, ourImage+":") || c.Image == ourImage {
				if len(c.Command) != 1 {
					t.Errorf("%s: command must name exactly one program, got %q", where, c.Command)
					continue
				}
				if dir, prog := filepath.Split(c.Command[0]); dir != "/usr/local/bin/" || !slices.Contains(binaries, prog) {
					t.Errorf("%s: command %q is not one of the Dockerfile's programs %q in /usr/local/bin", where, c.Command[0], binaries)
				}
				if *psc.RunAsUser != 65532 {
					t.Errorf("%s: our image runs as 65532 (distroless nonroot), pod says %d", where, *psc.RunAsUser)
				}
			} else if c.Image == "linkharvest" || strings.Contains(c.Image, "linkharvest") {
				t.Errorf("%s: image %q was not rewritten by kustomize `images:`", where, c.Image)
			}
			checkEnvLiterals(t, r, where, c)
		}
	}
}

// checkEnvLiterals: credentials only from Secrets, and no URL with a literal password.
func checkEnvLiterals(t *testing.T, r rendered, where string, c corev1.Container) {
	for _, e := range c.Env {
		if sensitiveName.MatchString(e.Name) && !r.envFromSecret(c, e.Name) {
			t.Errorf("%s: %s looks like a credential but does not come from a Secret", where, e.Name)
		}
		if e.ValueFrom == nil && strings.Contains(e.Value, "://") {
			if u, err := url.Parse(e.Value); err == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && !regexp.MustCompile(`^\$\([A-Z_]+\)$`).MatchString(p) {
					t.Errorf("%s: %s holds a literal password in a URL", where, e.Name)
				}
			} else if err != nil && strings.Contains(e.Value, "@") && !strings.Contains(e.Value, "$(") {
				t.Errorf("%s: %s: unparsable URL with credentials", where, e.Name)
			}
		}
	}
}

func checkSecrets(t *testing.T, r rendered) {
	for _, o := range r.all("Secret") {
		s := o.Obj.(*corev1.Secret)
		if len(s.Data) > 0 {
			t.Errorf("%s: use stringData placeholders in templates, not data", o)
		}
		for k, v := range s.StringData {
			if !placeholder.MatchString(v) {
				t.Errorf("%s: %s is not a placeholder (want CHANGE_ME or the sandbox's fake \"sandbox\")", o, k)
			}
		}
	}
	for _, o := range r.all("ConfigMap") {
		for k := range o.Obj.(*corev1.ConfigMap).Data {
			if sensitiveName.MatchString(k) {
				t.Errorf("%s: %s looks like a credential; it belongs in a Secret", o, k)
			}
		}
	}
}

// checkReferences: every Secret, ConfigMap, key, PVC and ServiceAccount a pod names is rendered too.
func checkReferences(t *testing.T, r rendered, userConfigMaps []string) {
	cmExists := func(name string) bool {
		_, ok := r.configData(name)
		return ok || slices.Contains(userConfigMaps, name)
	}
	secretKey := func(where, name, key string) {
		keys, ok := r.secretKeys(name)
		if !ok {
			t.Errorf("%s: Secret %q not rendered", where, name)
		} else if key != "" && !keys[key] {
			t.Errorf("%s: Secret %q has no key %q", where, name, key)
		}
	}
	for name, pod := range r.podTemplates() {
		if sa := pod.Spec.ServiceAccountName; sa != "" {
			if _, ok := r.find("ServiceAccount", sa); !ok {
				t.Errorf("%s: ServiceAccount %q not rendered", name, sa)
			}
		}
		for _, c := range pod.Spec.Containers {
			where := name + " container " + c.Name
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					secretKey(where, ef.SecretRef.Name, "")
				}
				if ef.ConfigMapRef != nil && !cmExists(ef.ConfigMapRef.Name) {
					t.Errorf("%s: ConfigMap %q not rendered", where, ef.ConfigMapRef.Name)
				}
			}
			defined := map[string]bool{}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					data, _ := r.configData(ef.ConfigMapRef.Name)
					for k := range data {
						defined[ef.Prefix+k] = true
					}
				}
				if ef.SecretRef != nil {
					keys, _ := r.secretKeys(ef.SecretRef.Name)
					for k := range keys {
						defined[ef.Prefix+k] = true
					}
				}
			}
			for _, e := range c.Env {
				// $(VAR) in values may only name variables defined before (the kubelet's rule).
				for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(e.Value, -1) {
					if !defined[m[1]] {
						t.Errorf("%s: %s refers to $(%s), not defined before it", where, e.Name, m[1])
					}
				}
				defined[e.Name] = true
				if e.ValueFrom == nil {
					continue
				}
				if ref := e.ValueFrom.SecretKeyRef; ref != nil {
					secretKey(where, ref.Name, ref.Key)
				}
				if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
					if data, ok := r.configData(ref.Name); !ok {
						t.Errorf("%s: ConfigMap %q not rendered", where, ref.Name)
					} else if _, ok := data[ref.Key]; !ok {
						t.Errorf("%s: ConfigMap %q has no key %q", where, ref.Name, ref.Key)
					}
				}
			}
			for _, a := range append(slices.Clone(c.Command), c.Args...) {
				for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
					if !defined[m[1]] {
						t.Errorf("%s: argument %q refers to $(%s), which the container does not define", where, a, m[1])
					}
				}
			}
			mounts := map[string]bool{}
			for _, vm := range c.VolumeMounts {
				mounts[vm.Name] = true
			}
			vols := map[string]bool{}
			for _, v := range pod.Spec.Volumes {
				vols[v.Name] = true
			}
			if o, ok := r.find("StatefulSet", strings.TrimPrefix(name, "StatefulSet/")); ok && strings.HasPrefix(name, "StatefulSet/") {
				for _, vct := range o.Obj.(*appsv1.StatefulSet).Spec.VolumeClaimTemplates {
					vols[vct.Name] = true
				}
			}
			for m := range mounts {
				if !vols[m] {
					t.Errorf("%s: volumeMount %q has no volume", where, m)
				}
			}
		}
		for _, v := range pod.Spec.Volumes {
			switch {
			case v.ConfigMap != nil && !cmExists(v.ConfigMap.Name):
				t.Errorf("%s: volume %s: ConfigMap %q not rendered", name, v.Name, v.ConfigMap.Name)
			case v.Secret != nil:
				secretKey(name, v.Secret.SecretName, "")
			case v.PersistentVolumeClaim != nil:
				if _, ok := r.find("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName); !ok {
					t.Errorf("%s: PVC %q not rendered", name, v.PersistentVolumeClaim.ClaimName)
				}
			}
		}
	}
}

// podsMatching returns the pod templates a label selector selects.
func podsMatching(r rendered, sel labels.Selector) []string {
	var names []string
	for name, pod := range r.podTemplates() {
		if sel.Matches(labels.Set(pod.Labels)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func checkSelectors(t *testing.T, r rendered) {
	for _, o := range r.all("Service") {
		svc := o.Obj.(*corev1.Service)
		matched := podsMatching(r, labels.SelectorFromSet(svc.Spec.Selector))
		if len(svc.Spec.Selector) == 0 || len(matched) != 1 {
			t.Errorf("%s selects %q, want exactly one workload", o, matched)
			continue
		}
		pod := r.podTemplates()[matched[0]]
		for _, p := range svc.Spec.Ports {
			if !containerHasPort(pod, p.TargetPort, p.Port) {
				t.Errorf("%s port %d: targetPort %s is not a port of %s", o, p.Port, p.TargetPort.String(), matched[0])
			}
		}
	}
	for kind, get := range map[string]func(any) (*metav1.LabelSelector, *corev1.PodTemplateSpec){
		"Deployment": func(x any) (*metav1.LabelSelector, *corev1.PodTemplateSpec) {
			d := x.(*appsv1.Deployment)
			return d.Spec.Selector, &d.Spec.Template
		},
		"StatefulSet": func(x any) (*metav1.LabelSelector, *corev1.PodTemplateSpec) {
			s := x.(*appsv1.StatefulSet)
			return s.Spec.Selector, &s.Spec.Template
		},
	} {
		for _, o := range r.all(kind) {
			ls, pod := get(o.Obj)
			sel, err := metav1.LabelSelectorAsSelector(ls)
			if err != nil || ls == nil || !sel.Matches(labels.Set(pod.Labels)) {
				t.Errorf("%s: selector does not match its own pod template", o)
				continue
			}
			if m := podsMatching(r, sel); len(m) != 1 {
				t.Errorf("%s: selector also matches %q", o, m)
			}
		}
	}
	for _, o := range r.all("PodDisruptionBudget") {
		pdb := o.Obj.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || len(podsMatching(r, sel)) != 1 {
			t.Errorf("%s: selector must match exactly one workload", o)
		}
	}
}

func containerHasPort(pod *corev1.PodTemplateSpec, target intstr.IntOrString, port int32) bool {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			switch {
			case target.Type == intstr.String && target.StrVal == cp.Name && cp.Name != "":
				return true
			case target.Type == intstr.Int && target.IntVal == cp.ContainerPort:
				return true
			case target.Type == intstr.Int && target.IntVal == 0 && port == cp.ContainerPort:
				return true
			}
		}
	}
	return false
}

func checkWorker(t *testing.T, r rendered) {
	d := get[*appsv1.Deployment](t, r, "Deployment", "worker")
	if d.Spec.Replicas != nil {
		t.Errorf("worker sets replicas=%d; the autoscaler owns the count (a re-apply would fight it)", *d.Spec.Replicas)
	}
	pod := &d.Spec.Template
	c := container(t, pod, "worker")

	shutdown := 30 * time.Second // the worker's default
	if v, ok := r.envValue(c, "WORKER_SHUTDOWN_TIMEOUT"); ok {
		var err error
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatalf("WORKER_SHUTDOWN_TIMEOUT=%q: %v", v, err)
		}
	}
	grace := 30 * time.Second // Kubernetes' default
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace < shutdown+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must exceed WORKER_SHUTDOWN_TIMEOUT %v by at least 10s, "+
			"or SIGKILL strands running tasks", grace, shutdown)
	}

	metricsPort := 9090
	if v, ok := r.envValue(c, "METRICS_ADDR"); ok {
		_, p, err := net.SplitHostPort(v)
		if err != nil {
			t.Fatalf("METRICS_ADDR=%q: %v", v, err)
		}
		metricsPort, _ = strconv.Atoi(p)
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s probe must GET /healthz", kind)
			continue
		}
		if !probePortIs(c, p.HTTPGet.Port, metricsPort) {
			t.Errorf("%s probe port %s is not METRICS_ADDR's %d", kind, p.HTTPGet.Port.String(), metricsPort)
		}
	}
	if lp := c.LivenessProbe; lp != nil && lp.PeriodSeconds*lp.FailureThreshold < 60 {
		t.Errorf("liveness gives up after %ds: a Redis blip would restart every worker", lp.PeriodSeconds*lp.FailureThreshold)
	}
	fromSecret := []string{"REDIS_URL"}
	for _, v := range registry.Vendors {
		fromSecret = append(fromSecret, v.Env.Account...)
	}
	for _, name := range fromSecret {
		if !r.envFromSecret(c, name) {
			t.Errorf("worker: %s must come from a Secret", name)
		}
	}
	for _, name := range []string{"SINK_URL", "PROVIDER_LIMITS", "WORKER_CONCURRENCY", "AWS_REGION"} {
		if _, ok := r.envValue(c, name); !ok {
			t.Errorf("worker: %s not set from the ConfigMap", name)
		}
	}
	if sink, _ := r.envValue(c, "SINK_URL"); !strings.HasPrefix(sink, "s3://") {
		t.Errorf("SINK_URL=%q: the cluster writes to S3", sink)
	}
	if pod.Labels["linkharvest.io/redis-client"] != "true" {
		t.Error("worker pods lack the label the Redis NetworkPolicy admits")
	}
	if _, ok := r.find("PodDisruptionBudget", "worker"); !ok {
		t.Error("no PodDisruptionBudget for the worker")
	}
}

func probePortIs(c corev1.Container, port intstr.IntOrString, want int) bool {
	if port.Type == intstr.Int {
		return int(port.IntVal) == want
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort) == want
		}
	}
	return false
}

func checkAutoscaling(t *testing.T, r rendered, wantKEDA bool) {
	sos, hpas := r.all("ScaledObject"), r.all("HorizontalPodAutoscaler")
	if wantKEDA {
		if len(sos) != 1 || len(hpas) != 0 {
			t.Fatalf("want exactly one ScaledObject and no HPA, got %d and %d", len(sos), len(hpas))
		}
		checkKEDA(t, r, sos[0].Obj.(*scaledObject))
		return
	}
	if len(sos) != 0 || len(r.all("TriggerAuthentication")) != 0 || len(hpas) != 1 {
		t.Fatalf("want one HPA and no KEDA objects, got %d HPA, %d ScaledObject", len(hpas), len(sos))
	}
	h := hpas[0].Obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != "worker" || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA targets %+v, want apps/v1 Deployment worker", ref)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HPA replicas min %v max %d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	cpu := false
	for _, m := range h.Spec.Metrics {
		cpu = cpu || m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU
	}
	if !cpu {
		t.Error("HPA has no CPU resource metric")
	}
	c := container(t, &get[*appsv1.Deployment](t, r, "Deployment", "worker").Spec.Template, "worker")
	if c.Resources.Requests.Cpu().IsZero() {
		t.Error("CPU utilization needs a CPU request on the worker")
	}
}

func checkKEDA(t *testing.T, r rendered, so *scaledObject) {
	if ref := so.Spec.ScaleTargetRef; ref.Name != "worker" || (ref.Kind != "" && ref.Kind != "Deployment") {
		t.Errorf("ScaledObject targets %+v, want Deployment worker", ref)
	}
	if m := so.Spec.MinReplicaCount; m == nil || *m < 1 {
		t.Error("minReplicaCount must be >= 1: retries, scheduled tasks and crashed workers' tasks are only " +
			"moved back to pending by a running worker, and KEDA cannot see those sets")
	}
	if so.Spec.MaxReplicaCount == nil || so.Spec.MinReplicaCount != nil && *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
		t.Error("maxReplicaCount missing or below minReplicaCount")
	}
	c := container(t, &get[*appsv1.Deployment](t, r, "Deployment", "worker").Spec.Template, "worker")
	concurrency, _ := r.envValue(c, "WORKER_CONCURRENCY")

	lists := map[string]scaleTrigger{}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "redis" {
			t.Errorf("trigger %q: type %q, want redis", tr.Name, tr.Type)
			continue
		}
		for k := range tr.Metadata {
			if !slices.Contains(redisScalerKeys, k) {
				t.Errorf("trigger %q: %q is not a redis scaler parameter", tr.Name, k)
			}
		}
		n, err := strconv.Atoi(tr.Metadata["listLength"])
		if err != nil || n <= 0 {
			t.Errorf("trigger %q: listLength %q must be a positive integer", tr.Name, tr.Metadata["listLength"])
		}
		host, _, err := net.SplitHostPort(tr.Metadata["address"])
		// KEDA dials from its own namespace: the name must carry ours.
		if err != nil || !strings.HasPrefix(host, "redis."+namespace+".svc") {
			t.Errorf("trigger %q: address %q must be redis.%s.svc[.cluster.local]:port", tr.Name, tr.Metadata["address"], namespace)
		}
		if tr.AuthenticationRef == nil {
			t.Errorf("trigger %q: no authenticationRef (Redis requires a password)", tr.Name)
		} else {
			o, ok := r.find("TriggerAuthentication", tr.AuthenticationRef.Name)
			if !ok {
				t.Errorf("trigger %q: TriggerAuthentication %q not rendered", tr.Name, tr.AuthenticationRef.Name)
			} else {
				ta := o.Obj.(*triggerAuthentication)
				found := false
				for _, ref := range ta.Spec.SecretTargetRef {
					keys, _ := r.secretKeys(ref.Name)
					if !keys[ref.Key] {
						t.Errorf("%s: Secret %s has no key %s", o, ref.Name, ref.Key)
					}
					found = found || ref.Parameter == "password"
				}
				if !found {
					t.Errorf("%s: no password parameter", o)
				}
			}
		}
		if _, dup := lists[tr.Metadata["listName"]]; dup {
			t.Errorf("list %q watched twice", tr.Metadata["listName"])
		}
		lists[tr.Metadata["listName"]] = tr
	}
	for _, q := range queues {
		if _, ok := lists["asynq:{"+q+"}:pending"]; !ok {
			t.Errorf("no trigger on asynq:{%s}:pending", q)
		}
		if tr, ok := lists["asynq:{"+q+"}:active"]; !ok {
			t.Errorf("no trigger on asynq:{%s}:active (keeps busy pods from being scaled away)", q)
		} else if tr.Metadata["listLength"] != concurrency {
			t.Errorf("active trigger %q: listLength %s != WORKER_CONCURRENCY %s", tr.Name, tr.Metadata["listLength"], concurrency)
		}
	}
	if len(lists) != 2*len(queues) {
		t.Errorf("triggers watch %d lists, want %d: %v", len(lists), 2*len(queues), slices.Sorted(func(yield func(string) bool) {
			for k := range lists {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

func checkRedis(t *testing.T, r rendered) {
	ss := get[*appsv1.StatefulSet](t, r, "StatefulSet", "redis")
	c := container(t, &ss.Spec.Template, "redis")
	args := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction", "--requirepass $(REDIS_PASSWORD)", "--dir /data"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis command %q lacks %q", args, want)
		}
	}
	if !r.envFromSecret(c, "REDIS_PASSWORD") {
		t.Error("REDIS_PASSWORD must come from a Secret")
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volumeClaimTemplate, got %d", len(ss.Spec.VolumeClaimTemplates))
	}
	vct := ss.Spec.VolumeClaimTemplates[0]
	mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == vct.Name && m.MountPath == "/data" })
	if !mounted {
		t.Errorf("PVC %q not mounted at /data", vct.Name)
	}
	if vct.Spec.Resources.Requests.Storage().IsZero() {
		t.Error("PVC without a size")
	}
	if ss.Spec.ServiceName == "" {
		t.Error("StatefulSet without serviceName")
	} else if o, ok := r.find("Service", ss.Spec.ServiceName); !ok || o.Obj.(*corev1.Service).Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q must be a rendered headless Service", ss.Spec.ServiceName)
	}
	// The URL clients use points at the Service in front of this StatefulSet.
	keys, _ := r.secretKeys("linkharvest-redis")
	if !keys["REDIS_URL"] {
		t.Fatal("Secret linkharvest-redis has no REDIS_URL")
	}
	s := get[*corev1.Secret](t, r, "Secret", "linkharvest-redis")
	u, err := url.Parse(s.StringData["REDIS_URL"])
	if err != nil || u.Scheme != "redis" && u.Scheme != "rediss" {
		t.Fatalf("REDIS_URL placeholder is not a redis:// URL")
	}
	if _, ok := r.find("Service", u.Hostname()); !ok {
		t.Errorf("REDIS_URL host %q is not a rendered Service", u.Hostname())
	}
}

func checkAsynqmon(t *testing.T, r rendered) {
	d := get[*appsv1.Deployment](t, r, "Deployment", "asynqmon")
	c := container(t, &d.Spec.Template, "asynqmon")
	addr := "127.0.0.1:8080"
	for i, a := range c.Args {
		if a == "--addr" && i+1 < len(c.Args) {
			addr = c.Args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--addr="); ok {
			addr = v
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("--addr %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		t.Errorf("--addr %s is loopback: the Service could not reach it", addr)
	}
	// Mirrors the program's rule: not loopback, so basic auth is required.
	if !r.envFromSecret(c, "ASYNQMON_BASIC_AUTH") {
		t.Error("ASYNQMON_BASIC_AUTH must be set from a Secret (asynqmon refuses to start without it)")
	}
	p, _ := strconv.Atoi(port)
	for kind, pr := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != "/healthz" || !probePortIs(c, pr.HTTPGet.Port, p) {
			t.Errorf("%s probe must GET /healthz on %d (the only path without auth)", kind, p)
		}
	}
	if _, ok := r.find("Service", "asynqmon"); !ok {
		t.Error("no Service asynqmon")
	}
}

func checkEnqueue(t *testing.T, r rendered) {
	cj := get[*batchv1.CronJob](t, r, "CronJob", "enqueue")
	if cj.Spec.Suspend == nil || !*cj.Spec.Suspend {
		t.Error("the enqueue template must be suspended; runs are made with kubectl create job --from")
	}
	js := cj.Spec.JobTemplate.Spec
	pod := &js.Template
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("restartPolicy must be Never (a podFailurePolicy requires it)")
	}
	c := container(t, pod, "enqueue")
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--job $(JOB_NAME)", "--wait"} {
		if !strings.Contains(args, want) {
			t.Errorf("enqueue args %q lack %q", args, want)
		}
	}
	jobName := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "JOB_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.labels['batch.kubernetes.io/job-name']"
	})
	if !jobName {
		t.Error("JOB_NAME must come from the pod's batch.kubernetes.io/job-name label, so a retried pod reuses the job id")
	}
	if !r.envFromSecret(c, "REDIS_URL") {
		t.Error("REDIS_URL must come from a Secret")
	}
	final := map[int32]bool{}
	if pfp := js.PodFailurePolicy; pfp != nil {
		for _, rule := range pfp.Rules {
			if rule.Action == batchv1.PodFailurePolicyActionFailJob && rule.OnExitCodes != nil &&
				rule.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn {
				for _, v := range rule.OnExitCodes.Values {
					final[v] = true
				}
			}
		}
	}
	if !final[1] || !final[2] {
		t.Error("exit codes 1 (some domain failed) and 2 (bad usage) must fail the Job without retries")
	}
	// The input file argument is on the mounted volume.
	last := c.Args[len(c.Args)-1]
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(last, m.MountPath+"/") }) {
		t.Errorf("input %q is not under a volume mount", last)
	}
}

func checkNetworkPolicies(t *testing.T, r rendered) {
	byComponent := map[string][]*networkingv1.NetworkPolicy{}
	for _, o := range r.all("NetworkPolicy") {
		np := o.Obj.(*networkingv1.NetworkPolicy)
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		matched := podsMatching(r, sel)
		if err != nil || len(matched) != 1 {
			t.Errorf("%s selects %q, want exactly one workload", o, matched)
			continue
		}
		pod := r.podTemplates()[matched[0]]
		byComponent[pod.Labels["app.kubernetes.io/component"]] = append(byComponent[pod.Labels["app.kubernetes.io/component"]], np)
	}
	egressTo := func(component string, port int32) bool {
		for _, np := range byComponent[component] {
			for _, rule := range np.Spec.Egress {
				for _, p := range rule.Ports {
					if p.Port != nil && p.Port.IntVal == port {
						return true
					}
				}
			}
		}
		return false
	}
	for _, want := range []struct {
		component string
		port      int32
		why       string
	}{
		{"worker", 53, "DNS"}, {"worker", 6379, "Redis"}, {"worker", 443, "vendors and S3"},
		{"asynqmon", 53, "DNS"}, {"asynqmon", 6379, "Redis"},
		{"enqueue", 53, "DNS"}, {"enqueue", 6379, "Redis"},
	} {
		if !egressTo(want.component, want.port) {
			t.Errorf("%s may not reach port %d (%s)", want.component, want.port, want.why)
		}
	}
	ingress := func(component string, port int32) bool {
		for _, np := range byComponent[component] {
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil && p.Port.IntVal == port {
						return true
					}
				}
			}
		}
		return false
	}
	if !ingress("asynqmon", 8080) {
		t.Error("asynqmon: no ingress on 8080")
	}
	if !ingress("redis", 6379) {
		t.Error("redis: no ingress on 6379")
	}
	for component := range map[string]bool{"worker": true, "asynqmon": true, "enqueue": true, "redis": true} {
		if len(byComponent[component]) == 0 {
			t.Errorf("%s has no NetworkPolicy", component)
		}
	}
	// Every pod that talks to Redis carries the label the Redis policy admits.
	for name, pod := range r.podTemplates() {
		c := pod.Spec.Containers[0]
		if r.envFromSecret(c, "REDIS_URL") && pod.Labels["linkharvest.io/redis-client"] != "true" {
			t.Errorf("%s uses Redis but lacks linkharvest.io/redis-client=true", name)
		}
	}
}

func checkSandbox(t *testing.T, r rendered) {
	sb := get[*appsv1.Deployment](t, r, "Deployment", "sandbox")
	c := container(t, &sb.Spec.Template, "sandbox")
	if got := strings.Join(c.Args, " "); !strings.Contains(got, "--addr 0.0.0.0:8089") {
		t.Errorf("sandbox args %q: want --addr 0.0.0.0:8089", got)
	}
	svc := get[*corev1.Service](t, r, "Service", "sandbox")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8089 {
		t.Errorf("Service sandbox ports %+v, want 8089", svc.Spec.Ports)
	}
	cfg, _ := r.configData("linkharvest-config")
	for _, k := range registry.BaseURLVars() {
		if cfg[k] != "http://sandbox:8089" {
			t.Errorf("%s=%q, want http://sandbox:8089", k, cfg[k])
		}
	}
	// Output to MinIO, into the bucket the init Job makes.
	if cfg["S3_FORCE_PATH_STYLE"] != "true" {
		t.Error("MinIO needs S3_FORCE_PATH_STYLE=true")
	}
	ep, err := url.Parse(cfg["AWS_ENDPOINT_URL_S3"])
	if err != nil || ep.Hostname() != "minio" {
		t.Errorf("AWS_ENDPOINT_URL_S3=%q, want the minio Service", cfg["AWS_ENDPOINT_URL_S3"])
	} else {
		msvc := get[*corev1.Service](t, r, "Service", "minio")
		if !slices.ContainsFunc(msvc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == ep.Port() }) {
			t.Errorf("minio Service has no port %s", ep.Port())
		}
	}
	sink, err := url.Parse(cfg["SINK_URL"])
	if err != nil || sink.Scheme != "s3" {
		t.Fatalf("SINK_URL=%q", cfg["SINK_URL"])
	}
	job := get[*batchv1.Job](t, r, "Job", "minio-bucket")
	mc := job.Spec.Template.Spec.Containers[0]
	if got := strings.Join(mc.Args, " "); !strings.HasSuffix(got, "/"+sink.Host) || !strings.Contains(got, "mb") {
		t.Errorf("bucket job args %q do not make bucket %q", got, sink.Host)
	}
	w := container(t, &get[*appsv1.Deployment](t, r, "Deployment", "worker").Spec.Template, "worker")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if !r.envFromSecret(w, k) {
			t.Errorf("worker %s must come from MinIO's Secret", k)
		}
	}
	domains, ok := r.configData("enqueue-domains")
	if !ok || !strings.Contains(domains["domains.txt"], "rows-") {
		t.Error("the sandbox ships a demo enqueue-domains ConfigMap with rows-N domains")
	}
	if sb.Spec.Replicas == nil || *sb.Spec.Replicas != 1 {
		t.Error("one sandbox replica: its limits are per process, like one vendor account")
	}
}

// TestKEDAListNamesMatchAsynq: the lists the ScaledObject watches are the ones Asynq v0.26
// fills: a pending task shows up in LLEN of the pending list, a running one in the active list.
func TestKEDAListNamesMatchAsynq(t *testing.T) {
	t.Parallel()
	r := rendered(render(t, "deploy/k8s/base"))
	so := get[*scaledObject](t, r, "ScaledObject", "worker")
	redisURL := startRedis(t)
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	aopt := asynq.RedisClientOpt{Addr: opt.Addr}

	client := asynq.NewClient(aopt)
	defer client.Close()
	for _, q := range queues {
		if _, err := client.Enqueue(asynq.NewTask("probe", nil), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	llen := func(kind, q string) int64 {
		for _, tr := range so.Spec.Triggers {
			name := tr.Metadata["listName"]
			if strings.Contains(name, "{"+q+"}") && strings.HasSuffix(name, ":"+kind) {
				n, err := rc.LLen(ctx, name).Result()
				if err != nil {
					t.Fatalf("LLEN %s: %v (is it a list?)", name, err)
				}
				return n
			}
		}
		t.Fatalf("no %s trigger for queue %s", kind, q)
		return 0
	}
	for _, q := range queues {
		if n := llen("pending", q); n != 1 {
			t.Errorf("queue %s: pending trigger list has %d entries after one enqueue, want 1", q, n)
		}
	}

	// Run one task per queue and hold it: the active lists must show them.
	started := make(chan string, len(queues))
	release := make(chan struct{})
	qm := map[string]int{}
	for _, q := range queues {
		qm[q] = 1
	}
	srv := asynq.NewServer(aopt, asynq.Config{Concurrency: len(queues), Queues: qm, LogLevel: asynq.ErrorLevel,
		ShutdownTimeout: 5 * time.Second})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		q, _ := asynq.GetQueueName(ctx)
		started <- q
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	for range queues {
		select {
		case <-started:
		case <-time.After(15 * time.Second):
			t.Fatal("tasks did not start")
		}
	}
	for _, q := range queues {
		if n := llen("active", q); n != 1 {
			t.Errorf("queue %s: active trigger list has %d entries while its task runs, want 1", q, n)
		}
		if n := llen("pending", q); n != 0 {
			t.Errorf("queue %s: pending list still has %d", q, n)
		}
	}
}

// startRedis runs a private redis-server on a free loopback port.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if requireIntegration() {
			t.Fatalf("redis-server not found: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir())
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Now()
				continue
			default:
			}
			if rc.Ping(context.Background()).Err() == nil {
				rc.Close()
				t.Cleanup(func() { cancel(); <-exited })
				return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
			}
		}
		rc.Close()
		cancel()
		<-exited
	}
	t.Fatal("could not start redis-server")
	return ""
}

// ---------------------------------------------------------------------------------------------
// Dockerfile.

var goBuildTargets = regexp.MustCompile(`\./cmd/([a-z0-9_-]+)`)

// dockerBinaries returns the programs the Dockerfile installs in /usr/local/bin.
func dockerBinaries(t *testing.T) []string {
	t.Helper()
	df, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var bins []string
	for _, m := range goBuildTargets.FindAllStringSubmatch(string(df), -1) {
		bins = append(bins, m[1])
	}
	if strings.Contains(string(df), "-o /out/httpcheck") {
		bins = append(bins, "httpcheck")
	}
	return bins
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build",
		"ARG GO_VERSION=1.26",
		"CGO_ENABLED=0",
		"-trimpath",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"COPY --from=build /out/ /usr/local/bin/",
		"USER 65532:65532",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	bins := dockerBinaries(t)
	for _, want := range []string{"worker", "enqueue", "asynqmon", "sandbox", "httpcheck"} {
		if !slices.Contains(bins, want) {
			t.Errorf("Dockerfile does not build %s", want)
		}
	}
	// The last stage's command is a program it contains.
	if m := regexp.MustCompile(`(?m)^CMD \["/usr/local/bin/([a-z]+)"\]`).FindStringSubmatch(df); m == nil || !slices.Contains(bins, m[1]) {
		t.Error("CMD must run one of the built programs from /usr/local/bin")
	}
	// The go.mod's Go version must be buildable by the builder image.
	gomod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	if m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod); m == nil || string(m[1]) != "1.26" {
		t.Errorf("go.mod wants Go %s; keep ARG GO_VERSION in step", m)
	}
	di, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".env"} {
		if !slices.Contains(strings.Fields(string(di)), want) {
			t.Errorf(".dockerignore must exclude %s", want)
		}
	}
}

// TestDockerBuildStatic checks that the Dockerfile's build makes static binaries, as
// distroless/static requires. With CGO_ENABLED=0 the Go linker links internally, hence
// statically, unless a flag asks for external linking; so by default the test checks, without
// compiling, that every program's dependencies build without cgo (`go list` in the image's
// build environment: a package that needs cgo has no files left, an error) and that the
// Dockerfile asks for no external linking; TestHTTPCheck checks a binary of this build
// configuration for an ELF interpreter. The build itself, for which a cold build cache
// compiles every dependency again (the static, trimmed configuration shares nothing with
// the suite's other builds: about four minutes on two cores), runs with
// LINKHARVEST_DOCKER_BUILD=1.
func TestDockerBuildStatic(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	var pkgs []string
	for _, b := range dockerBinaries(t) {
		if b == "httpcheck" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", b)); err != nil {
			// The program is written by someone else and may not exist yet; the image build
			// would fail until it does.
			t.Errorf("cmd/%s does not exist: `docker build` will fail", b)
			continue
		}
		pkgs = append(pkgs, "./cmd/"+b)
	}
	if len(pkgs) == 0 {
		t.Fatal("nothing to build")
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-linkmode", "-extldflags", "-buildmode", "CGO_ENABLED=1"} {
		if bytes.Contains(df, []byte(flag)) {
			t.Errorf("the Dockerfile's build sets %s: its binaries may not be static", flag)
		}
	}
	list := command(t, 5*time.Minute, "go", append([]string{"list", "-e", "-deps", "-f",
		`{{.ImportPath}}{{if .Error}} error: {{.Error}}{{end}}{{range .DepsErrors}} error: {{.}}{{end}}{{if .CgoFiles}} cgo{{end}}`}, pkgs...)...)
	list.Dir = root
	list.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", pkgs, err)
	}
	deps := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, d := range deps {
		if strings.Contains(d, " error: ") || strings.HasSuffix(d, " cgo") || d == "runtime/cgo" {
			t.Errorf("without cgo: %s", d)
		}
	}
	if len(deps) < len(pkgs) {
		t.Fatalf("go list found %d packages for %v", len(deps), pkgs)
	}
	if os.Getenv("LINKHARVEST_DOCKER_BUILD") != "1" {
		t.Log("the programs were not built; LINKHARVEST_DOCKER_BUILD=1 builds them as the Dockerfile does")
		return
	}
	bin := t.TempDir()
	cmd := command(t, 10*time.Minute, "go", append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin + "/"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, b)
	}
	for _, p := range pkgs {
		checkStatic(t, filepath.Join(bin, filepath.Base(p)))
	}
}

func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked; distroless/static has no libc", filepath.Base(path))
		}
	}
}

// TestHTTPCheck compiles the healthcheck program embedded in the Dockerfile and runs it
// against a test server, as the compose healthchecks do.
func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)COPY <<"GO" /httpcheck/main.go\n(.*?)\nGO\n`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("httpcheck heredoc not found in Dockerfile")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), append(m[1], '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module httpcheck\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	for _, args := range [][]string{{"vet", "."}, {"build", "-trimpath", "-o", "httpcheck", "."}} {
		cmd := command(t, 5*time.Minute, "go", args...)
		cmd.Dir, cmd.Env = dir, env
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, b)
		}
	}
	if out, err := command(t, time.Minute, "gofmt", "-l", dir).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("httpcheck source in the Dockerfile is not gofmt'ed")
	}
	bin := filepath.Join(dir, "httpcheck")
	checkStatic(t, bin)

	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(200)
		default:
			w.WriteHeader(503)
		}
	}))
	defer ts.Close()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{ts.URL + "/healthz"}, 0},
		{[]string{ts.URL + "/down"}, 1},
		{[]string{ts.URL + "/healthz", ts.URL + "/down"}, 1},
		{[]string{"http://127.0.0.1:1/healthz"}, 1},
		{nil, 2},
	} {
		err := command(t, time.Minute, bin, tc.args...).Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("httpcheck %v exited %d, want %d", tc.args, code, tc.code)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml, through the Compose specification's loader.

func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*composetypes.Project, error) {
	t.Helper()
	root := repoRoot(t)
	details := composetypes.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []composetypes.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}
	return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("linkharvest", true)
		o.Profiles = profiles
	})
}

func TestCompose(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ASYNQMON_BASIC_AUTH": "admin:test-only"}
	p, err := loadCompose(t, env, "*")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	want := []string{"asynqmon", "enqueue", "minio", "minio-init", "redis", "sandbox", "worker"}
	if got := slices.Sorted(func(yield func(string) bool) {
		for name := range p.Services {
			if !yield(name) {
				return
			}
		}
	}); !slices.Equal(got, want) {
		t.Fatalf("services %q, want %q", got, want)
	}
	svc := func(name string) composetypes.ServiceConfig { return p.Services[name] }
	binaries := dockerBinaries(t)

	t.Run("profiles", func(t *testing.T) {
		def, err := loadCompose(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := def.Services["enqueue"]; ok {
			t.Error("enqueue starts with a plain `docker compose up`; it belongs to the enqueue profile only")
		}
		if _, ok := def.DisabledServices["enqueue"]; !ok {
			t.Error("enqueue is not a disabled (profile) service")
		}
		for _, name := range want {
			if name != "enqueue" && len(svc(name).Profiles) > 0 {
				t.Errorf("%s has profiles %q; only enqueue should", name, svc(name).Profiles)
			}
		}
		if !slices.Equal(svc("enqueue").Profiles, []string{"enqueue"}) {
			t.Errorf("enqueue profiles %q", svc("enqueue").Profiles)
		}
	})

	t.Run("asynqmon auth required", func(t *testing.T) {
		_, err := loadCompose(t, map[string]string{})
		if err == nil || !strings.Contains(err.Error(), "ASYNQMON_BASIC_AUTH") {
			t.Fatalf("loading without ASYNQMON_BASIC_AUTH: %v; want an error naming it", err)
		}
		a := svc("asynqmon")
		if v := a.Environment["ASYNQMON_BASIC_AUTH"]; v == nil || *v != "admin:test-only" {
			t.Error("asynqmon does not get ASYNQMON_BASIC_AUTH from the environment")
		}
		if !slices.Contains(a.Command, "0.0.0.0:8080") {
			t.Errorf("asynqmon command %q: listens on all interfaces inside the container", a.Command)
		}
	})

	t.Run("worker", func(t *testing.T) {
		w := svc("worker")
		if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 3 {
			t.Errorf("worker deploy.replicas = %v, want 3", w.Deploy)
		}
		shutdown := 30 * time.Second
		if v := w.Environment["WORKER_SHUTDOWN_TIMEOUT"]; v != nil {
			if shutdown, err = time.ParseDuration(*v); err != nil {
				t.Fatal(err)
			}
		}
		if w.StopGracePeriod == nil || time.Duration(*w.StopGracePeriod) <= shutdown {
			t.Errorf("stop_grace_period %v must exceed WORKER_SHUTDOWN_TIMEOUT %v (Docker's default is 10s)", w.StopGracePeriod, shutdown)
		}
		if len(w.Ports) > 0 {
			t.Error("replicated workers cannot publish fixed host ports")
		}
		want := map[string]string{
			"REDIS_URL":           "redis://redis:6379/0",
			"AWS_ENDPOINT_URL_S3": "http://minio:9000",
			"S3_FORCE_PATH_STYLE": "true",
		}
		for _, k := range registry.BaseURLVars() {
			want[k] = "http://sandbox:8089"
		}
		for k, wantV := range want {
			if v := w.Environment[k]; v == nil || *v != wantV {
				t.Errorf("worker %s = %v, want %q", k, v, wantV)
			}
		}
		sink, err := url.Parse(*w.Environment["SINK_URL"])
		if err != nil || sink.Scheme != "s3" {
			t.Fatalf("SINK_URL %v", w.Environment["SINK_URL"])
		}
		if mc := svc("minio-init").Command; !slices.Contains(mc, "lh/"+sink.Host) {
			t.Errorf("minio-init %q does not make bucket %q", mc, sink.Host)
		}
		if v := w.Environment["AWS_SECRET_ACCESS_KEY"]; v == nil || *v != *svc("minio").Environment["MINIO_ROOT_PASSWORD"] {
			t.Error("worker's S3 secret differs from MinIO's root password")
		}
		for dep, cond := range map[string]string{
			"redis":      composetypes.ServiceConditionHealthy,
			"minio-init": composetypes.ServiceConditionCompletedSuccessfully,
			"sandbox":    composetypes.ServiceConditionHealthy,
		} {
			if d, ok := w.DependsOn[dep]; !ok || d.Condition != cond {
				t.Errorf("worker depends_on %s: %+v, want %s", dep, d, cond)
			}
		}
	})

	t.Run("healthchecks", func(t *testing.T) {
		for _, name := range []string{"redis", "minio", "sandbox", "worker", "asynqmon"} {
			hc := svc(name).HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
				t.Errorf("%s: healthcheck missing or not in exec (CMD) form: %+v", name, hc)
				continue
			}
			if hc.Interval == nil || hc.Retries == nil {
				t.Errorf("%s: healthcheck without interval/retries", name)
			}
		}
		// Our image has no shell: its healthchecks run the httpcheck the Dockerfile builds,
		// against the port the program listens on.
		for name, wantURL := range map[string]string{
			"worker":   "http://127.0.0.1:9090/healthz",
			"asynqmon": "http://127.0.0.1:8080/healthz",
			"sandbox":  "http://127.0.0.1:8089/stats",
		} {
			hc := svc(name).HealthCheck
			if hc == nil || !slices.Equal(hc.Test, composetypes.HealthCheckTest{"CMD", "/usr/local/bin/httpcheck", wantURL}) {
				t.Errorf("%s healthcheck %v, want httpcheck %s", name, hc, wantURL)
			}
		}
		if v := svc("worker").Environment["METRICS_ADDR"]; v == nil || *v != ":9090" {
			t.Error("worker METRICS_ADDR must be :9090 for its healthcheck")
		}
		// depends_on service_healthy only on services that have a healthcheck.
		for name, s := range p.Services {
			for dep, d := range s.DependsOn {
				if d.Condition == composetypes.ServiceConditionHealthy && p.Services[dep].HealthCheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			}
		}
	})

	t.Run("redis", func(t *testing.T) {
		r := svc("redis")
		cmd := strings.Join(r.Command, " ")
		for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("redis command %q lacks %q", cmd, want)
			}
		}
		if !slices.ContainsFunc(r.Volumes, func(v composetypes.ServiceVolumeConfig) bool {
			return v.Type == composetypes.VolumeTypeVolume && v.Target == "/data" && p.Volumes[v.Source].Name != ""
		}) {
			t.Error("redis /data is not a named volume")
		}
	})

	t.Run("enqueue", func(t *testing.T) {
		e := svc("enqueue")
		var input string
		for _, v := range e.Volumes {
			if v.Type == composetypes.VolumeTypeBind && filepath.ToSlash(v.Source) == filepath.ToSlash(filepath.Join(repoRoot(t), "examples", "domains.txt")) {
				input = v.Target
				if !v.ReadOnly {
					t.Error("the input mount should be read-only")
				}
			}
		}
		if input == "" {
			t.Fatalf("examples/domains.txt is not mounted: %+v", e.Volumes)
		}
		if !slices.Contains(e.Command, input) {
			t.Errorf("enqueue command %q does not read %s", e.Command, input)
		}
		if !slices.Contains(e.Command, "--wait") {
			t.Error("enqueue should --wait by default (its exit status is the job's)")
		}
		for dep, cond := range map[string]string{"redis": composetypes.ServiceConditionHealthy, "worker": composetypes.ServiceConditionHealthy} {
			if d, ok := e.DependsOn[dep]; !ok || d.Condition != cond {
				t.Errorf("enqueue depends_on %s: %+v, want %s", dep, d, cond)
			}
		}
	})

	t.Run("our image", func(t *testing.T) {
		for _, name := range []string{"sandbox", "worker", "asynqmon", "enqueue"} {
			s := svc(name)
			if s.Build == nil || s.Image == "" {
				t.Errorf("%s: needs image and build", name)
			}
			if len(s.Entrypoint) != 1 || filepath.Dir(s.Entrypoint[0]) != "/usr/local/bin" ||
				!slices.Contains(binaries, filepath.Base(s.Entrypoint[0])) {
				t.Errorf("%s: entrypoint %q is not a program the Dockerfile builds", name, s.Entrypoint)
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("%s: want read_only and cap_drop ALL", name)
			}
		}
		if got := svc("sandbox").Command; !slices.Equal(got, composetypes.ShellCommand{"--addr", "0.0.0.0:8089"}) {
			t.Errorf("sandbox command %q", got)
		}
	})

	t.Run("ports on loopback", func(t *testing.T) {
		for name, s := range p.Services {
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s on %q; bind host ports to 127.0.0.1", name, port.Published, port.HostIP)
				}
			}
		}
	})
}
