package activities

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// A pod's request is known only when every container states one, as for the HPA: a sidecar without a CPU
// request leaves the pod's unknown (0, so the utilization metric is invalid), not the model container's
// alone, which would read the pod's utilization high.
func TestAPodsRequestIsKnownOnlyWhenEveryContainerStatesOne(t *testing.T) {
	container := func(cpu, memory string) corev1.Container {
		c := corev1.Container{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}}}
		if cpu != "" {
			c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if memory != "" {
			c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
		}
		return c
	}
	both := podOf(&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{container("2", "1Gi"), container("500m", "1Gi")}}})
	if both.CPURequest != 2.5 || both.MemoryRequest != 2*1024*1024*1024 {
		t.Errorf("every container states its requests: %v CPU, %v bytes", both.CPURequest, both.MemoryRequest)
	}
	sidecar := podOf(&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{container("2", "1Gi"), container("", "1Gi")}}})
	if sidecar.CPURequest != 0 || sidecar.MemoryRequest != 2*1024*1024*1024 {
		t.Errorf("a container without a CPU request: %v CPU (want 0, unknown), %v bytes", sidecar.CPURequest, sidecar.MemoryRequest)
	}
}
