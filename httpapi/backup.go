package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// BackupStatusTrailer ends every GET /backup: "ok" when the whole backup was
// written, else the error. A body cut short has no "ok", so the client can
// tell a complete backup from a broken one after a 200 status.
const BackupStatusTrailer = "X-Backup-Status"

// backup streams a consistent snapshot of the database (Badger's backup
// stream between a header and an end marker, store/backup.go; pxe-pilot
// restore loads it) while the appliance keeps serving.
func (s *Server) backup(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	b, ok := s.cfg.Store.(store.Backuper)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store cannot write backups")
		return
	}
	w.Header().Set("Trailer", BackupStatusTrailer)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="pxe-pilot-%s.backup"`, time.Now().UTC().Format("20060102T150405Z")))
	w.WriteHeader(http.StatusOK)
	cw := &countingWriter{w: w}
	if err := b.Backup(cw); err != nil {
		s.m.StoreErrors.WithLabelValues("backup").Inc()
		s.log.Error("backup failed", "bytes", cw.n, "err", err)
		w.Header().Set(BackupStatusTrailer, "failed: "+err.Error())
		return
	}
	w.Header().Set(BackupStatusTrailer, "ok")
	s.log.Info("backup sent", "bytes", cw.n)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
