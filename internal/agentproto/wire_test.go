package agentproto_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	v1 "github.com/musterhq/muster/internal/agentproto/v1"
)

var update = flag.Bool("update", false, "record the golden JSON of a protocol version that has none yet")

// The wire form of every message of every protocol version a master
// accepts is fixed: a change to it fails here until it gets a new
// agentproto.Version. -update records the golden JSON of a new version,
// and never overwrites a version already recorded.
func TestWireForm(t *testing.T) {
	for version, msgs := range map[int]map[string]any{v1.Version: v1Messages(), agentproto.Version: v2Messages()} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			dir := filepath.Join("testdata", fmt.Sprintf("v%d", version))
			if _, err := os.Stat(dir); os.IsNotExist(err) && *update {
				record(t, dir, msgs)
				return
			} else if err != nil {
				t.Fatalf("no golden JSON for protocol %d (%v): record it with `go test ./internal/agentproto -run TestWireForm -update`", version, err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			if len(files) != len(msgs) {
				t.Errorf("%d golden files for %d messages: a message was added or removed without a new protocol version", len(files), len(msgs))
			}
			for name, msg := range msgs {
				if empty := unset(reflect.ValueOf(msg), name); len(empty) > 0 {
					t.Errorf("the sample %s leaves %s unset: set every field, so that its wire form is all checked", name, strings.Join(empty, ", "))
				}
				want, err := os.ReadFile(filepath.Join(dir, name+".json"))
				if err != nil {
					t.Errorf("%s: %v (a new message needs a new protocol version)", name, err)
					continue
				}
				if got := encode(t, msg); !bytes.Equal(got, want) {
					t.Errorf("the wire form of %s (protocol %d) changed; that needs a new agentproto.Version with a change-log entry, and its golden JSON\ngot:\n%s\nwant:\n%s", name, version, got, want)
				}
			}
		})
	}
}

func encode(t *testing.T, v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func record(t *testing.T, dir string, msgs map[string]any) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, msg := range msgs {
		if err := os.WriteFile(filepath.Join(dir, name+".json"), encode(t, msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("recorded %d messages in %s", len(msgs), dir)
}

// unset lists the fields of v, at any depth, left at their zero value.
func unset(v reflect.Value, path string) []string {
	if v.IsZero() {
		return []string{path}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return unset(v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return nil
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, unset(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil
		}
		var out []string
		for i := range v.Len() {
			out = append(out, unset(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	case reflect.Map:
		var out []string
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			out = append(out, unset(v.MapIndex(k), path+"["+k.String()+"]")...)
		}
		return out
	}
	return nil
}

var (
	at     = time.Date(2026, 12, 5, 14, 30, 0, 123456789, time.FixedZone("CET", 3600))
	later  = at.Add(90 * time.Second)
	code   = 2
	der    = []byte{0x30, 0x82, 0x01, 0x0a}
	pemish = []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
)

// queries lists a version's poll query parameters by name.
func queries(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

func v2Messages() map[string]any {
	job := agentproto.Job{
		Name: "backup", Description: "nightly dump", Enabled: true, TimeZone: "Europe/Paris",
		Timeout: muster.Duration(time.Hour), Env: map[string]string{"DB": "app"}, Misfire: muster.MisfireRunOnce, Version: 7,
		Steps: []agentproto.Step{{
			Name: "dump", Shell: "pg_dump app", Command: []string{"pg_dump", "app"}, SQL: "SELECT 1", Connection: "warehouse",
			Params: []string{"MUSTER_RUN_ID"}, Workdir: "/var/backups", Env: map[string]string{"PGUSER": "backup"},
			Timeout: muster.Duration(30 * time.Minute), Retry: &agentproto.Retry{Attempts: 3, Interval: muster.Duration(time.Minute)},
			OnSuccess: muster.ActionNext, OnFailure: "goto:alert", RunAs: "backup",
		}},
		Schedules: []agentproto.Schedule{{
			Name: "nightly", Cron: "30 2 * * *", Once: "2027-01-01T00:00:00", AtStart: true, At: "02:30",
			Daily:           &agentproto.DailyFrequency{Every: 2},
			Weekly:          &agentproto.WeeklyFrequency{Every: 1, Days: []string{"mon", "fri"}},
			Monthly:         &agentproto.MonthlyFrequency{Every: 1, Day: 15},
			MonthlyRelative: &agentproto.MonthlyRelativeFrequency{Every: 1, Week: "last", Day: "friday"},
			Repeat:          &agentproto.Repeat{Every: muster.Duration(15 * time.Minute), From: "08:00", Until: "18:00"},
			StartDate:       "2027-01-01", EndDate: "2027-12-31", Jitter: muster.Duration(30 * time.Second),
		}},
	}
	run := agentproto.Run{Job: "backup", Target: "web1", RunID: "0b1c2d3e-4f50-8a6b-9c7d-8e9f0a1b2c3d", Status: muster.RunFailed,
		Trigger: "schedule:nightly", Message: `step "dump" failed: exit code 2`, StartedAt: at, FinishedAt: &later, DurationMS: 90000,
		Steps: []agentproto.StepAttempt{{Name: "dump", Attempt: 1, Status: muster.AttemptFailed, ExitCode: &code,
			Message: "exit code 2", StartedAt: at, DurationMS: 89000}}}
	report := agentproto.RunReport{Revision: 4, Run: run, Output: []agentproto.OutputChunk{{Attempt: 1, Offset: 4096, Data: "pg_dump: error\n"}}}
	ack := agentproto.Ack{Seq: 12, OK: true, Error: "INSERT \"backup\": no such proxy"}
	event := agentproto.Event{ID: 3, Name: muster.EventSpoolFull, Severity: muster.SeverityError, Job: "backup",
		RunID: run.RunID, Message: "the spool is full", At: at}
	return map[string]any{
		"EnlistRequest": agentproto.EnlistRequest{Token: "mst1.abc.def", Name: "web1", Location: "rack 4", CSR: der, TimeZone: "Europe/Paris",
			LocalTime: at, PollInterval: 60, Version: "0.2.0", Protocol: 2, EnlistedBy: "root@web1"},
		"EnlistResponse": agentproto.EnlistResponse{Name: "web1", UID: "7f3a", Cert: pemish, CA: pemish, Epoch: "e1", PollInterval: 60,
			Master: "master1", Masters: []string{"https://m1.example:7070", "https://m2.example:7070"}},
		"PollResponse": agentproto.PollResponse{Epoch: "e1", Protocol: 2, ServerTime: at, ResyncRequired: true, Paused: true,
			Instructions: []agentproto.Instruction{{Seq: 12, Operation: muster.OpInsert, Job: "backup", Payload: json.RawMessage(`{"name":"backup"}`)}},
			Masters:      []string{"https://m1.example:7070", "https://m2.example:7070"}},
		"InsertPayload":  job,
		"UpdatePayload":  agentproto.UpdatePayload{Version: 8, Enabled: true, Description: "nightly dump"},
		"StartPayload":   agentproto.StartPayload{RunID: run.RunID, ExpiresAt: later, RequestedBy: "alice", Env: map[string]string{"WHO": "ops"}, Step: "dump"},
		"SetPollPayload": agentproto.SetPollPayload{PollInterval: 300},
		"AckRequest":     agentproto.AckRequest{Acks: []agentproto.Ack{ack}},
		"RunsRequest":    agentproto.RunsRequest{Runs: []agentproto.RunReport{report}},
		"RunsResponse":   agentproto.RunsResponse{Results: []agentproto.RunResult{{RunID: run.RunID, OK: true, Error: "job \"x\" was never sent"}}},
		"ResyncRequest":  agentproto.ResyncRequest{After: 40},
		"ResyncResponse": agentproto.ResyncResponse{Epoch: "e2", After: 41},
		"TimeResponse":   agentproto.TimeResponse{ServerTime: at},
		"ReEnlistRequest": agentproto.ReEnlistRequest{Location: "rack 4", TimeZone: "Europe/Paris", LocalTime: at, PollInterval: 60,
			Version: "0.2.0"},
		"RenewRequest":        agentproto.RenewRequest{CSR: der},
		"RenewExpiredRequest": agentproto.RenewExpiredRequest{Cert: der, CSR: der, Signature: der},
		"RenewResponse":       agentproto.RenewResponse{Cert: pemish},
		"EventsRequest":       agentproto.EventsRequest{Events: []agentproto.Event{event}},
		"EventsResponse":      agentproto.EventsResponse{Results: []agentproto.EventResult{{ID: 3, OK: true, Error: "not a target event"}}},
		"Query": queries("after", agentproto.QueryAfter, "wait", agentproto.QueryWait, "local_time", agentproto.QueryLocalTime,
			"tz", agentproto.QueryTimeZone, "poll_interval", agentproto.QueryPollInterval, "version", agentproto.QueryVersion,
			"spool", agentproto.QuerySpoolDepth, "spool_dropped", agentproto.QuerySpoolDropped, "spool_oldest", agentproto.QuerySpoolOldest,
			"clock_offset", agentproto.QueryClockOffset, "paused", agentproto.QueryPaused, "epoch", agentproto.QueryEpoch, "disk_full", agentproto.QueryDiskFull, "process_tracking", agentproto.QueryProcessTracking,
			"process_tracking=cgroup", agentproto.ProcessTrackingCgroup, "process_tracking=environment", agentproto.ProcessTrackingEnvironment),
		"Paths": queries("enlist", agentproto.PathEnlist, "instructions", agentproto.PathInstructions, "acks", agentproto.PathAcks,
			"runs", agentproto.PathRuns, "resync", agentproto.PathResync, "renew", agentproto.PathRenew, "renew_expired", agentproto.PathRenewExpired,
			"defect", agentproto.PathDefect, "time", agentproto.PathTime, "reenlist", agentproto.PathReEnlist, "events", agentproto.PathEvents,
			"header", agentproto.HeaderProtocol),
	}
}

func v1Messages() map[string]any {
	job := v1.Job{
		Name: "backup", Description: "nightly dump", Enabled: true, Targets: []string{"web1"}, Groups: []string{"web"},
		TimeZone: "Europe/Paris", Timeout: "1h0m0s", Env: map[string]string{"DB": "app"}, Misfire: "run_once",
		TargetEnv: map[string]map[string]string{"web1": {"DB": "app1"}}, MaxParallelTargets: 2, Version: 7,
		Steps: []v1.Step{{
			Name: "dump", Shell: "pg_dump app", Command: []string{"pg_dump", "app"}, SQL: "SELECT 1", Connection: "warehouse",
			Params: []string{"MUSTER_RUN_ID"}, Workdir: "/var/backups", Env: map[string]string{"PGUSER": "backup"},
			Timeout: "30m0s", Retry: &v1.Retry{Attempts: 3, Interval: "1m0s"}, OnSuccess: "next", OnFailure: "goto:alert", RunAs: "backup",
		}},
		Schedules: []v1.Schedule{{
			Name: "nightly", Cron: "30 2 * * *", Once: "2027-01-01T00:00:00", AtStart: true, At: "02:30",
			Daily:           &v1.DailyFrequency{Every: 2},
			Weekly:          &v1.WeeklyFrequency{Every: 1, Days: []string{"mon", "fri"}},
			Monthly:         &v1.MonthlyFrequency{Every: 1, Day: 15},
			MonthlyRelative: &v1.MonthlyRelativeFrequency{Every: 1, Week: "last", Day: "friday"},
			Repeat:          &v1.Repeat{Every: "15m0s", From: "08:00", Until: "18:00"},
			StartDate:       "2027-01-01", EndDate: "2027-12-31", Jitter: "30s",
		}},
	}
	run := v1.Run{Job: "backup", Target: "web1", RunID: "0b1c2d3e-4f50-8a6b-9c7d-8e9f0a1b2c3d", Status: "failed",
		Trigger: "schedule:nightly", Message: `step "dump" failed: exit code 2`, StartedAt: at, FinishedAt: &later, DurationMS: 90000,
		TargetOffline: true,
		Steps: []v1.StepAttempt{{Name: "dump", Attempt: 1, Status: "failed", ExitCode: &code, Output: "pg_dump: error\n",
			Message: "exit code 2", StartedAt: at, DurationMS: 89000}}}
	event := v1.Event{ID: 3, Name: "spool_full", Severity: 3, Job: "backup", RunID: run.RunID, Message: "the spool is full", At: at}
	return map[string]any{
		"EnlistRequest": v1.EnlistRequest{Token: "mst1.abc.def", Name: "web1", Location: "rack 4", CSR: der, TimeZone: "Europe/Paris",
			LocalTime: at, PollInterval: 60, Version: "0.1.0", Protocol: 1, EnlistedBy: "root@web1"},
		"EnlistResponse": v1.EnlistResponse{Name: "web1", UID: "7f3a", Cert: pemish, CA: pemish, Epoch: "e1", PollInterval: 60, Master: "master1"},
		"PollResponse": v1.PollResponse{Epoch: "e1", Protocol: 1, ServerTime: at, ResyncRequired: true, Paused: true,
			Instructions: []v1.Instruction{{Seq: 12, Operation: "INSERT", Job: "backup", Payload: json.RawMessage(`{"name":"backup"}`)}}},
		"InsertPayload":  job,
		"UpdatePayload":  v1.UpdatePayload{Version: 8, Enabled: true, Description: "nightly dump"},
		"StartPayload":   v1.StartPayload{RunID: run.RunID, ExpiresAt: later, RequestedBy: "alice", Env: map[string]string{"WHO": "ops"}, Step: "dump"},
		"SetPollPayload": v1.SetPollPayload{PollInterval: 300},
		"AckRequest":     v1.AckRequest{Acks: []v1.Ack{{Seq: 12, OK: true, Error: "INSERT \"backup\": no such proxy"}}},
		"RunsRequest":    v1.RunsRequest{Runs: []v1.RunReport{{Revision: 4, Run: run}}},
		"RunsResponse":   v1.RunsResponse{Results: []v1.RunResult{{RunID: run.RunID, OK: true, Error: "job \"x\" was never sent"}}},
		"ResyncRequest":  v1.ResyncRequest{After: 40},
		"ResyncResponse": v1.ResyncResponse{Epoch: "e2", After: 41},
		"TimeResponse":   v1.TimeResponse{ServerTime: at},
		"ReEnlistRequest": v1.ReEnlistRequest{Location: "rack 4", TimeZone: "Europe/Paris", LocalTime: at, PollInterval: 60,
			Version: "0.1.0"},
		"RenewRequest":        v1.RenewRequest{CSR: der},
		"RenewExpiredRequest": v1.RenewExpiredRequest{Cert: der, CSR: der, Signature: der},
		"RenewResponse":       v1.RenewResponse{Cert: pemish},
		"EventsRequest":       v1.EventsRequest{Events: []v1.Event{event}},
		"EventsResponse":      v1.EventsResponse{Results: []v1.EventResult{{ID: 3, OK: true, Error: "not a target event"}}},
		"Query": queries("after", v1.QueryAfter, "wait", v1.QueryWait, "local_time", v1.QueryLocalTime,
			"tz", v1.QueryTimeZone, "poll_interval", v1.QueryPollInterval, "version", v1.QueryVersion,
			"spool", v1.QuerySpoolDepth, "spool_dropped", v1.QuerySpoolDropped, "clock_offset", v1.QueryClockOffset,
			"paused", v1.QueryPaused),
	}
}

// A master sends a target of an older protocol the payloads of its own:
// every instruction payload of this protocol must decode, strictly, as
// the oldest protocol a master accepts. A field added to a payload fails
// here until the master converts the payload for older targets.
func TestOlderTargetsDecodeThePayloads(t *testing.T) {
	msgs := v2Messages()
	for name, old := range map[string]any{
		"InsertPayload": &v1.Job{}, "UpdatePayload": &v1.UpdatePayload{}, "StartPayload": &v1.StartPayload{}, "SetPollPayload": &v1.SetPollPayload{},
	} {
		dec := json.NewDecoder(bytes.NewReader(encode(t, msgs[name])))
		dec.DisallowUnknownFields()
		if err := dec.Decode(old); err != nil {
			t.Errorf("%s of protocol %d, decoded by a target of protocol 1: %v", name, agentproto.Version, err)
		}
	}
}
