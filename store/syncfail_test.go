package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A real write-back failure. The helper runs in a private mount namespace
// (root only: CI runs as root): an ext2 file system in a sparse image on a
// small tmpfs, through a loop device. Filling the tmpfs leaves the image's
// unwritten blocks without backing, so the kernel's write-back of the
// store's new pages fails with an I/O error, as on a failing disk or a thin
// volume out of space, and fdatasync reports it. ext2 has no journal to
// abort, so the file system stays writable and, with the tmpfs freed again,
// the next fdatasync succeeds: exactly the case the store must not trust.
//
// Checked: the sync loop's failure reaches Options.OnSyncError; from then
// on Ping fails with ErrSyncFailed, an admin change and a boot that would
// consume a reinstall flag are refused and change nothing, boots that
// change no state still work; with space back, a sync succeeds (the kernel
// reported the error once) but the store still refuses and writes no sync
// mark; Close flushes everything, and the reopened store holds every
// acknowledged change.
func TestFsyncFailureIsSticky(t *testing.T) {
	inLoopDeviceNamespace(t, "fsyncfail")
}

// inLoopDeviceNamespace runs helper mode in a private mount namespace where
// it can mount a loop device (diskThatCannotWriteBack): root, mkfs.ext2 and
// mount are needed (CI has them).
func inLoopDeviceNamespace(t *testing.T, mode string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("%s mounts a loop device in a private mount namespace and needs root (CI runs as root)", t.Name())
	}
	for _, tool := range []string{"mkfs.ext2", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (apt-get install e2fsprogs mount): %v", tool, err)
		}
	}
	inMountNamespace(t, mode)
}

// privateTmpfs makes every mount of this (new) mount namespace private, so
// nothing mounted here leaks to the host, and mounts a tmpfs of size bytes
// on mnt.
func privateTmpfs(mnt string, size int64) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", mnt, err)
	}
	return nil
}

// diskThatCannotWriteBack mounts, in this (new) mount namespace, ext2 on a
// loop device over a sparse 96 MiB image in a 24 MiB tmpfs at mnt. fill
// fills the tmpfs, so that the image can no longer grow: from then on, the
// write-back of a page into a block the image never had fails with ENOSPC
// in the block layer, as on a failing disk or a full thin volume. It
// returns the filler's path; removing it gives the space back.
func diskThatCannotWriteBack(mnt string) (fsDir string, fill func() (string, error), unmount func(), err error) {
	if err := privateTmpfs(mnt, 24<<20); err != nil {
		return "", nil, nil, err
	}
	img, fsDir := filepath.Join(mnt, "disk.img"), filepath.Join(mnt, "fs")
	unmount = func() { syscall.Unmount(fsDir, 0); syscall.Unmount(mnt, syscall.MNT_DETACH) }
	err = func() error {
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(img, 96<<20); err != nil { // sparse: only what is written takes tmpfs pages
			return err
		}
		if err := os.Mkdir(fsDir, 0o700); err != nil {
			return err
		}
		for _, c := range [][]string{
			{"mkfs.ext2", "-q", "-F", img},
			// mount(8) sets the loop device up to detach itself on unmount.
			{"mount", "-t", "ext2", "-o", "loop,errors=continue", img, fsDir},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
			}
		}
		return nil
	}()
	if err != nil {
		unmount()
		return "", nil, nil, err
	}
	fill = func() (string, error) {
		filler := filepath.Join(mnt, "filler")
		f, err := os.Create(filler)
		if err != nil {
			return "", err
		}
		defer f.Close()
		chunk := make([]byte, 1<<20)
		for i := 0; i < 32; i++ { // bounded: the tmpfs is 24 MiB
			if _, err = f.Write(chunk); err != nil {
				break
			}
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return "", fmt.Errorf("filling the tmpfs: %v, want ENOSPC", err)
		}
		return filler, nil
	}
	return fsDir, fill, unmount, nil
}

// syncUntilClean syncs s's logs until a sync succeeds once the space is
// back: the kernel reports each write-back error once, so the errors of
// pages the flusher wrote back before are reported first (bounded: 20
// tries).
func syncUntilClean(s *Store, say func(string, ...any)) error {
	for i := 0; ; i++ {
		err := s.syncWAL()
		if err == nil {
			say("with space back, syncWAL succeeded at try %d", i+1)
			return nil
		}
		if i == 20 {
			return fmt.Errorf("syncWAL with space back, 20 times: %v (the kernel should report a write-back error once)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fsyncFailHelper runs in its own mount namespace.
func fsyncFailHelper(mnt string, say func(string, ...any)) int {
	fail := func(f string, a ...any) int { say("fail "+f, a...); return 1 }
	fsDir, fill, unmount, err := diskThatCannotWriteBack(mnt)
	if err != nil {
		return fail("%v", err)
	}
	defer unmount()
	dir := filepath.Join(fsDir, "pxe.db")

	syncErrs := make(chan error, 100)
	open := func() (*Store, error) {
		return Open(dir, Options{Logger: quiet, SyncInterval: 20 * time.Millisecond, OnSyncError: func(err error) {
			select {
			case syncErrs <- err:
			default:
			}
		}})
	}
	s, err := open()
	if err != nil {
		return fail("open: %v", err)
	}
	defer func() { s.Close() }()
	flagged, refused, consumed := macN(0), macN(1), macN(2)
	for _, m := range []MAC{flagged, consumed} {
		if _, err := s.SetReinstall(m, true, t0); err != nil {
			return fail("SetReinstall %s before the failure: %v", m, err)
		}
	}
	if _, ev, err := s.RecordBoot(consumed, Sighting{Time: t0}, localDecision); err != nil || ev.Decision != DecisionReinstall {
		return fail("the boot of %s before the failure: %+v, %v", consumed, ev, err)
	}
	if err := s.Ping(); err != nil {
		return fail("Ping before the failure: %v", err)
	}

	filler, err := fill()
	if err != nil {
		return fail("%v", err)
	}

	// Boots of new machines, which sync only in the background, until the
	// sync loop meets the failed write-back (bounded: 5,000 boots, 30 s).
	var syncErr error
	deadline := time.Now().Add(30 * time.Second)
	boots := 0
	for ; syncErr == nil && boots < 5000 && time.Now().Before(deadline); boots++ {
		if _, _, err := s.RecordBoot(macN(1000+boots), Sighting{Time: t0, IP: "203.0.113.7"}, localDecision); err != nil {
			return fail("boot %d, before the sync failed: %v", boots, err)
		}
		if boots%50 == 49 {
			select {
			case syncErr = <-syncErrs:
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if syncErr == nil {
		return fail("no sync failed after %d boots on a file system that cannot write back", boots)
	}
	say("the sync loop failed after %d boots: %v", boots, syncErr)
	var fe *fsyncError
	if !errors.As(syncErr, &fe) || !strings.Contains(syncErr.Error(), dir) {
		return fail("the sync loop's error is not a failed sync naming the database's file: %v", syncErr)
	}

	refusals := func(when string) int {
		err := s.Ping()
		if !errors.Is(err, ErrSyncFailed) || !strings.Contains(err.Error(), "database at "+dir) || !strings.Contains(err.Error(), "restart") {
			return fail("Ping %s: %v, want ErrSyncFailed naming the database and the way out", when, err)
		}
		if _, err := s.SetReinstall(refused, true, t0); !errors.Is(err, ErrSyncFailed) {
			return fail("SetReinstall %s: %v, want ErrSyncFailed", when, err)
		}
		if _, err := s.Get(refused); !errors.Is(err, ErrNotFound) {
			return fail("the refused SetReinstall %s was committed: %v", when, err)
		}
		if _, _, err := s.RecordBoot(flagged, Sighting{Time: t0}, localDecision); !errors.Is(err, ErrSyncFailed) {
			return fail("the boot of flagged %s %s: %v, want ErrSyncFailed", flagged, when, err)
		}
		if n, err := s.Get(flagged); err != nil || n.State != StateReinstall {
			return fail("the refused boot %s consumed the flag: %+v, %v", when, n, err)
		}
		if _, ev, err := s.RecordBoot(macN(900), Sighting{Time: t0}, localDecision); err != nil || ev.Decision != DecisionLocal {
			return fail("a boot that changes no state %s: %+v, %v", when, ev, err)
		}
		return 0
	}
	if refusals("after the failed sync") != 0 {
		return 1
	}

	// Space back: the kernel reports each write-back error once, so once
	// the errors of pages the flusher wrote back before the space came
	// back are reported (bounded: 20 tries), a sync succeeds, and proves
	// nothing about the pages it dropped.
	if err := os.Remove(filler); err != nil {
		return fail("%v", err)
	}
	if err := syncUntilClean(s, say); err != nil {
		return fail("%v", err)
	}
	s.acks.mu.Lock()
	marked := s.acks.st.synced
	s.acks.mu.Unlock()
	if err := s.syncAndMark(); err != nil {
		return fail("syncAndMark with space back: %v", err)
	}
	s.acks.mu.Lock()
	now := s.acks.st.synced
	s.acks.mu.Unlock()
	if now != marked {
		return fail("a sync mark was written after the failed sync: %d, was %d", now, marked)
	}
	if refusals("with space back and a sync that succeeded") != 0 {
		return 1
	}

	if err := s.Close(); err != nil {
		return fail("Close: %v", err)
	}
	if s, err = open(); err != nil {
		return fail("reopening: %v", err)
	}
	if err := s.Ping(); err != nil {
		return fail("Ping after the reopen: %v", err)
	}
	for m, want := range map[MAC]State{flagged: StateReinstall, consumed: StateInstalling, macN(1000): StateLocal, macN(900): StateLocal} {
		if n, err := s.Get(m); err != nil || n.State != want {
			return fail("after the reopen, %s: %+v, %v; want state %s", m, n, err, want)
		}
	}
	if _, err := s.Get(refused); !errors.Is(err, ErrNotFound) {
		return fail("after the reopen, the refused %s: %v", refused, err)
	}
	say("ok refused durable writes from the failed sync on, kept every acknowledged one")
	return 0
}

// TestFirstFailedFsyncUndoesTheBoot: when the fsync that fails first is a
// boot's own (the one that consumed a reinstall flag), that boot is undone:
// the machine got the error script and boots its disk, so its reinstall
// stays pending, as for the boots refused after the failure. It used to
// stay "installing" with no installer running, until the stall sweep
// marked it failed. Root, like TestFsyncFailureIsSticky.
func TestFirstFailedFsyncUndoesTheBoot(t *testing.T) {
	inLoopDeviceNamespace(t, "fsyncfailboot")
}

// fsyncFailBootHelper runs in its own mount namespace.
func fsyncFailBootHelper(mnt string, say func(string, ...any)) int {
	fail := func(f string, a ...any) int { say("fail "+f, a...); return 1 }
	fsDir, fill, unmount, err := diskThatCannotWriteBack(mnt)
	if err != nil {
		return fail("%v", err)
	}
	defer unmount()
	dir := filepath.Join(fsDir, "pxe.db")
	// No background sync: the first sync after the fill is a boot's own.
	open := func() (*Store, error) { return Open(dir, Options{Logger: quiet, SyncInterval: time.Hour}) }
	s, err := open()
	if err != nil {
		return fail("open: %v", err)
	}
	defer func() { s.Close() }()
	const flagged = 40
	for i := 0; i < flagged; i++ {
		if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
			return fail("SetReinstall before the fill: %v", err)
		}
	}
	filler, err := fill()
	if err != nil {
		return fail("%v", err)
	}
	// Boots of new machines dirty pages the image has no blocks for; then
	// a flagged machine boots, and its fsync writes them back. Bounded:
	// 40 flagged machines, 200 boots before each.
	victim, served := MAC(""), 0
	for i := 0; i < flagged && victim == ""; i++ {
		for j := 0; j < 200; j++ {
			if _, _, err := s.RecordBoot(macN(1000+i*200+j), Sighting{Time: t0, IP: "203.0.113.7"}, localDecision); err != nil {
				return fail("a boot that changes no state, before any sync failed: %v", err)
			}
		}
		_, ev, err := s.RecordBoot(macN(i), Sighting{Time: t0.Add(time.Minute), IP: "203.0.113.8"}, localDecision)
		switch {
		case err == nil && ev.Decision == DecisionReinstall:
			served++
		case err != nil && strings.Contains(err.Error(), "committed but not synced"):
			victim = macN(i)
			say("the fsync of %s's boot failed first, after %d flagged boots were served: %v", victim, served, err)
		default:
			return fail("boot of flagged %s: %+v, %v", macN(i), ev, err)
		}
	}
	if victim == "" {
		return fail("no boot's fsync failed on a file system that cannot write back")
	}
	check := func(when string) int {
		n, err := s.Get(victim)
		if err != nil || n.State != StateReinstall || !n.Reinstall || n.Install != nil {
			return fail("%s, %s = %+v, %v; want its reinstall pending", when, victim, n, err)
		}
		c, err := s.CountByState()
		if err != nil || c[StateInstalling] != served || c[StateReinstall] != flagged-served {
			return fail("%s, counts %v (%v); want %d installing, %d reinstall", when, c, err, served, flagged-served)
		}
		installing := 0
		if err := s.Installing(func(n Node) bool {
			installing++
			return n.MAC != victim
		}); err != nil || installing != served {
			return fail("%s, the installing index lists %d nodes (%v), want the %d served", when, installing, err, served)
		}
		return 0
	}
	if check("after the failed fsync") != 0 {
		return 1
	}
	evs, err := s.Events(victim)
	if err != nil || len(evs) == 0 || evs[0].Decision != DecisionError || !strings.Contains(evs[0].Reason, "could not sync") {
		return fail("newest event of %s: %+v, %v; want the undo, saying why", victim, evs, err)
	}
	if err := s.Ping(); !errors.Is(err, ErrSyncFailed) {
		return fail("Ping after the failed fsync: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		return fail("%v", err)
	}
	if err := syncUntilClean(s, say); err != nil {
		return fail("%v", err)
	}
	if err := s.Close(); err != nil {
		return fail("Close: %v", err)
	}
	if s, err = open(); err != nil {
		return fail("reopening: %v", err)
	}
	if check("after the reopen") != 0 {
		return 1
	}
	say("ok the boot whose fsync failed first was undone, its reinstall kept")
	return 0
}

// TestUndoBootKeepsLaterChanges: the undo of a boot whose fsync failed puts
// back only what the boot's transition changed; a change an admin made in
// between (labels here) stays. It used to write back the whole node as it
// was before the boot.
func TestUndoBootKeepsLaterChanges(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := macN(7)
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	prev, err := s.Get(m)
	if err != nil {
		t.Fatal(err)
	}
	sg := Sighting{Time: t0.Add(time.Minute), IP: "203.0.113.9"}
	wrote, ev, err := s.RecordBoot(m, sg, localDecision)
	if err != nil || ev.Decision != DecisionReinstall {
		t.Fatalf("boot: %+v, %v", ev, err)
	}
	if _, err := s.Update(m, false, t0.Add(2*time.Minute), func(n *Node) (*Event, error) {
		n.Labels = map[string]string{"rack": "r9"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	undo := s.undoBoot(m, prev, wrote, sg)
	var c commit
	if err := s.update(m, &c, func(txn *badger.Txn) (bool, error) { return false, undo(txn, &c) }); err != nil {
		t.Fatal(err)
	}
	n, err := s.Get(m)
	if err != nil || n.State != StateReinstall || !n.Reinstall || n.Install != nil || n.InstallCount != prev.InstallCount {
		t.Fatalf("after the undo: %+v, %v; want the reinstall pending again", n, err)
	}
	if n.Labels["rack"] != "r9" || n.BootCount != wrote.BootCount {
		t.Errorf("after the undo: labels %v, boot count %d; want the admin's labels and the boot counted", n.Labels, n.BootCount)
	}
}
