package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// sinceChoices are the "seen since" filter's options.
var sinceChoices = []struct{ Value, Label string }{
	{"", "any time"}, {"1h", "last hour"}, {"24h", "last 24 hours"}, {"168h", "last 7 days"}, {"720h", "last 30 days"},
}

// fleetQuery is the fleet view's filter form, as the query string says it.
type fleetQuery struct {
	Q, State, Profile, Label, Since string
	After                           string // the page cursor (a MAC)
}

func parseFleetQuery(v url.Values) fleetQuery {
	g := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	return fleetQuery{Q: g("q"), State: g("state"), Profile: g("profile"), Label: g("label"), Since: g("since"), After: g("after")}
}

// filter maps the form onto store.Filter; the error names the field at
// fault and what it accepts.
func (q fleetQuery) filter(now time.Time) (store.Filter, store.MAC, error) {
	f := store.Filter{Query: q.Q, Profile: q.Profile}
	if q.State != "" {
		ok := false
		for _, s := range store.States {
			ok = ok || string(s) == q.State
		}
		if !ok {
			return f, "", fmt.Errorf("state %q is not a lifecycle state; choose one of %s", q.State, statesList())
		}
		f.State = store.State(q.State)
	}
	if q.Label != "" {
		k, v, _ := strings.Cut(q.Label, "=")
		if err := store.ValidateLabel(k, v); err != nil {
			return f, "", fmt.Errorf("label filter %q: %v (write key or key=value)", q.Label, err)
		}
		f.Label = q.Label
	}
	if q.Since != "" {
		d, err := time.ParseDuration(q.Since)
		if err != nil || d <= 0 {
			return f, "", fmt.Errorf("seen since %q is not a duration such as 24h", q.Since)
		}
		f.SeenSince = now.Add(-d)
	}
	var after store.MAC
	if q.After != "" {
		m, err := store.ParseMAC(q.After)
		if err != nil {
			return f, "", fmt.Errorf("page cursor %q: %v (start again from the first page)", q.After, err)
		}
		after = m
	}
	return f, after, nil
}

// values is the query string of the same filter (page links, the live
// stream).
func (q fleetQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": q.Q, "state": q.State, "profile": q.Profile, "label": q.Label, "since": q.Since} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func statesList() string {
	s := make([]string, len(store.States))
	for i, st := range store.States {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// row is one node in the fleet table.
type row struct {
	MAC, URL, Hostname, State             string
	Outcome, Reason, Progress             string
	Assigned, Resolved, Rule, ResolvedErr string
	LastSeen, LastSeenISO, Ago            string
	IP, Platform, Hardware                string
	Boots                                 uint64
}

func makeRow(n store.Node, set *profiles.Set, now time.Time) row {
	r := row{MAC: string(n.MAC), URL: nodeURL(n.MAC), Hostname: n.Hostname, State: string(n.State), Assigned: n.Profile,
		IP: n.LastIP, Platform: n.Facts.Platform, Boots: n.BootCount, Ago: ago(now, n.LastSeen), LastSeen: "never"}
	if n.LastSeen != nil {
		r.LastSeen = n.LastSeen.UTC().Format("2006-01-02 15:04Z")
		r.LastSeenISO = n.LastSeen.UTC().Format(time.RFC3339)
	}
	if n.Facts.BuildArch != "" {
		r.Platform = strings.TrimSpace(r.Platform + " " + n.Facts.BuildArch)
	}
	r.Hardware = strings.TrimSpace(n.Facts.Manufacturer + " " + n.Facts.Product)
	if in := n.Install; in != nil {
		r.Outcome, r.Reason, r.Progress = in.Outcome, in.Reason, in.Progress
	}
	if set != nil {
		res := set.Resolve(&n)
		r.Resolved, r.Rule = res.Name, ruleLabel(res.Rule)
		if res.Err != nil {
			r.ResolvedErr = res.Err.Error()
		}
	}
	return r
}

// ruleLabel words the rule that chose a profile for a table cell.
func ruleLabel(rule string) string {
	switch rule {
	case profiles.RuleDefault:
		return "default rule"
	case profiles.RuleNode:
		return "assigned"
	}
	return rule
}

type stateCount struct {
	State string
	N     int
	URL   string
	On    bool
}

type fleetData struct {
	Query     fleetQuery
	Err       string
	Rows      []row
	Counts    []stateCount
	Total     int
	Next      string // URL of the next page, "" on the last
	First     string // URL of the first page, "" on it
	Live      string // the live stream's URL for this view
	After     string
	States    []store.State
	Profiles  []string
	Since     []struct{ Value, Label string }
	PageSize  int
	Filtering bool
}

func (d *fleetData) stateCount(s store.State) int {
	for _, c := range d.Counts {
		if c.State == string(s) {
			return c.N
		}
	}
	return 0
}

func (c *Console) profileSet() *profiles.Set {
	if c.cfg.Profiles == nil {
		return nil
	}
	return c.cfg.Profiles()
}

func (c *Console) counts(q fleetQuery) ([]stateCount, int, error) {
	cnt, err := c.cfg.Store.CountByState()
	if err != nil {
		return nil, 0, err
	}
	out := make([]stateCount, 0, len(store.States))
	total := 0
	for _, s := range store.States {
		v := q.values()
		v.Set("state", string(s))
		out = append(out, stateCount{State: string(s), N: cnt[s], URL: Prefix + "?" + v.Encode(), On: q.State == string(s)})
		total += cnt[s]
	}
	return out, total, nil
}

func (c *Console) fleet(w http.ResponseWriter, r *http.Request) {
	now := c.now()
	q := parseFleetQuery(r.URL.Query())
	d := &fleetData{Query: q, States: store.States, Since: sinceChoices, PageSize: c.cfg.PageSize}
	d.Filtering = q.Q != "" || q.State != "" || q.Profile != "" || q.Label != "" || q.Since != ""
	set := c.profileSet()
	if set != nil {
		d.Profiles = set.Names()
	}
	var err error
	if d.Counts, d.Total, err = c.counts(q); err != nil {
		c.storeProblem(w, r, "counting the nodes", err)
		return
	}
	f, after, ferr := q.filter(now)
	code := http.StatusOK
	if ferr != nil {
		d.Err, code = ferr.Error(), http.StatusBadRequest
	} else {
		var nodes []store.Node
		var next store.MAC
		// A state no node is in needs no scan (the counts are maintained).
		if f.State == "" || d.stateCount(f.State) > 0 {
			nodes, next, err = c.cfg.Store.ListPage(after, c.cfg.PageSize, f)
		}
		if err != nil {
			c.storeProblem(w, r, "listing the nodes", err)
			return
		}
		d.Rows = make([]row, len(nodes))
		for i, n := range nodes {
			d.Rows[i] = makeRow(n, set, now)
		}
		v := q.values()
		if next != "" {
			v.Set("after", string(next))
			d.Next = Prefix + "?" + v.Encode()
			v.Del("after")
		}
		if after != "" {
			d.First = Prefix + "?" + v.Encode()
		}
		d.After = string(after)
		v.Set("after", string(after))
		v.Set("next", string(next))
		d.Live = Prefix + "events?" + v.Encode()
	}
	c.render(w, r, code, "fleet", &pageData{Title: "Fleet", Nav: "fleet", Session: sessionOf(r),
		Flash: c.sessions.takeFlash(sessionOf(r).id), Data: d})
}

// storeProblem answers a store failure with 503 and logs it.
func (c *Console) storeProblem(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.log.Error("console: store failed", "while", what, "err", err)
	c.problem(w, r, http.StatusServiceUnavailable, "The node store failed while "+what+": "+err.Error()+". The appliance page shows the store's health.")
}
