package schedule

import (
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func benchNext(b *testing.B, s muster.Schedule) {
	p := mustCompile(b, s, mustLoad(b, "America/New_York"))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := start
	b.ReportAllocs()
	for b.Loop() {
		next, ok := p.Next(at)
		if !ok || next.Year() > 2100 {
			next = start
		}
		at = next
	}
}

func BenchmarkNextCron(b *testing.B) {
	b.Run("business hours", func(b *testing.B) { benchNext(b, muster.Schedule{Cron: "*/5 9-17 * * mon-fri"}) })
	b.Run("leap day", func(b *testing.B) { benchNext(b, muster.Schedule{Cron: "0 0 29 2 *"}) })
	b.Run("seconds", func(b *testing.B) { benchNext(b, muster.Schedule{Cron: "*/10 * * * * *"}) })
}

func BenchmarkNextWeekly(b *testing.B) {
	b.Run("at", func(b *testing.B) {
		benchNext(b, muster.Schedule{Weekly: &muster.WeeklyFrequency{Every: 2, Days: []string{"mon", "thu"}}, At: "02:30"})
	})
	b.Run("repeat", func(b *testing.B) {
		benchNext(b, muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"tue", "sat"}},
			Repeat: &muster.Repeat{Every: muster.Duration(15 * time.Minute), From: "08:00", Until: "18:00"}})
	})
}

func BenchmarkCompile(b *testing.B) {
	specs := map[string]muster.Schedule{
		"cron":             {Cron: "0 */15 9-17 * * mon-fri"},
		"weekly":           {Weekly: &muster.WeeklyFrequency{Every: 2, Days: []string{"mon", "thu"}}, At: "02:30"},
		"monthly_relative": {MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "last", Day: "weekday"}, Repeat: &muster.Repeat{Every: muster.Duration(time.Hour)}},
	}
	for name, s := range specs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(s, time.UTC); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
