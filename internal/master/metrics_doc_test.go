package master_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// ruleFile is a Prometheus rule file, as much of it as the docs use; a key
// it does not know is an error.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The alert rules of docs/metrics.md are a rule file Prometheus loads:
// each rule has a name, an expression over series the page lists, a
// duration, a severity and a summary, and the page has the five alerts it
// promises.
func TestDocumentedAlertRules(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var files []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		if strings.HasPrefix(m[1], "groups:") {
			files = append(files, m[1])
		}
	}
	if len(files) != 1 {
		t.Fatalf("docs/metrics.md has %d rule files, want 1", len(files))
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(files[0])))
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("the rule file does not decode: %v", err)
	}
	series := regexp.MustCompile(`\bmuster_[a-z_]+`)
	var alerts []string
	for _, g := range rf.Groups {
		if g.Name == "" {
			t.Error("a rule group has no name")
		}
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if !regexp.MustCompile(`^[A-Z][A-Za-z]+$`).MatchString(r.Alert) {
				t.Errorf("alert %q: want a name in CamelCase", r.Alert)
			}
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for: %v", r.Alert, err)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: want a severity label and a summary", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced brackets in %q", r.Alert, r.Expr)
			}
			names := series.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: the expression reads no muster series: %q", r.Alert, r.Expr)
			}
			for _, name := range names {
				if !strings.Contains(doc, "| `"+name+"` |") {
					t.Errorf("%s: %s is not in the page's tables of series", r.Alert, name)
				}
			}
		}
	}
	want := []string{"MusterTargetOffline", "MusterJobStoppedSucceeding", "MusterSpoolGrowing", "MusterCertificateExpiring", "MusterInstructionBlocked"}
	if strings.Join(alerts, " ") != strings.Join(want, " ") {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
}

// Prometheus sets job and instance on every series it scrapes, and by
// default renames a scraped label of the same name to exported_job or
// exported_instance: a series that names a muster job in its job label
// would lose it, and the documented rules that select on it would match
// nothing. The documented scrape configuration keeps the master's labels
// (honor_labels) whenever a documented series has such a label.
func TestDocumentedScrapeKeepsTheJobLabel(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var clashing []string
	row := regexp.MustCompile("(?m)^\\| `(muster_[a-z_]+)` \\| [a-z]+ \\| ([^|]*) \\|")
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		for _, l := range strings.Split(m[2], ",") {
			if l := strings.Trim(strings.TrimSpace(l), "`"); l == "job" || l == "instance" {
				clashing = append(clashing, m[1]+"{"+l+"}")
			}
		}
	}
	if len(clashing) == 0 {
		t.Skip("no documented series has a label Prometheus sets")
	}
	var configs []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		if strings.HasPrefix(m[1], "scrape_configs:") {
			configs = append(configs, m[1])
		}
	}
	if len(configs) == 0 {
		t.Fatal("docs/metrics.md has no scrape configuration")
	}
	for _, c := range configs {
		var sc struct {
			ScrapeConfigs []struct {
				JobName     string `yaml:"job_name"`
				HonorLabels bool   `yaml:"honor_labels"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal([]byte(c), &sc); err != nil {
			t.Fatalf("a scrape configuration does not decode: %v", err)
		}
		for _, j := range sc.ScrapeConfigs {
			if !j.HonorLabels {
				t.Errorf("scrape job %s: without honor_labels: true, Prometheus renames the label of %s", j.JobName, strings.Join(clashing, ", "))
			}
		}
	}
}
