// Package trace reads LLM inference traces in the Azure public dataset's CSV format
// (TIMESTAMP,ContextTokens,GeneratedTokens) and reshapes them for replay: a time window, a rate multiplier,
// a time compression. The load simulator and the trace-driven simulator share it.
package trace

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Request is one request of a trace.
type Request struct {
	// At is the arrival time since the trace's start.
	At     time.Duration
	Prompt int32
	Output int32
}

// timeLayout reads the dataset's timestamps ("2023-11-16 18:15:46.6805900", seven fractional digits).
const timeLayout = "2006-01-02 15:04:05.9999999"

// ReadFile reads an Azure-format CSV trace.
func ReadFile(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading trace: %w", err)
	}
	defer f.Close()
	reqs, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", path, err)
	}
	return reqs, nil
}

// Read parses an Azure-format CSV trace, sorted by arrival, with times relative to the first request.
func Read(r io.Reader) ([]Request, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	if strings.TrimSpace(header[0]) != "TIMESTAMP" {
		return nil, fmt.Errorf("header %v: want TIMESTAMP,ContextTokens,GeneratedTokens", header)
	}
	type row struct {
		t        time.Time
		ctx, gen int32
	}
	var rows []row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		t, err := time.Parse(timeLayout, strings.TrimSpace(rec[0]))
		if err != nil {
			return nil, fmt.Errorf("line %d: timestamp %q: %w", line, rec[0], err)
		}
		c, err1 := strconv.ParseInt(strings.TrimSpace(rec[1]), 10, 32)
		g, err2 := strconv.ParseInt(strings.TrimSpace(rec[2]), 10, 32)
		if err1 != nil || err2 != nil || c < 0 || g < 0 {
			return nil, fmt.Errorf("line %d: token counts %q, %q must be whole numbers >= 0", line, rec[1], rec[2])
		}
		rows = append(rows, row{t, int32(c), int32(g)})
	}
	if len(rows) == 0 {
		return nil, errors.New("no requests")
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.t.Compare(b.t) })
	out := make([]Request, len(rows))
	for i, r := range rows {
		out[i] = Request{At: r.t.Sub(rows[0].t), Prompt: r.ctx, Output: max(r.gen, 1)}
	}
	return out, nil
}

// Duration is the time from the first to the last arrival.
func Duration(reqs []Request) time.Duration {
	if len(reqs) == 0 {
		return 0
	}
	return reqs[len(reqs)-1].At
}

// Window keeps the requests arriving in [from, to) and makes from the new start; to <= 0 means the end.
func Window(reqs []Request, from, to time.Duration) []Request {
	var out []Request
	for _, r := range reqs {
		if r.At >= from && (to <= 0 || r.At < to) {
			r.At -= from
			out = append(out, r)
		}
	}
	return out
}

// Scale multiplies the arrival rate by factor, keeping the trace's shape: the result superposes
// floor(factor) whole copies of the trace, plus one more copy of which each request is kept with
// probability frac(factor). Every copy but the first is shifted by its own random offset under a minute
// (wrapping around the end, so the duration is kept): a ten times busier service is ten populations of
// users, not every user sending each request ten times at once, which would make every burst ten times
// taller than it is. The seed makes it repeatable.
func Scale(reqs []Request, factor float64, seed uint64) []Request {
	if factor == 1 || len(reqs) == 0 {
		return slices.Clone(reqs)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	span := Duration(reqs) + time.Millisecond
	whole, frac := int(math.Floor(factor)), factor-math.Floor(factor)
	copies := whole
	if frac > 0 {
		copies++
	}
	out := make([]Request, 0, int(float64(len(reqs))*factor)+1)
	for k := range copies {
		var offset time.Duration
		if k > 0 {
			offset = time.Duration(rng.Int64N(int64(copyShift)))
		}
		partial := k == whole
		for _, r := range reqs {
			if partial && rng.Float64() >= frac {
				continue
			}
			r.At = (r.At + offset) % span
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Request) int { return cmp.Compare(a.At, b.At) })
	return out
}

// copyShift bounds the offset between the copies that Scale superposes.
const copyShift = time.Minute

// Compress plays the trace factor times faster (arrival times divided by factor).
func Compress(reqs []Request, factor float64) []Request {
	out := slices.Clone(reqs)
	if factor <= 0 || factor == 1 {
		return out
	}
	for i := range out {
		out[i].At = time.Duration(float64(out[i].At) / factor)
	}
	return out
}
