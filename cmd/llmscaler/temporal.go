package main

import (
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// searchAttributes reads the untyped search attributes of a listed execution.
type searchAttributes map[string]*commonpb.Payload

func searchAttributesOf(sa *commonpb.SearchAttributes) searchAttributes {
	return searchAttributes(sa.GetIndexedFields())
}

func (s searchAttributes) decode(name string, v any) bool {
	p, ok := s[name]
	if !ok {
		return false
	}
	return converter.GetDefaultDataConverter().FromPayload(p, v) == nil
}

func (s searchAttributes) keyword(name string) string {
	var v string
	s.decode(name, &v)
	return v
}

func (s searchAttributes) int(name string) int64 {
	var v int64
	s.decode(name, &v)
	return v
}

func (s searchAttributes) bool(name string) bool {
	var v bool
	s.decode(name, &v)
	return v
}

func (s searchAttributes) time(name string) time.Time {
	var v time.Time
	s.decode(name, &v)
	return v
}

// quietLogger drops the Temporal SDK's log lines from the CLI's output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
