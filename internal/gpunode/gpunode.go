// Package gpunode builds simulated GPU nodes for kwok clusters.
//
// Everything that creates nodes (the kwok node provider, the AWS emulator, tests) goes through Build, so a
// simulated node looks the same wherever it came from: the labels and providerID of an EKS GPU node, the
// annotations kwok and metrics-server need, and the boot timing of real hardware. Timing is written as
// absolute timestamps in annotations and carried out by the kwok stages in deploy/dev/kwok: the node turns
// Ready at ReadyAt and advertises its GPUs at GPUsAllocatableAt, the way a real GPU node reports Ready about a
// minute before the NVIDIA device plugin registers. Because kwok does the waiting, the timing survives a
// restart of whoever created the node.
package gpunode

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known names on simulated nodes.
const (
	// ResourceGPU is the extended resource the NVIDIA device plugin advertises.
	ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

	LabelInstanceType = "node.kubernetes.io/instance-type"
	LabelZone         = "topology.kubernetes.io/zone"
	LabelRegion       = "topology.kubernetes.io/region"
	LabelHostname     = "kubernetes.io/hostname"
	// LabelNodeGroup names the node group (ASG or kwok group) a node belongs to.
	LabelNodeGroup = "llmscaler.dev/node-group"
	// LabelGPUProduct and LabelGPUCount mirror NVIDIA GPU feature discovery.
	LabelGPUProduct = "nvidia.com/gpu.product"
	LabelGPUCount   = "nvidia.com/gpu.count"

	// AnnotationKwokNode makes the kwok controller manage the node.
	AnnotationKwokNode = "kwok.x-k8s.io/node"
	// AnnotationMetricsPath tells metrics-server where kwok serves the node's resource metrics.
	AnnotationMetricsPath = "metrics.k8s.io/resource-metrics-path"

	// AnnotationReadyAt holds the RFC 3339 time at which the kwok stage marks the node Ready.
	AnnotationReadyAt = "sim.llmscaler.dev/ready-at"
	// AnnotationGPUs holds the GPU count the node advertises once its device plugin is up.
	AnnotationGPUs = "sim.llmscaler.dev/gpus"
	// AnnotationGPUsAllocatableAt holds the RFC 3339 time at which the kwok stage makes the GPUs allocatable.
	AnnotationGPUsAllocatableAt = "sim.llmscaler.dev/gpus-allocatable-at"
	// AnnotationNeverReady keeps the node NotReady forever: an instance that never joins properly.
	AnnotationNeverReady = "sim.llmscaler.dev/never-ready"
)

// InstanceType describes the GPU shape of an EC2 instance type.
type InstanceType struct {
	Name       string
	GPUs       int
	GPUProduct string
	CPU        string
	Memory     string
}

// instanceTypes lists the GPU instance types a simulated node can have (figures from the EC2 documentation).
var instanceTypes = map[string]InstanceType{
	"g5.xlarge":    {"g5.xlarge", 1, "NVIDIA-A10G", "4", "16Gi"},
	"g5.2xlarge":   {"g5.2xlarge", 1, "NVIDIA-A10G", "8", "32Gi"},
	"g5.12xlarge":  {"g5.12xlarge", 4, "NVIDIA-A10G", "48", "192Gi"},
	"g5.48xlarge":  {"g5.48xlarge", 8, "NVIDIA-A10G", "192", "768Gi"},
	"g6.xlarge":    {"g6.xlarge", 1, "NVIDIA-L4", "4", "16Gi"},
	"g6.12xlarge":  {"g6.12xlarge", 4, "NVIDIA-L4", "48", "192Gi"},
	"g6e.xlarge":   {"g6e.xlarge", 1, "NVIDIA-L40S", "4", "32Gi"},
	"p4d.24xlarge": {"p4d.24xlarge", 8, "NVIDIA-A100-SXM4-40GB", "96", "1152Gi"},
	"p5.48xlarge":  {"p5.48xlarge", 8, "NVIDIA-H100-80GB-HBM3", "192", "2048Gi"},
}

// LookupInstanceType returns the GPU shape of a known instance type.
func LookupInstanceType(name string) (InstanceType, error) {
	t, ok := instanceTypes[name]
	if !ok {
		known := slices.Sorted(maps.Keys(instanceTypes))
		return InstanceType{}, fmt.Errorf("unknown GPU instance type %q (known: %s)", name, strings.Join(known, ", "))
	}
	return t, nil
}

// Spec describes one simulated GPU node.
type Spec struct {
	// Name of the Node; NameForInstance gives the EKS-style name of an instance.
	Name string
	// InstanceID is the EC2 instance ID that appears in the providerID.
	InstanceID   string
	InstanceType string
	Zone         string
	// NodeGroup is written to LabelNodeGroup.
	NodeGroup string
	// ReadyAt is when the node turns Ready; zero means at once.
	ReadyAt time.Time
	// GPUsAllocatableAt is when the node advertises its GPUs; zero means together with Ready.
	GPUsAllocatableAt time.Time
	// NeverReady simulates an instance that boots but never becomes a Ready node.
	NeverReady bool
	Labels     map[string]string
	Taints     []corev1.Taint
}

// ProviderID returns the providerID of an EKS node: aws:///<zone>/<instance-id>.
func ProviderID(zone, instanceID string) string {
	return "aws:///" + zone + "/" + instanceID
}

// ParseProviderID splits an aws:///<zone>/<instance-id> providerID.
func ParseProviderID(providerID string) (zone, instanceID string, err error) {
	rest, ok := strings.CutPrefix(providerID, "aws:///")
	if !ok {
		return "", "", fmt.Errorf("providerID %q: want aws:///<zone>/<instance-id>", providerID)
	}
	zone, instanceID, ok = strings.Cut(rest, "/")
	if !ok || zone == "" || !strings.HasPrefix(instanceID, "i-") || strings.Contains(instanceID, "/") {
		return "", "", fmt.Errorf("providerID %q: want aws:///<zone>/<instance-id>", providerID)
	}
	return zone, instanceID, nil
}

// NameForInstance derives a stable EKS-style node name (ip-10-a-b-c.ec2.internal) from an instance ID.
func NameForInstance(instanceID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(instanceID))
	v := h.Sum32()
	return fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", (v>>16)&0xff, (v>>8)&0xff, v&0xff)
}

// Build returns the Node object for a spec. The node is created NotReady; the kwok stages make it Ready at
// ReadyAt and its GPUs allocatable at GPUsAllocatableAt.
func Build(s Spec) (*corev1.Node, error) {
	if s.Name == "" || s.InstanceID == "" || s.Zone == "" {
		return nil, fmt.Errorf("simulated node needs a name, an instance ID and a zone (got %q, %q, %q)", s.Name, s.InstanceID, s.Zone)
	}
	it, err := LookupInstanceType(s.InstanceType)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		LabelInstanceType:                  it.Name,
		"beta.kubernetes.io/instance-type": it.Name,
		LabelZone:                          s.Zone,
		LabelRegion:                        regionOf(s.Zone),
		LabelHostname:                      s.Name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"type":                             "kwok",
		LabelGPUProduct:                    it.GPUProduct,
		LabelGPUCount:                      strconv.Itoa(it.GPUs),
	}
	if s.NodeGroup != "" {
		labels[LabelNodeGroup] = s.NodeGroup
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	annotations := map[string]string{
		AnnotationKwokNode:             "fake",
		"node.alpha.kubernetes.io/ttl": "0",
		AnnotationMetricsPath:          "/metrics/nodes/" + s.Name + "/metrics/resource",
		AnnotationGPUs:                 strconv.Itoa(it.GPUs),
	}
	if !s.ReadyAt.IsZero() {
		annotations[AnnotationReadyAt] = s.ReadyAt.UTC().Format(time.RFC3339Nano)
	}
	if !s.GPUsAllocatableAt.IsZero() {
		annotations[AnnotationGPUsAllocatableAt] = s.GPUsAllocatableAt.UTC().Format(time.RFC3339Nano)
	}
	if s.NeverReady {
		annotations[AnnotationNeverReady] = "true"
	}
	resources := func(gpus int) corev1.ResourceList {
		return corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse(it.CPU),
			corev1.ResourceMemory:           resource.MustParse(it.Memory),
			corev1.ResourcePods:             resource.MustParse("110"),
			corev1.ResourceEphemeralStorage: resource.MustParse("200Gi"),
			ResourceGPU:                     *resource.NewQuantity(int64(gpus), resource.DecimalSI),
		}
	}
	// GPUs start at zero: the kwok stage "node-gpu-allocatable" raises them to the annotation's count.
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels, Annotations: annotations},
		Spec: corev1.NodeSpec{
			ProviderID: ProviderID(s.Zone, s.InstanceID),
			Taints:     s.Taints,
		},
		Status: corev1.NodeStatus{
			Capacity:    resources(0),
			Allocatable: resources(0),
			Phase:       corev1.NodePending,
		},
	}, nil
}

// GPUsAllocatable returns the node's allocatable GPUs.
func GPUsAllocatable(n *corev1.Node) int64 {
	q, ok := n.Status.Allocatable[ResourceGPU]
	if !ok {
		return 0
	}
	return q.Value()
}

// IsReady reports whether the node's Ready condition is True.
func IsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func regionOf(zone string) string {
	// us-east-1a -> us-east-1: AWS zone names are the region plus one letter.
	if len(zone) > 1 {
		last := zone[len(zone)-1]
		if last >= 'a' && last <= 'z' {
			return zone[:len(zone)-1]
		}
	}
	return zone
}
