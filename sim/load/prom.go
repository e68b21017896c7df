package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one scrape of a Prometheus text endpoint: series key (name and
// sorted labels) to value.
type sample struct {
	at     time.Time
	series map[string]float64
	labels map[string]map[string]string // series key → labels
	names  map[string][]string          // metric name → series keys
}

func scrape(ctx context.Context, client *http.Client, url string) (*sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseProm(resp.Body, time.Now())
}

// parseProm reads the Prometheus text exposition format (what iocd serves);
// comments and timestamps are ignored.
func parseProm(r io.Reader, at time.Time) (*sample, error) {
	s := &sample{at: at, series: map[string]float64{}, labels: map[string]map[string]string{}, names: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, rest, err := splitSeries(line)
		if err != nil {
			return nil, err
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		key := seriesKey(name, labels)
		s.series[key] = v
		s.labels[key] = labels
		s.names[name] = append(s.names[name], key)
	}
	return s, sc.Err()
}

func splitSeries(line string) (name string, labels map[string]string, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return "", nil, "", fmt.Errorf("metrics line %q: no value", line)
	}
	name, rest = line[:i], line[i:]
	labels = map[string]string{}
	if rest[0] != '{' {
		return name, labels, rest, nil
	}
	rest = rest[1:]
	for {
		rest = strings.TrimLeft(rest, " ,")
		if strings.HasPrefix(rest, "}") {
			return name, labels, rest[1:], nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 || eq+1 >= len(rest) || rest[eq+1] != '"' {
			return "", nil, "", fmt.Errorf("metrics line %q: bad labels", line)
		}
		k := strings.TrimSpace(rest[:eq])
		rest = rest[eq+2:]
		var b strings.Builder
		j := 0
		for ; j < len(rest) && rest[j] != '"'; j++ {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
				switch rest[j] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(rest[j])
				}
				continue
			}
			b.WriteByte(rest[j])
		}
		if j >= len(rest) {
			return "", nil, "", fmt.Errorf("metrics line %q: unterminated label", line)
		}
		labels[k] = b.String()
		rest = rest[j+1:]
	}
}

func seriesKey(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	ks := make([]string, 0, len(labels))
	for k := range labels {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range ks {
		b.WriteString("|" + k + "=" + labels[k])
	}
	return b.String()
}

// sum adds every series of a metric (all label values); absent is 0.
func (s *sample) sum(name string) float64 {
	var t float64
	for _, k := range s.names[name] {
		t += s.series[k]
	}
	return t
}

func (s *sample) has(name string) bool { return len(s.names[name]) > 0 }

// by returns the metric's values keyed by one label.
func (s *sample) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range s.names[name] {
		out[s.labels[k][label]] += s.series[k]
	}
	return out
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// buckets sums a histogram's cumulative buckets over all other labels.
func (s *sample) buckets(name string) []bucket {
	m := map[float64]float64{}
	for _, k := range s.names[name+"_bucket"] {
		le, err := strconv.ParseFloat(s.labels[k]["le"], 64)
		if err != nil {
			continue
		}
		m[le] += s.series[k]
	}
	out := make([]bucket, 0, len(m))
	for le, c := range m {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// deltaBuckets is b − a, bucket by bucket (a may be empty).
func deltaBuckets(a, b []bucket) []bucket {
	prev := map[float64]float64{}
	for _, x := range a {
		prev[x.le] = x.count
	}
	out := make([]bucket, len(b))
	for i, x := range b {
		out[i] = bucket{x.le, x.count - prev[x.le]}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does:
// linear within the bucket. It returns NaN without observations, and the
// highest finite bound when the quantile falls in the +Inf bucket (over
// says so).
func quantile(q float64, bs []bucket) (v float64, over bool) {
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return math.NaN(), false
	}
	total := bs[len(bs)-1].count
	rank := q * total
	lo, prevCount := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lo, true
			}
			if b.count == prevCount {
				return b.le, false
			}
			return lo + (b.le-lo)*(rank-prevCount)/(b.count-prevCount), false
		}
		lo, prevCount = b.le, b.count
	}
	return lo, true
}
