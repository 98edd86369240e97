package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/policy"
)

func repoRoot(t testing.TB) string {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool runs one of the stack's binaries (kubectl, helm) against the stack's cluster.
func tool(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "bin", name), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+testbed.Shared(t).Kube.Kubeconfig)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func apply(t testing.TB, manifests []byte) {
	t.Helper()
	tool(t, manifests, "kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-")
}

type access struct {
	verb, group, resource, subresource, namespace string
}

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r = a.group + "/" + r
	}
	ns := a.namespace
	if ns == "" {
		ns = "(cluster)"
	}
	return a.verb + " " + r + " in " + ns
}

// can asks the real authorizer (a SubjectAccessReview) whether user may do a.
func can(t testing.TB, kube kubernetes.Interface, user string, a access) bool {
	t.Helper()
	sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace,
		},
	}}
	res, err := kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status.Allowed
}

// workerAccess is every call the worker makes, in a model namespace ns.
func workerAccess(ns string) []access {
	return []access{
		{"get", "", "nodes", "", ""}, {"list", "", "nodes", "", ""}, {"patch", "", "nodes", "", ""}, {"delete", "", "nodes", "", ""},
		{"get", "", "pods", "", ""}, {"list", "", "pods", "", ""}, {"create", "", "pods", "eviction", "kube-system"},
		{"get", "apps", "daemonsets", "", "kube-system"},
		{"get", "apps", "deployments", "", ns}, {"get", "apps", "deployments", "scale", ns}, {"update", "apps", "deployments", "scale", ns},
		{"patch", "", "pods", "", ns}, {"list", "discovery.k8s.io", "endpointslices", "", ns}, {"list", "metrics.k8s.io", "pods", "", ns},
	}
}

// forbidden is what the worker must not be able to do.
func forbidden(ns, other string) []access {
	return []access{
		{"get", "", "secrets", "", ns}, {"list", "", "secrets", "", ""}, {"get", "apps", "deployments", "", other},
		{"update", "apps", "deployments", "scale", other}, {"delete", "", "pods", "", ns}, {"create", "", "nodes", "", ""},
		{"update", "apps", "deployments", "", ns}, {"list", "", "configmaps", "", ns},
	}
}

// The kustomize base and the Helm chart apply to the real apiserver, and their RBAC, checked by the real
// authorizer, allows every call the worker makes and denies what it must not touch.
func TestDeployManifestsApplyAndGrantExactlyTheWorkersCalls(t *testing.T) {
	t.Parallel()
	kube := testbed.KubeClient(t)
	root := repoRoot(t)
	modelNS, otherNS := testbed.Namespace(t), testbed.Namespace(t)

	// Kustomize: the worker base (namespace llmscaler) and a model namespace's binding.
	base := tool(t, nil, "kubectl", "kustomize", filepath.Join(root, "deploy", "kustomize", "base"))
	apply(t, noWorkerPods(t, base))
	binding := tool(t, nil, "kubectl", "kustomize", filepath.Join(root, "deploy", "kustomize", "model-namespace"))
	apply(t, bytes.ReplaceAll(binding, []byte("namespace: models"), []byte("namespace: "+modelNS)))
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), "llmscaler", metav1.DeleteOptions{})
		_ = kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), "llmscaler-nodes", metav1.DeleteOptions{})
	})
	if _, err := kube.AppsV1().Deployments("llmscaler").Get(context.Background(), "llmscaler-worker", metav1.GetOptions{}); err != nil {
		t.Fatalf("the kustomize base's Deployment: %v", err)
	}
	user := "system:serviceaccount:llmscaler:llmscaler"
	for _, a := range workerAccess(modelNS) {
		if !can(t, kube, user, a) {
			t.Errorf("kustomize: the worker may not %s", a)
		}
	}
	for _, a := range forbidden(modelNS, otherNS) {
		if can(t, kube, user, a) {
			t.Errorf("kustomize: the worker may %s, which it must not", a)
		}
	}

	// Helm: a release in its own namespace, bound to the model namespace only.
	chartNS := testbed.Namespace(t)
	rendered := tool(t, nil, "helm", "template", "t"+chartNS[len(chartNS)-6:], filepath.Join(root, "deploy", "helm", "llmscaler"),
		"--namespace", chartNS, "--set", "modelNamespaces={"+modelNS+"}", "--set", "serviceAccount.roleArn=arn:aws:iam::123456789012:role/x",
		"--set", "replicas=0") // no worker pods, as noWorkerPods for kustomize
	apply(t, rendered)
	user = "system:serviceaccount:" + chartNS + ":llmscaler"
	for _, a := range workerAccess(modelNS) {
		if !can(t, kube, user, a) {
			t.Errorf("helm: the worker may not %s", a)
		}
	}
	for _, a := range forbidden(modelNS, otherNS) {
		if can(t, kube, user, a) {
			t.Errorf("helm: the worker may %s, which it must not", a)
		}
	}
	sa, err := kube.CoreV1().ServiceAccounts(chartNS).Get(context.Background(), "llmscaler", metav1.GetOptions{})
	if err != nil || sa.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/x" {
		t.Fatalf("the chart's service account lacks the IRSA annotation: %v %v", sa.Annotations, err)
	}
}

// The example model (LoRAX Deployment, Service, PDB) applies, and its spec loads.
func TestExampleModelApplies(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	ns := testbed.Namespace(t)
	out := tool(t, nil, "kubectl", "kustomize", filepath.Join(root, "deploy", "examples", "lorax-local"))
	out = bytes.ReplaceAll(out, []byte("namespace: models"), []byte("namespace: "+ns))
	var kept [][]byte
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		if !bytes.Contains(doc, []byte("kind: Namespace")) {
			kept = append(kept, doc)
		}
	}
	apply(t, bytes.Join(kept, []byte("\n---\n")))
	kube := testbed.KubeClient(t)
	d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), "lorax-llama-3-8b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 90 {
		t.Fatalf("terminationGracePeriodSeconds %v: must exceed LoRAX's 90 s drain", g)
	}
	c := d.Spec.Template.Spec.Containers[0]
	// LoRAX serves /info once its model is loaded, with no inference; /health queues a generation (it
	// fails under load) and there is no /startup. Liveness is the socket: a restart cuts off every request.
	if c.StartupProbe == nil || c.StartupProbe.HTTPGet == nil || c.StartupProbe.HTTPGet.Path != "/info" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/info" ||
		c.LivenessProbe == nil || c.LivenessProbe.TCPSocket == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		t.Fatalf("probes or preStop: %+v", c)
	}
	if _, err := kube.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), "lorax-llama-3-8b", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadModelSpec(filepath.Join(root, "deploy", "examples", "lorax", "model.yaml"), nil); err != nil {
		t.Fatal(err)
	}
}

// A scale-out and a scale-in run with the worker's Kubernetes calls made as the chart's service account:
// every call the sagas make is allowed by the RBAC we ship.
func TestSagasRunWithTheShippedRBAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1})
	chartNS := testbed.Namespace(t)
	rendered := tool(t, nil, "helm", "template", "r"+chartNS[len(chartNS)-6:], filepath.Join(repoRoot(t), "deploy", "helm", "llmscaler"),
		"--namespace", chartNS, "--set", "modelNamespaces={"+e.ns+"}", "--set", "kwokNodes=true", "--set", "replicas=0") // no worker pods, as noWorkerPods for kustomize
	apply(t, rendered)
	rc := testbed.RESTConfig(t)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + chartNS + ":llmscaler",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNS, "system:authenticated"}}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := metricsclient.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	// Every activity (and the kwok provider) makes its calls as the service account.
	e.startWorkerWith(e.depsWith(kube, mc))
	e.setLoad(5)
	e.start()
	e.setLoad(10)
	e.waitFor("the scale-out", 90*time.Second, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	e.setLoad(5)
	e.waitFor("the scale-in", 90*time.Second, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleIn && a.Result != "running"
	})
	for _, a := range e.status().Actions {
		if a.Result != "succeeded" {
			t.Fatalf("with the shipped RBAC: %+v", a)
		}
	}
	if s := e.status(); s.LastError != "" {
		t.Fatalf("observing with the shipped RBAC: %s", s.LastError)
	}
}

// noWorkerPods sets the worker Deployment's replicas to 0 in rendered manifests. These tests need its
// RBAC and the Deployment object, not its pods; pods would be scheduled onto the node groups of tests
// running in parallel on the shared cluster, and a drain there would wait out their 60 s grace (once a
// CI run's scale-in timed out on such a pod).
func noWorkerPods(t *testing.T, manifests []byte) []byte {
	t.Helper()
	replicas := regexp.MustCompile(`(?m)^( +replicas:) \d+$`)
	if n := len(replicas.FindAll(manifests, -1)); n != 1 {
		t.Fatalf("%d replicas fields in the rendered manifests, want the worker Deployment's one", n)
	}
	return replicas.ReplaceAll(manifests, []byte("$1 0"))
}
