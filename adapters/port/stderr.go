package port

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// tail keeps the last bytes written to it.
type tail struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	lost bool
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.lost = true
	}
	return len(p), nil
}

// String returns the kept bytes, marked when earlier ones were dropped.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}

// stderrSummary is the tail of a worker's stderr as an error quotes it:
// each of the worker's JSON log records as "level: msg" (its traceback and
// other fields are in the host's log, where pumpStderr sent them), other
// lines as they are, joined by " | ", at most the last 2 KiB.
func stderrSummary(tail string) string {
	var lines []string
	for line := range strings.SplitSeq(strings.TrimRight(tail, "\n"), "\n") {
		var rec struct {
			Level *string `json:"level"`
			Msg   *string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level != nil && rec.Msg != nil {
			line = *rec.Level + ": " + *rec.Msg
		}
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return lastBytes(strings.Join(lines, " | "), 2048)
}

// maxLogLine is the longest stderr line logged as one record; longer lines
// are split, never fatal.
const maxLogLine = 64 << 10

// pumpStderr reads a worker's stderr until EOF or error, keeping a tail
// and re-logging each line: JSON lines at their own level with their
// fields, other lines as they are. It never uses bufio.Scanner, which dies
// on long lines.
func pumpStderr(r io.Reader, t *tail, log *slog.Logger) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			_, _ = t.Write(line)
			logLine(log, bytes.TrimRight(line, "\r\n"))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warning": slog.LevelWarn,
	"warn": slog.LevelWarn, "error": slog.LevelError, "critical": slog.LevelError,
}

// hostKeys are the attributes the logger of a worker's stderr carries
// already (Adapter.start gives it adapter and worker_id): a worker's
// record that repeats one is logged with the host's, never with both.
var hostKeys = map[string]bool{"adapter": true, "worker_id": true}

func logLine(log *slog.Logger, line []byte) {
	if len(line) == 0 {
		return
	}
	ctx := context.Background()
	if line[0] == '{' {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil {
			level, ok := levels[asString(rec["level"])]
			if !ok {
				level = slog.LevelInfo
			}
			msg := asString(rec["msg"])
			attrs := make([]slog.Attr, 0, len(rec))
			for _, k := range slices.Sorted(maps.Keys(rec)) {
				if k != "level" && k != "msg" && k != "time" && !hostKeys[k] {
					attrs = append(attrs, slog.Any(k, rec[k]))
				}
			}
			log.LogAttrs(ctx, level, msg, attrs...)
			return
		}
	}
	log.LogAttrs(ctx, slog.LevelInfo, string(line), slog.Bool("raw", true))
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
