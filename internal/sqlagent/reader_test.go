package sqlagent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

// calls renders the calls and batch ends read from a script, one a line.
func calls(t *testing.T, src string) string {
	t.Helper()
	var b strings.Builder
	err := read(src, func(s stmt) {
		switch s.kind {
		case stmtBatchEnd:
			fmt.Fprintf(&b, "%d: GO\n", s.line)
		case stmtAssign:
			fmt.Fprintf(&b, "%d: %s = %d %q\n", s.line, s.variable, s.value.kind, s.value.text)
		case stmtProblem:
			fmt.Fprintf(&b, "%d: problem: %s\n", s.line, s.problem)
		case stmtCall:
			fmt.Fprintf(&b, "%d: %s", s.line, s.proc)
			for _, a := range s.args {
				fmt.Fprintf(&b, " [%s=%d %q", a.name, a.value.kind, a.value.text)
				if a.output {
					b.WriteString(" OUTPUT")
				}
				b.WriteString("]")
			}
			if s.problem != "" {
				fmt.Fprintf(&b, " problem: %s", s.problem)
			}
			b.WriteString("\n")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRead(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"named, any order, N and doubled quotes",
			"EXEC msdb.dbo.sp_add_jobstep @step_name=N'It''s', @command='SELECT ''x''', @step_id=2",
			"1: sp_add_jobstep [step_name=1 \"It's\"] [command=1 \"SELECT 'x'\"] [step_id=2 \"2\"]\n"},
		{"return code, brackets, two dots, EXECUTE",
			"EXEC @ReturnCode =  [msdb].[dbo].[sp_add_job] @job_name=N'a'\nEXECUTE msdb..sp_add_jobserver @job_name = N'a'",
			"1: sp_add_job [job_name=1 \"a\"]\n2: sp_add_jobserver [job_name=1 \"a\"]\n"},
		{"positional, signed, hex, NULL, DEFAULT, bare word, OUTPUT",
			"EXEC sp_x N'a', -1, 0x1F, NULL, DEFAULT, TSQL, @v OUTPUT, @w OUT;",
			"1: sp_x [=1 \"a\"] [=2 \"-1\"] [=2 \"0x1F\"] [=0 \"\"] [=4 \"\"] [=1 \"TSQL\"] [=3 \"@v\" OUTPUT] [=3 \"@w\" OUTPUT]\n"},
		{"comments, nested, and GO inside strings and comments",
			"/* a /* nested */ GO\n*/ EXEC sp_a @c = N'line\nGO\nline' -- GO\nGO\n-- GO\nEXEC sp_b",
			"2: sp_a [c=1 \"line\\nGO\\nline\"]\n5: GO\n7: sp_b\n"},
		{"GO with a count and a comment, any case, CRLF",
			"EXEC sp_a\r\n  go 2 -- twice\r\nEXEC sp_b\r\ngo\r\n",
			"1: sp_a\n2: GO\n3: sp_b\n4: GO\n"},
		{"a GO that is not alone on its line is a word",
			"EXEC sp_a @x = 1 GO\nSELECT 1 GO",
			"1: sp_a [x=2 \"1\"]\n"},
		{"the SSMS boilerplate is read past",
			"BEGIN TRANSACTION\nDECLARE @ReturnCode INT\nSELECT @ReturnCode = 0\nIF (@@ERROR <> 0 OR @ReturnCode <> 0) GOTO QuitWithRollback\nCOMMIT TRANSACTION\nGOTO EndSave\nQuitWithRollback:\n    IF (@@TRANCOUNT > 0) ROLLBACK TRANSACTION\nEndSave:\n",
			"2: @returncode = 0 \"\"\n3: @returncode = 2 \"0\"\n"},
		{"a call ends before the next statement or a label",
			"EXEC sp_a\nIF 1 = 1 EXEC sp_b @x = 1\nEXEC sp_c\nDone:",
			"1: sp_a\n2: sp_b [x=2 \"1\"]\n3: sp_c\n"},
		{"declare with values, set, and expressions",
			"DECLARE @a sysname = N'x', @b nvarchar(max), @c INT = 1 + 2, @t TABLE (id int)\nSET @b = @a\nSET @c = (SELECT 1)",
			"1: @a = 1 \"x\"\n1: @b = 0 \"\"\n1: @c = 7 \"\"\n1: @t = 0 \"\"\n2: @b = 3 \"@a\"\n3: @c = 7 \"\"\n"},
		{"job and schedule lookups",
			"SELECT @jobId = job_id FROM msdb.dbo.sysjobs WHERE (name = N'Nightly')\nSET @s = (SELECT schedule_id FROM msdb.dbo.sysschedules WHERE name = N'Daily')\nSELECT @n = COUNT(*) FROM msdb.dbo.sysjobs",
			"1: @jobid = 5 \"Nightly\"\n2: @s = 6 \"Daily\"\n3: @n = 7 \"\"\n"},
		{"dynamic SQL", "EXEC (@sql)\nEXEC @proc\nEXECUTE AS LOGIN = N'x'",
			"1: problem: dynamic SQL (EXEC of a string or a variable) is not read; write the procedure calls out\n2: problem: dynamic SQL (EXEC of a string or a variable) is not read; write the procedure calls out\n"},
		{"an expression as a parameter", "EXEC sp_a @x = N'a' + N'b', @y = 1",
			"1: sp_a [x=1 \"a\"] problem: a parameter is an expression; EXEC takes only constants and variables\n"},
		// T-SQL runs a procedure named without EXEC when it is the first
		// statement of its batch; later in the batch that is an error, and
		// a word that is not a procedure's starts some other statement.
		{"a call without EXEC first in its batch",
			"sp_add_job N'a'\nGO\n/* x */ msdb.dbo.sp_add_jobstep @job_name = N'a'\nsp_b\nGO\nRECONFIGURE\nGO\nQuit:\nGO\nsp_c",
			"1: sp_add_job [=1 \"a\"]\n2: GO\n3: sp_add_jobstep [job_name=1 \"a\"]\n5: GO\n7: GO\n9: GO\n10: sp_c\n"},
		// EXEC takes an identifier as a string; one in brackets is never a
		// keyword.
		{"bracketed words as values",
			"EXEC sp_add_job @job_name = [Backup], @category_name = [Select], @description = [NULL], @enabled = 1",
			"1: sp_add_job [job_name=1 \"Backup\"] [category_name=1 \"Select\"] [description=1 \"NULL\"] [enabled=2 \"1\"]\n"},
		{"unicode identifiers and strings", "EXEC sp_add_job @job_name = N'Sauvegarde différentielle ☃'",
			"1: sp_add_job [job_name=1 \"Sauvegarde différentielle ☃\"]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := calls(t, tc.src); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// What is left open is an error that names the line it opens on.
func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		msg  string
	}{
		{"EXEC sp_a\nEXEC sp_b @c = N'open\nmore", 2, "the string starting here is never closed with '"},
		{"/* one\n/* two */\n", 1, "the /* comment is never closed with */"},
		{"\n\nEXEC [sp_a", 3, "the identifier starting here is never closed with ]"},
		{"EXEC \"sp_a", 1, "the identifier starting here is never closed with \""},
	} {
		calls := 0
		err := read(tc.src, func(stmt) { calls++ })
		if calls != 0 {
			t.Errorf("read(%q) handed out %d statements of a script it refuses", tc.src, calls)
		}
		var syntax *syntaxError
		if !errors.As(err, &syntax) || syntax.line != tc.line || syntax.msg != tc.msg {
			t.Errorf("read(%q): got %v, want line %d: %s", tc.src, err, tc.line, tc.msg)
		}
	}
}

func TestDecodeText(t *testing.T) {
	utf16le := []byte{0xFF, 0xFE, 'G', 0, 'O', 0, 0xE9, 0}
	utf16be := []byte{0xFE, 0xFF, 0, 'G', 0, 'O', 0, 0xE9}
	for _, tc := range []struct {
		name     string
		in       []byte
		text     string
		encoding string
	}{
		{"UTF-8", []byte("GOé"), "GOé", encodingUTF8},
		{"UTF-8 with a byte order mark", append([]byte{0xEF, 0xBB, 0xBF}, "GOé"...), "GOé", encodingUTF8},
		{"UTF-16LE", utf16le, "GOé", encodingUTF16LE},
		{"UTF-16BE", utf16be, "GOé", encodingUTF16BE},
		{"Windows-1252", []byte{'G', 'O', 0xE9, 0x80}, "GOé€", encoding1252},
		// bcp -w and some tools write UTF-16 without a byte order mark;
		// T-SQL text holds no NUL, so NULs in every other byte say so.
		{"UTF-16LE without a byte order mark", utf16le[2:], "GOé", encodingUTF16LE},
		{"UTF-16BE without a byte order mark", utf16be[2:], "GOé", encodingUTF16BE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, enc, err := decodeText(tc.in)
			if err != nil || text != tc.text || enc != tc.encoding {
				t.Errorf("got %q %s %v, want %q %s", text, enc, err, tc.text, tc.encoding)
			}
		})
	}
	if _, _, err := decodeText([]byte{0xFF, 0xFE, 'G'}); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("odd UTF-16: got %v, want an invalid error", err)
	}
}

func TestObjectName(t *testing.T) {
	for in, want := range map[string]string{
		"Nightly backup":                 "Nightly-backup",
		"IndexOptimize - USER_DATABASES": "IndexOptimize-USER_DATABASES",
		"Sauvegarde différentielle":      "Sauvegarde-differentielle",
		"  [Weekly] (full)  ":            "Weekly-full",
		"already-fine_1.0":               "already-fine_1.0",
		"--trim--":                       "trim",
		"☃☃☃":                            "fallback",
		strings.Repeat("a", 200):         strings.Repeat("a", muster.MaxNameLen),
	} {
		got := objectName(in, "fallback")
		if got != want {
			t.Errorf("objectName(%q) = %q, want %q", in, got, want)
		}
		if err := muster.ValidateName("name", got); err != nil {
			t.Errorf("objectName(%q) = %q, which is not valid: %v", in, got, err)
		}
	}
	names := nameSet{}
	for _, want := range []string{"a", "a-2", "a-3"} {
		if got := names.unique("A"); !strings.EqualFold(got, want) {
			t.Errorf("unique: got %q, want %q", got, want)
		}
	}
	long := strings.Repeat("b", muster.MaxNameLen)
	names.unique(long)
	if got := names.unique(long); len(got) > muster.MaxNameLen || !strings.HasSuffix(got, "-2") {
		t.Errorf("unique of a name at the limit: got %q", got)
	}
}
