package trace

import (
	"slices"
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
	const azure = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
	const burst = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
	for in, want := range map[string]string{
		"a,b,c\n":                                     "want the Azure traces' TIMESTAMP,ContextTokens,GeneratedTokens or BurstGPT's",
		"TIMESTAMP,C,G\n":                             "header \"TIMESTAMP,C,G\"",
		azure + "2023-11-16 18:15,1,2\n":              "line 2: TIMESTAMP \"2023-11-16 18:15\": want a date and time",
		azure + "2023-11-16 18:15:46.1,x,2\n":         "line 2: token counts \"x\" (ContextTokens)",
		azure + "2023-11-16 18:15:46.1,1\n":           "record on line 2: wrong number of fields",
		azure + "1960-01-01 00:00:00,1,2\n":           "line 2: TIMESTAMP \"1960-01-01 00:00:00\": year 1960: want a date from 1970 to 2199",
		azure + "3000-01-01 00:00:00,1,2\n":           "year 3000",
		burst + "9223372036.854776,ChatGPT,1,2,3,x\n": "want seconds",
		azure:                           "no requests",
		burst + "-5,ChatGPT,1,2,3,x\n":  "line 2: Timestamp \"-5\": want seconds",
		burst + "NaN,ChatGPT,1,2,3,x\n": "line 2: Timestamp \"NaN\": want seconds",
	} {
		if _, err := Read(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// The Azure 2024 traces write six fractional digits and a UTC offset, and a timestamp on the second
// without a fraction; rows need not come sorted.
func TestReadTheAzure2024TimestampsWithTheirOffset(t *testing.T) {
	reqs, err := Read(strings.NewReader(`TIMESTAMP,ContextTokens,GeneratedTokens
2024-05-10 00:00:00.009930+00:00,2048,28
2024-05-10 00:00:01+00:00,30,2
2024-05-10 02:00:00.5+02:00,7,7
2024-05-10T00:00:02.250000Z,4,4
`))
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Duration
	for _, r := range reqs {
		at = append(at, r.At)
	}
	// 02:00:00.5+02:00 is 00:00:00.5 UTC, the second request.
	want := []time.Duration{0, 490070 * time.Microsecond, 990070 * time.Microsecond, 2240070 * time.Microsecond}
	if !slices.Equal(at, want) || reqs[0].Prompt != 2048 || reqs[1].Prompt != 7 {
		t.Fatalf("arrivals %v, want %v; %+v", at, want, reqs)
	}
}

// BurstGPT's timestamps are seconds since its start, its columns those of its release (the third adds a
// session and an elapsed time), and a failed request's answer has no token.
func TestReadBurstGPTInEachReleasesColumns(t *testing.T) {
	for name, in := range map[string]string{
		"BurstGPT_1": `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45.5,GPT-4,1087,230,1317,Conversation log
120,GPT-4,300,0,300,API log
`,
		// A spreadsheet's export may begin with a byte-order mark, and quote its header.
		"BurstGPT_1 with a BOM": "\ufeff" + `"Timestamp","Model","Request tokens","Response tokens","Total tokens","Log Type"
5,ChatGPT,472,18,490,Conversation log
45.5,GPT-4,1087,230,1317,Conversation log
120,GPT-4,300,0,300,API log
`,
		"BurstGPT_3": `Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type
5,3f2a,0.8,ChatGPT,472,18,490,Conversation log
45.5,3f2a,2.1,GPT-4,1087,230,1317,Conversation log
120,9c1b,0.2,GPT-4,300,0,300,API log
`,
	} {
		reqs, err := Read(strings.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(reqs) != 3 || reqs[1].At != 40500*time.Millisecond || reqs[2].At != 115*time.Second ||
			reqs[1].Prompt != 1087 || reqs[1].Output != 230 || reqs[2].Output != 1 {
			t.Errorf("%s: %+v", name, reqs)
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
