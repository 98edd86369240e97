// Package kwok is a node provider for local clusters: its "instances" are simulated GPU nodes that kwok
// runs, built by internal/gpunode, with a boot delay before they turn Ready and a further delay before their
// GPUs are allocatable. Cluster Autoscaler and Karpenter ship the same kind of provider for testing.
//
// The group's state lives in the cluster: its members are the Nodes labelled with the group's name, so the
// provider keeps nothing in memory and survives worker restarts.
package kwok

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/nodegroup"
)

// AnnotationProtected marks a simulated node as protected from scale-in, like an ASG instance's
// ProtectedFromScaleIn.
const AnnotationProtected = "llmscaler.dev/scale-in-protected"

// Provider manages groups of simulated GPU nodes.
type Provider struct {
	kube   kubernetes.Interface
	groups map[string]Group
	now    func() time.Time
}

// Group configures one simulated node group.
type Group struct {
	config.KwokGroup
	// NeverReady makes new nodes boot but never turn Ready: a broken image, for fault-injection tests.
	NeverReady bool
}

var _ nodegroup.Provider = (*Provider)(nil)

// New returns a provider for the given groups. Instance types are checked here, so a typo fails at start.
func New(kube kubernetes.Interface, groups []Group) (*Provider, error) {
	p := &Provider{kube: kube, groups: map[string]Group{}, now: time.Now}
	for _, g := range groups {
		if _, err := gpunode.LookupInstanceType(g.InstanceType); err != nil {
			return nil, fmt.Errorf("kwok group %s: %w", g.Name, err)
		}
		if len(g.Zones) == 0 {
			g.Zones = []string{"us-east-1a"}
		}
		p.groups[g.Name] = g
	}
	return p, nil
}

func (p *Provider) group(name string) (Group, error) {
	g, ok := p.groups[name]
	if !ok {
		known := make([]string, 0, len(p.groups))
		for k := range p.groups {
			known = append(known, k)
		}
		slices.Sort(known)
		return Group{}, cloudapi.Errorf(cloudapi.NotFound, "kwok node group %q is not configured (configured: %s)", name, strings.Join(known, ", "))
	}
	return g, nil
}

// members lists the group's nodes that are not being deleted, oldest first.
func (p *Provider) members(ctx context.Context, g Group) ([]corev1.Node, error) {
	list, err := p.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: gpunode.LabelNodeGroup + "=" + g.Name})
	if err != nil {
		return nil, fmt.Errorf("listing nodes of group %s: %w", g.Name, err)
	}
	var out []corev1.Node
	for _, n := range list.Items {
		if n.DeletionTimestamp == nil {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Node) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Describe implements nodegroup.Provider.
func (p *Provider) Describe(ctx context.Context, name string) (nodegroup.Group, error) {
	g, err := p.group(name)
	if err != nil {
		return nodegroup.Group{}, err
	}
	nodes, err := p.members(ctx, g)
	if err != nil {
		return nodegroup.Group{}, err
	}
	out := nodegroup.Group{Name: g.Name, Min: g.Min, Max: g.Max, Desired: int32(len(nodes)), InstanceType: g.InstanceType}
	for _, n := range nodes {
		zone, id, err := gpunode.ParseProviderID(n.Spec.ProviderID)
		if err != nil {
			continue
		}
		state := "Pending"
		if gpunode.IsReady(&n) {
			state = "InService"
		}
		out.Instances = append(out.Instances, nodegroup.Instance{ID: id, Zone: zone, State: state, Protected: n.Annotations[AnnotationProtected] == "true"})
	}
	return out, nil
}

// SetDesiredSize implements nodegroup.Provider: it creates the missing nodes, or removes the newest ones
// (not-ready first) down to n.
func (p *Provider) SetDesiredSize(ctx context.Context, name string, n int32) error {
	g, err := p.group(name)
	if err != nil {
		return err
	}
	if n < g.Min || n > g.Max {
		return cloudapi.Errorf(cloudapi.OutOfBounds, "size %d of group %s is outside its bounds [%d, %d]", n, g.Name, g.Min, g.Max)
	}
	nodes, err := p.members(ctx, g)
	if err != nil {
		return err
	}
	for i := int32(len(nodes)); i < n; i++ {
		if err := p.createNode(ctx, g, int(i)); err != nil {
			return err
		}
	}
	if excess := len(nodes) - int(n); excess > 0 {
		// Like an ASG lowering its desired capacity: newest first, those not yet in service before others.
		slices.SortStableFunc(nodes, func(a, b corev1.Node) int {
			if ra, rb := gpunode.IsReady(&a), gpunode.IsReady(&b); ra != rb {
				if ra {
					return 1
				}
				return -1
			}
			return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
		})
		for _, node := range nodes {
			if excess == 0 {
				break
			}
			if node.Annotations[AnnotationProtected] == "true" {
				continue
			}
			if err := p.deleteNode(ctx, node.Name); err != nil {
				return err
			}
			excess--
		}
	}
	return nil
}

func (p *Provider) createNode(ctx context.Context, g Group, index int) error {
	id, err := newInstanceID()
	if err != nil {
		return err
	}
	now := p.now()
	readyAt := now.Add(g.BootDelay.D())
	node, err := gpunode.Build(gpunode.Spec{
		Name: gpunode.NameForInstance(id), InstanceID: id, InstanceType: g.InstanceType,
		Zone: g.Zones[index%len(g.Zones)], NodeGroup: g.Name,
		ReadyAt: readyAt, GPUsAllocatableAt: readyAt.Add(g.GPUDelay.D()), NeverReady: g.NeverReady,
	})
	if err != nil {
		return err
	}
	if _, err := p.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating node %s for group %s: %w", node.Name, g.Name, err)
	}
	return nil
}

// TerminateInstance implements nodegroup.Provider.
func (p *Provider) TerminateInstance(ctx context.Context, name, instanceID string) error {
	g, err := p.group(name)
	if err != nil {
		return err
	}
	nodes, err := p.members(ctx, g)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if _, id, err := gpunode.ParseProviderID(n.Spec.ProviderID); err == nil && id == instanceID {
			if n.Annotations[AnnotationProtected] == "true" {
				return cloudapi.Errorf(cloudapi.Protected, "instance %s (node %s) is protected from scale-in", instanceID, n.Name)
			}
			if int32(len(nodes))-1 < g.Min {
				return cloudapi.Errorf(cloudapi.OutOfBounds, "removing %s would take group %s below its minimum %d", instanceID, g.Name, g.Min)
			}
			return p.deleteNode(ctx, n.Name)
		}
	}
	return nil // already gone
}

func (p *Provider) deleteNode(ctx context.Context, name string) error {
	err := p.kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	return nil
}

func newInstanceID() (string, error) {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "i-" + hex.EncodeToString(b)[:17], nil
}
