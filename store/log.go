package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// badgerLogger routes Badger's printf-style logging to slog. Badger's Info
// lines are start-up and compaction chatter, so they go to Debug, and are
// formatted only when Debug is on: Badger logs a Debugf line on every
// commit, and formatting it anyway cost 4 % of a boot's CPU.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) debug(f string, a []any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Infof(f string, a ...any)  { b.debug(f, a) }
func (b badgerLogger) Debugf(f string, a ...any) { b.debug(f, a) }
