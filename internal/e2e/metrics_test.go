package e2e_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// scrape is one scrape of a /metrics endpoint, parsed.
type scrape map[string]*dto.MetricFamily

// scrapeURL fetches and parses the metrics at url with client.
func scrapeURL(t *testing.T, client *http.Client, url string) scrape {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return families
}

// scrapeMaster scrapes a master's /metrics, as Prometheus does: over TLS,
// with a reader's API key.
func scrapeMaster(t *testing.T, env *testenv.Env) scrape {
	t.Helper()
	return scrapeURL(t, metricsClient(env, readerKey(t, env)), env.Master.URL+"/metrics")
}

// readerKey is the secret of an API key with the reader role, made once
// for env.
func readerKey(t *testing.T, env *testenv.Env) string {
	t.Helper()
	if k, ok := readerKeys.Load(env); ok {
		return k.(string)
	}
	// Masters sharing a catalog share its keys: each env makes its own.
	name := fmt.Sprintf("prometheus-%d", readerKeyCount.Add(1))
	k, err := env.Client.CreateAPIKey(context.Background(), httpapi.KeyRequest{Name: name, Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	readerKeys.Store(env, k.Key)
	return k.Key
}

var (
	readerKeys     sync.Map // *testenv.Env → the secret of its reader key
	readerKeyCount atomic.Int64
)

// metricsClient is a client of env's master sending key ("" for none).
func metricsClient(env *testenv.Env, key string) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.Master.CA.Pool()}}
	return &http.Client{Timeout: 10 * time.Second, Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if key != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+key)
		}
		return tr.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The master's metrics name every job and target, and when each
// certificate expires: a scrape needs an API key (a reader's will do),
// as the rest of the fleet's inventory does. A key with scopes, which
// sees part of the fleet, is refused.
func TestMasterMetricsNeedAKey(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	scoped, err := env.Client.CreateAPIKey(context.Background(), httpapi.KeyRequest{Name: "team", Role: "reader", Scopes: []string{"job:team-*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		want int
	}{{"", http.StatusUnauthorized}, {"mat_not-a-key", http.StatusUnauthorized}, {scoped.Key, http.StatusForbidden}, {readerKey(t, env), http.StatusOK}} {
		resp, err := metricsClient(env, c.key).Get(env.Master.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET /metrics with key %.8q…: %s, want %d\n%.300s", c.key, resp.Status, c.want, body)
		}
		if c.want != http.StatusOK && strings.Contains(string(body), "muster_") {
			t.Errorf("GET /metrics with key %.8q… was refused, but its body has series:\n%.300s", c.key, body)
		}
	}
}

// series finds the series of a family whose labels include want
// ("name=value" pairs); ok is false when there is none.
func (s scrape) series(name string, want ...string) (*dto.Metric, bool) {
	f, ok := s[name]
	if !ok {
		return nil, false
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if labels[k] != v {
				match = false
			}
		}
		if match {
			return m, true
		}
	}
	return nil, false
}

// value returns the value of a counter's or gauge's series, or of a
// histogram's count, and whether the series exists.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	m, ok := s.series(name, labels...)
	switch {
	case !ok:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	}
	return 0, false
}

// check asserts a series' value.
func (s scrape) check(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// names returns the names of the families whose names start with prefix.
func (s scrape) names(prefix string) []string {
	var out []string
	for name := range s {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// After real runs, the master's /metrics counts them exactly, by job and
// outcome, times their dispatch, counts the instructions targets applied
// or refused, and shows the fleet's state as the catalog holds it; each
// target serves its own.
func TestMetricsAfterRuns(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1", "web2"},
		Target: func(c *targetConfig) {
			c.MetricsListen = "127.0.0.1:0"
			c.FailInstruction = func(in agentproto.Instruction) error {
				if in.Job == "broken" {
					return errors.New("no connection named warehouse")
				}
				return nil
			}
		},
	})
	ctx := context.Background()
	hello := shellJob("hello", "echo hello", "web1", "web2")
	boom := shellJob("boom", "exit 3", "web1")
	apply(t, env, hello, boom, shellJob("broken", "true", "web2"))
	settled(t, env)

	const starts = 3
	for range starts {
		for _, r := range startAndWait(t, env, "hello") {
			if r.Status != muster.RunSucceeded {
				t.Fatalf("run %s on %s: %s", r.RunID, r.Target, r.Status)
			}
		}
	}
	if r := startAndWait(t, env, "boom"); r[0].Status != muster.RunFailed {
		t.Fatalf("boom: %s, want failed", r[0].Status)
	}
	// A poll brings each target's spool, all uploaded, to the master.
	var m scrape
	testenv.Eventually(t, wait, "both targets report an empty spool", func() bool {
		for _, name := range []string{"web1", "web2"} {
			if _, err := env.Client.ForcePoll(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		m = scrapeMaster(t, env)
		a, _ := m.value("muster_spool_runs", "target=web1")
		b, _ := m.value("muster_spool_runs", "target=web2")
		return a == 0 && b == 0
	})

	m.check(t, 2*starts, "muster_runs_total", "job=hello", "status=succeeded")
	m.check(t, 1, "muster_runs_total", "job=boom", "status=failed")
	if _, ok := m.value("muster_runs_total", "job=hello", "status=failed"); ok {
		t.Error(`muster_runs_total{job="hello",status="failed"} exists; no such run ended`)
	}
	m.check(t, 2*starts, "muster_run_duration_seconds", "job=hello")
	m.check(t, 2*starts+1, "muster_dispatch_seconds")
	m.check(t, 2*starts+1, "muster_instructions_total", "operation=START", "status=downloaded")
	m.check(t, 3, "muster_instructions_total", "operation=INSERT", "status=downloaded")
	m.check(t, 1, "muster_instructions_total", "operation=INSERT", "status=failed")

	m.check(t, 1, "muster_targets", "status=normal")
	m.check(t, 1, "muster_targets", "status=blocked")
	for _, s := range []string{"suspected_offline", "paused", "deleted", "defected"} {
		m.check(t, 0, "muster_targets", "status="+s)
	}
	m.check(t, 0, "muster_instructions_failed", "target=web1")
	m.check(t, 1, "muster_instructions_failed", "target=web2")
	m.check(t, 0, "muster_spool_oldest_age_seconds", "target=web1")

	now := time.Now()
	for _, name := range []string{"web1", "web2"} {
		at, ok := m.value("muster_job_last_success_timestamp_seconds", "job=hello", "target="+name)
		if !ok || math.Abs(float64(now.Unix())-at) > 60 {
			t.Errorf("hello's last success on %s at %v (%v), want about now", name, at, ok)
		}
		exp, ok := m.value("muster_target_cert_expiry_timestamp_seconds", "target="+name)
		if want := float64(now.Add(24 * time.Hour).Unix()); !ok || exp < want-120 || exp > want+120 {
			t.Errorf("%s's certificate expires at %v (%v), want about a day from now", name, exp, ok)
		}
	}
	if _, ok := m.value("muster_job_last_success_timestamp_seconds", "job=boom"); ok {
		t.Error("boom never succeeded but has a last success")
	}
	// The read of a scrape is timed in the next one's.
	again := scrapeMaster(t, env)
	for _, op := range []string{"UpsertRuns", "PollPending", "AckInstructions", "Update", "GaugeRows"} {
		if n, ok := again.value("muster_store_query_seconds", "op="+op); !ok || n == 0 {
			t.Errorf("muster_store_query_seconds{op=%q}: %v observations (%v), want some", op, n, ok)
		}
	}

	// Each target serves its own metrics.
	client := &http.Client{Timeout: 10 * time.Second}
	for name, want := range map[string]struct{ succeeded, failed float64 }{"web1": {starts, 1}, "web2": {starts, 0}} {
		tm := scrapeURL(t, client, "http://"+env.Target(name).Main.MetricsAddr()+"/metrics")
		tm.check(t, want.succeeded+want.failed, "muster_target_runs_started_total")
		tm.check(t, want.succeeded, "muster_target_runs_finished_total", "status=succeeded")
		tm.check(t, want.failed, "muster_target_runs_finished_total", "status=failed")
		tm.check(t, 0, "muster_target_spool_runs")
		tm.check(t, 0, "muster_target_spool_oldest_age_seconds")
		tm.check(t, 0, "muster_target_disk_full")
		if _, ok := tm.value("muster_target_poll_errors_total"); !ok {
			t.Errorf("%s: no muster_target_poll_errors_total", name)
		}
		if at, ok := tm.value("muster_target_last_poll_success_timestamp_seconds"); !ok || math.Abs(float64(now.Unix())-at) > 60 {
			t.Errorf("%s's last poll at %v (%v), want about now", name, at, ok)
		}
		checkDocumented(t, tm.names("muster_"))
	}
	checkDocumented(t, m.names("muster_"))
}

// A target whose master is away counts its failed polls, and its runs wait
// in the spool, growing old, which the master shows once the target
// reaches it again.
func TestMetricsSpoolWhileMasterAway(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Target: func(c *targetConfig) {
		c.MetricsListen = "127.0.0.1:0"
		c.MaxBackoff = 200 * time.Millisecond
	}})
	apply(t, env, withSchedule(shellJob("tick", "echo tick", "web1")))
	settled(t, env)
	web1 := env.Target("web1")
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + web1.Main.MetricsAddr() + "/metrics"

	env.StopMaster()
	var tm scrape
	testenv.Eventually(t, wait, "a run waits in the spool and the polls fail", func() bool {
		tm = scrapeURL(t, client, url)
		n, _ := tm.value("muster_target_spool_runs")
		errs, _ := tm.value("muster_target_poll_errors_total")
		return n > 0 && errs > 0
	})
	testenv.Eventually(t, wait, "the oldest run in the spool grows old", func() bool {
		age, _ := scrapeURL(t, client, url).value("muster_target_spool_oldest_age_seconds")
		return age >= 1
	})
	env.RestartMaster()
	testenv.Eventually(t, wait, "the spool uploaded and reported empty", func() bool {
		if _, err := env.Client.ForcePoll(context.Background(), "web1"); err != nil {
			return false
		}
		m := scrapeMaster(t, env)
		n, ok := m.value("muster_spool_runs", "target=web1")
		age, aok := m.value("muster_spool_oldest_age_seconds", "target=web1")
		return ok && aok && n == 0 && age == 0
	})
}

// withSchedule gives a job a schedule firing every second.
func withSchedule(j muster.Job) muster.Job {
	j.Schedules = []muster.Schedule{{Name: "often", Cron: "* * * * * *"}}
	return j
}

// Several masters on one PostgreSQL catalog show the same fleet, read from
// the catalog, while each counts what it saw itself.
func TestMetricsOnSharedCatalog(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	shared := func(c *master.Config) { c.Store, c.SecretFile = url, secret }
	one := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: shared})
	two := testenv.Join(t, one, shared)

	apply(t, two, shellJob("hello", "echo hello", "web1"))
	settled(t, one)
	startAndWait(t, two, "hello")

	// web1 polls and uploads to master one: it counts the run; master two,
	// which posted the START, did not see it end.
	testenv.Eventually(t, wait, "master one counts the run", func() bool {
		n, _ := scrapeMaster(t, one).value("muster_runs_total", "job=hello", "status=succeeded")
		return n == 1
	})
	if n, ok := scrapeMaster(t, two).value("muster_runs_total", "job=hello", "status=succeeded"); ok && n != 0 {
		t.Errorf("master two counted %v runs it never received", n)
	}
	for i, env := range []*testenv.Env{one, two} {
		m := scrapeMaster(t, env)
		m.check(t, 1, "muster_targets", "status=normal")
		m.check(t, 0, "muster_instructions_failed", "target=web1")
		if _, ok := m.value("muster_job_last_success_timestamp_seconds", "job=hello", "target=web1"); !ok {
			t.Errorf("master %d: no last success of hello on web1", i+1)
		}
		if _, ok := m.value("muster_target_cert_expiry_timestamp_seconds", "target=web1"); !ok {
			t.Errorf("master %d: no certificate expiry for web1", i+1)
		}
	}
}

// checkDocumented fails for every muster series that docs/metrics.md does
// not list.
func checkDocumented(t *testing.T, names []string) {
	t.Helper()
	doc := metricsDoc(t)
	for _, name := range names {
		if !strings.Contains(doc, fmt.Sprintf("`%s`", name)) && !strings.Contains(doc, fmt.Sprintf("`%s{", name)) {
			t.Errorf("docs/metrics.md does not list %s", name)
		}
	}
}

// metricsDoc returns docs/metrics.md.
func metricsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
