// Package config holds the model spec (what to scale and how) and the worker config (how to reach Temporal,
// Kubernetes, AWS and Prometheus), and loads both with viper from a YAML file, environment variables and
// flags; a flag beats an environment variable, which beats the file. Loading reports every problem at once,
// each named by its field path: "spec.metrics[1].pods.target.averageValue: must be > 0".
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/llmscaler/llmscaler/policy"
)

// Problems is every problem found in a config, each with its field path.
type Problems []Problem

// Problem is one invalid field.
type Problem struct {
	Path    string
	Message string
}

func (p Problems) Error() string {
	lines := make([]string, len(p))
	for i, pr := range p {
		lines[i] = pr.Path + ": " + pr.Message
	}
	return strings.Join(lines, "\n")
}

// problems collects problems while validating.
type problems struct{ list Problems }

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return p.list
}

// decode turns viper's merged settings into out. Field names are matched without regard to case (viper
// lowercases keys), unknown fields are errors, "500m"-style quantities become numbers, "90s" becomes a
// duration. Decoding errors come back as Problems with the fields' real (camelCase) paths.
func decode(v *viper.Viper, out any) error {
	var md mapstructure.Metadata
	err := v.Unmarshal(out, func(c *mapstructure.DecoderConfig) {
		c.TagName = "json"
		c.Squash = true
		c.ErrorUnused = true
		c.Metadata = &md
		c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.TextUnmarshallerHookFunc(),
			quantityHook,
			strictHook,
		)
	})
	if err == nil {
		return nil
	}
	var p problems
	for _, msg := range decodeMessages(err) {
		if m := unusedKeys.FindStringSubmatch(msg); m != nil {
			// Every unknown key, not the first: two typos in a section are two problems.
			for _, key := range strings.Split(m[2], ", ") {
				path := key
				if m[1] != "" {
					path = m[1] + "." + key
				}
				text := "unknown field"
				if s := suggestField(reflect.TypeOf(out), path); s != "" {
					text += " (did you mean " + s + "?)"
				}
				p.add(canonicalPath(reflect.TypeOf(out), path), "%s", text)
			}
			continue
		}
		path, text := splitDecodeMessage(msg)
		p.add(canonicalPath(reflect.TypeOf(out), path), "%s", text)
	}
	return p.err()
}

var durationType = reflect.TypeFor[policy.Duration]()

// strictHook refuses what viper's weakly typed decoding would turn into something else without a word: a
// bare number for a duration (YAML's 120 would be 120 nanoseconds: write 120s), a fraction or a boolean for
// a whole number (7.9 would be 7, true 1), a number that is not finite (.inf, .nan), and a single mapping
// where a list belongs (it would be a list of one). Strings stay weakly typed: environment variables and
// flags are strings.
func strictHook(from, to reflect.Type, data any) (any, error) {
	number := func(k reflect.Kind) bool {
		return (k >= reflect.Int && k <= reflect.Uint64) || k == reflect.Float32 || k == reflect.Float64
	}
	if to == durationType && number(from.Kind()) {
		return nil, fmt.Errorf("%v is a number without a unit: write a duration such as %vs or %vm", data, data, data)
	}
	switch k := to.Kind(); {
	case k >= reflect.Int && k <= reflect.Uint64:
		switch from.Kind() {
		case reflect.Bool:
			return nil, fmt.Errorf("%v is not a whole number", data)
		case reflect.Float32, reflect.Float64:
			if f := reflect.ValueOf(data).Float(); f != math.Trunc(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%v is not a whole number", data)
			}
		}
	case k == reflect.Float32 || k == reflect.Float64:
		switch from.Kind() {
		case reflect.Bool:
			return nil, fmt.Errorf("%v is not a number", data)
		case reflect.Float32, reflect.Float64:
			if f := reflect.ValueOf(data).Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%v is not a finite number", data)
			}
		}
	case k == reflect.Slice && from.Kind() == reflect.Map:
		return nil, errors.New("a single mapping where a list belongs: write each item on a line starting with -")
	}
	return data, nil
}

// quantityHook reads Kubernetes quantities ("500m", "1Gi", "2") into float64 fields.
func quantityHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Float64 || from.Kind() != reflect.String {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a finite number", s)
		}
		return f, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a number or a Kubernetes quantity (such as 500m or 2Gi)", s)
	}
	return q.AsApproximateFloat64(), nil
}

func decodeMessages(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "* "))
			if line == "" || strings.HasSuffix(line, "error(s) decoding:") || strings.HasPrefix(line, "decoding failed due to") {
				continue
			}
			out = append(out, line)
		}
	}
	walk(err)
	slices.Sort(out)
	return slices.Compact(out)
}

var (
	unusedKeys   = regexp.MustCompile(`^'([^']*)' has invalid keys: (.*)$`)
	quotedPrefix = regexp.MustCompile(`^'([^']*)' (.*)$`)
	decodingPath = regexp.MustCompile(`^decoding '([^']*)': (.*)$`)
)

// splitDecodeMessage separates mapstructure's "'spec.maxreplicas' expected type ..." into path and text.
func splitDecodeMessage(msg string) (string, string) {
	if m := decodingPath.FindStringSubmatch(msg); m != nil {
		return m[1], m[2]
	}
	if m := quotedPrefix.FindStringSubmatch(msg); m != nil {
		return m[1], m[2]
	}
	return "", msg
}

// canonicalPath rewrites a lowercased path ("spec.metrics[0].pods.target.averagevalue") with the struct's
// JSON names ("spec.metrics[0].pods.target.averageValue"), following t.
func canonicalPath(t reflect.Type, path string) string {
	if path == "" {
		return "(config)"
	}
	var out []string
	for _, seg := range strings.Split(path, ".") {
		name, index, _ := strings.Cut(seg, "[")
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
			t = t.Elem()
		}
		canon := name
		var next reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			if f, ok := findField(t, name); ok {
				canon, next = jsonName(f), f.Type
			}
		}
		if index != "" {
			canon += "[" + index
			if next != nil && next.Kind() == reflect.Slice {
				next = next.Elem()
			}
		}
		out = append(out, canon)
		t = next
	}
	return strings.Join(out, ".")
}

func findField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if inner, ok := findField(f.Type, name); ok {
				return inner, true
			}
			continue
		}
		if strings.EqualFold(jsonName(f), name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// readFile loads a YAML file into v, with a message that names the file.
func readFile(v *viper.Viper, file string) error {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s not found", file)
	}
	v.SetConfigFile(file)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return nil
}

// suggestField finds the field an unknown key was most likely meant to be: the parent's field with the
// smallest edit distance, if it is close.
func suggestField(t reflect.Type, path string) string {
	parent, last := "", path
	if i := strings.LastIndex(path, "."); i >= 0 {
		parent, last = path[:i], path[i+1:]
	}
	pt := t
	if parent != "" {
		for _, seg := range strings.Split(parent, ".") {
			name, _, _ := strings.Cut(seg, "[")
			for pt != nil && (pt.Kind() == reflect.Pointer || pt.Kind() == reflect.Slice) {
				pt = pt.Elem()
			}
			if pt == nil || pt.Kind() != reflect.Struct {
				return ""
			}
			f, ok := findField(pt, name)
			if !ok {
				return ""
			}
			pt = f.Type
		}
	}
	for pt != nil && (pt.Kind() == reflect.Pointer || pt.Kind() == reflect.Slice) {
		pt = pt.Elem()
	}
	if pt == nil || pt.Kind() != reflect.Struct {
		return ""
	}
	best, bestDist := "", 3
	var walk func(reflect.Type)
	walk = func(st reflect.Type) {
		for i := range st.NumField() {
			f := st.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			name := jsonName(f)
			if d := editDistance(strings.ToLower(name), strings.ToLower(last)); d < bestDist {
				best, bestDist = name, d
			}
		}
	}
	walk(pt)
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
