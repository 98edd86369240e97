// Package trace reads LLM inference traces in the CSV formats of the public datasets (the Azure LLM
// inference traces of 2023 and 2024, TIMESTAMP,ContextTokens,GeneratedTokens; BurstGPT's
// Timestamp,...,Request tokens,Response tokens,...) and reshapes them for replay: a time window, a rate
// multiplier, a time compression. The load simulator and the trace-driven simulator share it.
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

// format is a dataset's CSV layout: the columns (by header name) of the arrival time and of the prompt's
// and the answer's tokens, and how an arrival time is read. Other columns are ignored.
type format struct {
	arrival, prompt, gen string
	readArrival          func(string) (time.Duration, error)
}

// formats are the datasets read, each known by its header.
var formats = []format{
	// The Azure LLM inference traces (2023 and 2024).
	{arrival: "TIMESTAMP", prompt: "ContextTokens", gen: "GeneratedTokens", readArrival: wallClock},
	// BurstGPT's timestamps are seconds since its start; its releases differ in their other columns (a
	// session, an elapsed time), which are not needed here.
	{arrival: "Timestamp", prompt: "Request tokens", gen: "Response tokens", readArrival: seconds},
}

// wallClock reads the Azure traces' timestamps as the time since the Unix epoch: "2023-11-16
// 18:15:46.6805900" (2023: no zone, seven fractional digits) and "2024-05-10 00:00:00.009930+00:00" (2024:
// six digits and an offset; a timestamp on the second has no fraction), or with RFC 3339's T between the
// date and the time. A timestamp without a zone is UTC. The layout is chosen by looking, not by trying
// each: a week's trace has tens of millions of rows.
func wallClock(s string) (time.Duration, error) {
	layout := "2006-01-02 15:04:05.999999999"
	if len(s) > 10 && s[10] == 'T' {
		layout = "2006-01-02T15:04:05.999999999"
	}
	if len(s) > 19 && strings.ContainsAny(s[19:], "Z+-") {
		layout += "Z07:00"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return 0, errors.New("want a date and time such as 2023-11-16 18:15:46.6805900 or 2024-05-10 00:00:00.009930+00:00")
	}
	// Nanoseconds since 1970 fit a Duration for about 292 years, and so do the differences between them.
	if y := t.Year(); y < 1970 || y >= 2200 {
		return 0, fmt.Errorf("year %d: want a date from 1970 to 2199", y)
	}
	return time.Duration(t.UnixNano()), nil
}

// seconds reads a time in seconds (a decimal fraction allowed).
func seconds(s string) (time.Duration, error) {
	v, err := strconv.ParseFloat(s, 64)
	// At most about 292 years, what a Duration holds (at the bound, v x 1e9 rounds to 2^63 and wraps).
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v >= math.MaxInt64/1e9 {
		return 0, errors.New("want seconds, a number >= 0")
	}
	return time.Duration(math.Round(v * 1e9)), nil
}

// ReadFile reads a CSV trace in one of the datasets' formats.
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

// Read parses a CSV trace in one of the datasets' formats (told apart by the header), sorted by arrival,
// with times relative to the first request. A request that generated no token (a failed one, in BurstGPT)
// is read as generating one: it arrived, and took its prefill and a decode step.
func Read(r io.Reader) ([]Request, error) {
	// A spreadsheet's export may begin with a byte-order mark; the CSV reader would take it for part of a
	// quoted first field.
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(byteOrderMark)); err == nil && string(b) == byteOrderMark {
		_, _ = br.Discard(len(byteOrderMark))
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	header = slices.Clone(header)
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	f, cols, ok := detect(header)
	if !ok {
		return nil, fmt.Errorf("header %q: want the Azure traces' TIMESTAMP,ContextTokens,GeneratedTokens or BurstGPT's "+
			"Timestamp,Model,Request tokens,Response tokens,... (columns named so, in any order)", strings.Join(header, ","))
	}
	var out []Request
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The CSV reader's errors name their line ("record on line 7: wrong number of fields").
			return nil, err
		}
		at, err := f.readArrival(strings.TrimSpace(rec[cols[0]]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s %q: %w", line, f.arrival, rec[cols[0]], err)
		}
		c, err1 := strconv.ParseInt(strings.TrimSpace(rec[cols[1]]), 10, 32)
		g, err2 := strconv.ParseInt(strings.TrimSpace(rec[cols[2]]), 10, 32)
		if err1 != nil || err2 != nil || c < 0 || g < 0 {
			return nil, fmt.Errorf("line %d: token counts %q (%s), %q (%s) must be whole numbers >= 0", line, rec[cols[1]], f.prompt, rec[cols[2]], f.gen)
		}
		out = append(out, Request{At: at, Prompt: int32(c), Output: max(int32(g), 1)})
	}
	if len(out) == 0 {
		return nil, errors.New("no requests")
	}
	slices.SortStableFunc(out, func(a, b Request) int { return cmp.Compare(a.At, b.At) })
	first := out[0].At
	for i := range out {
		out[i].At -= first
	}
	return out, nil
}

const byteOrderMark = "\ufeff"

// detect finds the format whose columns the header names, and their indexes (arrival, prompt, answer).
func detect(header []string) (format, [3]int, bool) {
	for _, f := range formats {
		cols := [3]int{slices.Index(header, f.arrival), slices.Index(header, f.prompt), slices.Index(header, f.gen)}
		if !slices.Contains(cols[:], -1) {
			return f, cols, true
		}
	}
	return format{}, [3]int{}, false
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
