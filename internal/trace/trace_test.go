package trace

import (
	"strings"
	"testing"
	"time"
)

const sample = `TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.2224670,879,55
2023-11-16 18:15:51.3910170,91,0`

func TestReadParsesSevenFractionalDigitsAndRelativeTimes(t *testing.T) {
	reqs, err := Read(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 4 || reqs[0].At != 0 || reqs[1].At != 4314579*time.Microsecond || reqs[2].Prompt != 879 {
		t.Fatalf("%+v", reqs)
	}
	if reqs[3].Output != 1 {
		t.Fatalf("a request generating 0 tokens is read as 1 (it still takes a decode step), got %d", reqs[3].Output)
	}
}

func TestReadRejectsBadInputWithTheLine(t *testing.T) {
	for in, want := range map[string]string{
		"a,b,c\n":                                    "want TIMESTAMP",
		"TIMESTAMP,C,G\n2023-11-16 18:15,1,2\n":      "line 2: timestamp",
		"TIMESTAMP,C,G\n2023-11-16 18:15:46.1,x,2\n": "line 2: token counts",
		"TIMESTAMP,C,G\n":                            "no requests",
	} {
		if _, err := Read(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestScaleKeepsTheRateAndIsRepeatable(t *testing.T) {
	var reqs []Request
	for i := range 1000 {
		reqs = append(reqs, Request{At: time.Duration(i) * time.Second, Prompt: 1, Output: 1})
	}
	for _, f := range []float64{0.3, 1, 2.5, 10} {
		got := len(Scale(reqs, f, 7))
		want := int(f * 1000)
		if got < want*9/10 || got > want*11/10 {
			t.Errorf("factor %v: %d requests, want about %d", f, got, want)
		}
	}
	a, b := Scale(reqs, 2.5, 7), Scale(reqs, 2.5, 7)
	if len(a) != len(b) || a[100] != b[100] {
		t.Fatal("the same seed gave different traces")
	}
	if c := Compress(reqs, 10); c[999].At != 99900*time.Millisecond {
		t.Fatalf("compressed end %s", c[999].At)
	}
	if w := Window(reqs, 10*time.Second, 20*time.Second); len(w) != 10 || w[0].At != 0 {
		t.Fatalf("window: %d requests starting at %s", len(w), w[0].At)
	}
}

func TestTheShippedAzureTraceReads(t *testing.T) {
	reqs, err := ReadFile("../../deploy/examples/traces/AzureLLMInferenceTrace_conv.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 19366 || Duration(reqs) < 3400*time.Second {
		t.Fatalf("%d requests over %s", len(reqs), Duration(reqs))
	}
}
