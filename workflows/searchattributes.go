package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// Search attributes every autoscaler run keeps current, so runs can be filtered in the Web UI and listed by
// the CLI (`model list`). They must be registered on the server: SearchAttributeDefinitions lists them with
// their types for the dev server's --search-attribute flags and for `temporal operator search-attribute create`.
var (
	AttrModelName       = temporal.NewSearchAttributeKeyKeyword("ModelName")
	AttrScalingState    = temporal.NewSearchAttributeKeyKeyword("ScalingState")
	AttrCurrentReplicas = temporal.NewSearchAttributeKeyInt64("CurrentReplicas")
	AttrDesiredReplicas = temporal.NewSearchAttributeKeyInt64("DesiredReplicas")
	AttrPaused          = temporal.NewSearchAttributeKeyBool("Paused")
	AttrLastScaleTime   = temporal.NewSearchAttributeKeyTime("LastScaleTime")
)

// SearchAttributeDefinition names a search attribute and its server-side type.
type SearchAttributeDefinition struct {
	Name string
	Type string // Keyword, Int, Bool, Datetime: the names the temporal CLI takes
}

// SearchAttributeDefinitions lists the attributes to register on the Temporal server.
var SearchAttributeDefinitions = []SearchAttributeDefinition{
	{AttrModelName.GetName(), "Keyword"},
	{AttrScalingState.GetName(), "Keyword"},
	{AttrCurrentReplicas.GetName(), "Int"},
	{AttrDesiredReplicas.GetName(), "Int"},
	{AttrPaused.GetName(), "Bool"},
	{AttrLastScaleTime.GetName(), "Datetime"},
}
