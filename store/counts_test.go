package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"
)

// TestCountsFollowEveryWrite drives random writes of every kind over a
// few dozen nodes and, after each, compares the maintained counts with a
// full recount; then reopens the store and compares again.
func TestCountsFollowEveryWrite(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	macs := make([]MAC, 40)
	for i := range macs {
		macs[i] = MAC(fmt.Sprintf("52:54:00:00:01:%02x", i))
	}
	for i := 0; i < 600; i++ {
		m := macs[rng.IntN(len(macs))]
		now = now.Add(time.Second)
		var err error
		switch op := rng.IntN(7); op {
		case 0:
			_, _, err = s.RecordBoot(m, Sighting{Time: now}, localDecision)
		case 1:
			_, err = s.SetReinstall(m, true, now)
		case 2:
			_, err = s.SetReinstall(m, false, now)
		case 3:
			_, err = s.MarkInstalled(m, now)
		case 4:
			err = s.Delete(m)
		case 5:
			_, err = s.Update(m, true, now, func(n *Node) (*Event, error) {
				if n.State == StateInstalling {
					ev, _ := n.Report(EventFailed, true, "", "t", "boom", now)
					return &ev, nil
				}
				n.Hostname = "h"
				return nil, nil
			})
		case 6:
			_, err = s.SetLocalBootScript(m, "exit 1", now)
		}
		if err != nil && !isNotFound(err) {
			t.Fatalf("op %d: %v", i, err)
		}
		got, _ := s.CountByState()
		want, err := s.Recount()
		if err != nil {
			t.Fatal(err)
		}
		dropZero(want)
		if !maps.Equal(got, want) {
			t.Fatalf("after op %d: counts %v, recount %v", i, got, want)
		}
	}
	before, _ := s.CountByState()
	s.Close()
	s = openT(t, dir, Options{})
	if after, _ := s.CountByState(); !maps.Equal(before, after) {
		t.Fatalf("counts after reopen %v, before %v", after, before)
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func dropZero(m map[State]int) {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
}

// TestFeed: every committed change reaches a subscriber in commit order;
// a full subscriber is marked lagged instead of blocking the writer.
func TestFeed(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	sub := s.Subscribe(8)
	defer sub.Close()
	m := MAC("52:54:00:00:02:01")
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Second)}, localDecision); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(m); err != nil {
		t.Fatal(err)
	}
	want := []string{"reinstall/", "installing/reinstall", "deleted/"}
	for i, w := range want {
		c := <-sub.C
		got := "deleted"
		if c.Node != nil {
			got = string(c.Node.State)
		}
		got += "/"
		if c.Event != nil {
			got += c.Event.Decision
		}
		if c.MAC != m || got != w {
			t.Fatalf("change %d = %s %s, want %s", i, c.MAC, got, w)
		}
	}
	for i := 0; i < 20; i++ { // more than the buffer holds
		if _, err := s.SetReinstall(m, i%2 == 0, t0.Add(time.Duration(i+2)*time.Second)); err != nil && !isNotFound(err) {
			t.Fatal(err)
		}
	}
	if !sub.Lagged() {
		t.Fatal("a full subscriber was not marked lagged")
	}
	if sub.Lagged() {
		t.Fatal("Lagged did not clear")
	}
}
