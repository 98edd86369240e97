package gpunode

import (
	"strings"
	"testing"
	"time"
)

func TestProviderIDRoundTrip(t *testing.T) {
	id := ProviderID("us-west-2b", "i-0abc123def4567890")
	if id != "aws:///us-west-2b/i-0abc123def4567890" {
		t.Fatalf("ProviderID = %q", id)
	}
	zone, inst, err := ParseProviderID(id)
	if err != nil || zone != "us-west-2b" || inst != "i-0abc123def4567890" {
		t.Fatalf("ParseProviderID(%q) = %q, %q, %v", id, zone, inst, err)
	}
	for _, bad := range []string{"", "aws://us-west-2b/i-1", "aws:///us-west-2b", "aws:///us-west-2b/node-1", "gce:///z/i-1", "aws:///z/i-1/x"} {
		if _, _, err := ParseProviderID(bad); err == nil {
			t.Errorf("ParseProviderID(%q) accepted a malformed providerID", bad)
		}
	}
}

func TestBuildDescribesAnEKSGPUNodeWithDelayedGPUs(t *testing.T) {
	ready := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n, err := Build(Spec{
		Name: "ip-10-0-0-1.ec2.internal", InstanceID: "i-01", InstanceType: "g5.12xlarge", Zone: "us-east-1c",
		NodeGroup: "gpu-pool-a", ReadyAt: ready, GPUsAllocatableAt: ready.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{
		n.Labels[LabelInstanceType]:                "g5.12xlarge",
		n.Labels[LabelZone]:                        "us-east-1c",
		n.Labels[LabelRegion]:                      "us-east-1",
		n.Labels[LabelNodeGroup]:                   "gpu-pool-a",
		n.Labels[LabelGPUCount]:                    "4",
		n.Spec.ProviderID:                          "aws:///us-east-1c/i-01",
		n.Annotations[AnnotationKwokNode]:          "fake",
		n.Annotations[AnnotationMetricsPath]:       "/metrics/nodes/ip-10-0-0-1.ec2.internal/metrics/resource",
		n.Annotations[AnnotationGPUs]:              "4",
		n.Annotations[AnnotationReadyAt]:           "2026-01-02T03:04:05Z",
		n.Annotations[AnnotationGPUsAllocatableAt]: "2026-01-02T03:05:05Z",
	}
	for got, want := range checks {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if g := GPUsAllocatable(n); g != 0 {
		t.Errorf("a new node advertises %d GPUs; the kwok stage raises them later, so want 0", g)
	}
	if IsReady(n) {
		t.Error("a new node is Ready; the kwok stage makes it Ready")
	}
}

func TestBuildRejectsUnknownInstanceTypesByName(t *testing.T) {
	_, err := Build(Spec{Name: "n", InstanceID: "i-1", InstanceType: "m5.large", Zone: "us-east-1a"})
	if err == nil || !strings.Contains(err.Error(), `"m5.large"`) || !strings.Contains(err.Error(), "g5.xlarge") {
		t.Fatalf("want an error naming the type and the known ones, got %v", err)
	}
}

func TestNameForInstanceIsStableAndEKSShaped(t *testing.T) {
	a, b := NameForInstance("i-0123"), NameForInstance("i-0123")
	if a != b || !strings.HasPrefix(a, "ip-10-") || !strings.HasSuffix(a, ".ec2.internal") {
		t.Fatalf("NameForInstance gave %q then %q", a, b)
	}
	if NameForInstance("i-0124") == a {
		t.Fatal("two instances got the same node name")
	}
}
