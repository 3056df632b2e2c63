package console

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// eventView is one entry of a node's timeline.
type eventView struct {
	Time, ISO, Kind, Decision, Reason, Profile, Rule, Loader, IP, State string
}

func makeEvent(e store.Event) eventView {
	kind := e.Type
	if kind == store.EventBoot {
		kind = "boot"
	}
	return eventView{Time: e.Time.UTC().Format("2006-01-02 15:04:05Z"), ISO: e.Time.UTC().Format(time.RFC3339), Kind: kind,
		Decision: e.Decision, Reason: e.Reason, Profile: e.Profile, Rule: ruleLabel(e.Rule), Loader: e.Loader, IP: e.IP, State: string(e.State)}
}

// decisionView is what the node would get if it booted now, and why.
type decisionView struct {
	Decision, Reason, Profile, Rule, Kind, Script string
}

// statusView is the part of the node page the live stream replaces.
type statusView struct {
	Row      row
	Decision decisionView
	Install  *store.Install // token cleared (Node.Public)
	Rule     string         // the install's profile rule, in words
	Started  string
	Ended    string
	LastWord string
	Local    string // the node's own local-boot command
	Changed  string
}

type nodeData struct {
	MAC      string
	URL      string
	Status   statusView
	Facts    store.Facts
	Labels   map[string]string
	Created  string
	Events   []eventView
	Profiles []string
	Live     string
}

// decide runs the boot decision as GET /nodes/<mac>/decision does: no
// boot is recorded, nothing consumed, and the install token is a
// placeholder (a real one never reaches a page).
func (c *Console) decide(n store.Node) decisionView {
	set := c.profileSet()
	if set == nil {
		return decisionView{Reason: "no profiles configured"}
	}
	cl := boot.Client{MAC: n.MAC, IP: n.LastIP, Platform: n.Facts.Platform, Loader: boot.LoaderIPXE}
	plan := boot.Decide(n, cl, set, c.cfg.Boot, "TOKEN")
	script, err := boot.IPXE(plan)
	s := string(script)
	if err != nil {
		s = "rendering failed: " + err.Error()
	}
	return decisionView{Decision: plan.Decision, Reason: plan.Reason, Profile: plan.Profile, Rule: ruleLabel(plan.Rule), Kind: string(plan.Kind), Script: s}
}

func (c *Console) status(n store.Node, now time.Time) statusView {
	n = n.Public()
	v := statusView{Row: makeRow(n, c.profileSet(), now), Decision: c.decide(n), Install: n.Install, Local: n.LocalBootScript,
		Changed: n.StateChangedAt.UTC().Format("2006-01-02 15:04:05Z")}
	if in := n.Install; in != nil {
		v.Rule = ruleLabel(in.Rule)
		v.Started = in.Started.UTC().Format("2006-01-02 15:04:05Z")
		if in.Ended != nil {
			v.Ended = in.Ended.UTC().Format("2006-01-02 15:04:05Z")
		}
		if in.LastWord != nil {
			v.LastWord = in.LastWord.UTC().Format("2006-01-02 15:04:05Z")
		}
	}
	return v
}

// node reads the node the path names, answering the problem itself.
func (c *Console) node(w http.ResponseWriter, r *http.Request) (store.Node, bool) {
	mac, err := store.ParseMAC(r.PathValue("mac"))
	if err != nil {
		c.problem(w, r, http.StatusBadRequest, "The address in the path is not a MAC: "+err.Error())
		return store.Node{}, false
	}
	n, err := c.cfg.Store.Get(mac)
	if errors.Is(err, store.ErrNotFound) {
		c.problem(w, r, http.StatusNotFound, "No node "+string(mac)+" is known (it was forgotten, or has never booted from this appliance).")
		return store.Node{}, false
	}
	if err != nil {
		c.storeProblem(w, r, "reading node "+string(mac), err)
		return store.Node{}, false
	}
	return n, true
}

func (c *Console) nodePage(w http.ResponseWriter, r *http.Request) {
	n, ok := c.node(w, r)
	if !ok {
		return
	}
	evs, err := c.cfg.Store.Events(n.MAC)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.storeProblem(w, r, "reading the events of "+string(n.MAC), err)
		return
	}
	d := &nodeData{MAC: string(n.MAC), URL: nodeURL(n.MAC), Status: c.status(n, c.now()), Facts: n.Facts, Labels: n.Labels,
		Created: n.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"), Live: Prefix + "events?node=" + string(n.MAC)}
	for _, e := range evs {
		d.Events = append(d.Events, makeEvent(e))
	}
	if set := c.profileSet(); set != nil {
		d.Profiles = set.Names()
	}
	title := string(n.MAC)
	if n.Hostname != "" {
		title = n.Hostname + " (" + title + ")"
	}
	c.render(w, r, http.StatusOK, "node", &pageData{Title: title, Nav: "fleet", Session: sessionOf(r),
		Flash: c.sessions.takeFlash(sessionOf(r).id), Data: d})
}

// confirmData is the confirmation page of an action.
type confirmData struct {
	Action, Question, Button, URL, Back string
	Fields                              map[string]string
	Danger                              bool
}

// confirmed reports whether the form carries the confirmation; if not, it
// shows the confirmation page (nothing changes before it is confirmed).
func (c *Console) confirmed(w http.ResponseWriter, r *http.Request, n store.Node, d confirmData) bool {
	if r.PostForm.Get("confirm") == "yes" {
		return true
	}
	d.URL, d.Back = r.URL.Path, nodeURL(n.MAC)
	c.render(w, r, http.StatusOK, "confirm", &pageData{Title: "Confirm: " + d.Action, Nav: "fleet", Session: sessionOf(r), Data: d})
	return false
}

func (c *Console) actReinstall(w http.ResponseWriter, r *http.Request) {
	n, ok := c.node(w, r)
	if !ok || !c.confirmed(w, r, n, confirmData{Action: "reinstall", Button: "Yes, reinstall",
		Question: "Mark " + string(n.MAC) + " for reinstall? Its next network boot runs the installer and erases what its profile's installer erases."}) {
		return
	}
	updated, err := c.cfg.Store.SetReinstall(n.MAC, true, c.now().UTC())
	if err != nil {
		c.storeProblem(w, r, "marking "+string(n.MAC)+" for reinstall", err)
		return
	}
	n = updated
	c.cfg.Metrics.ReinstallChanges.WithLabelValues("set").Inc()
	c.metrics.actions.WithLabelValues("reinstall").Inc()
	c.log.Info("reinstall set", "mac", n.MAC, "state", n.State, "via", "console")
	c.redirectFlash(w, r, nodeURL(n.MAC), string(n.MAC)+" is marked for reinstall: its next network boot runs the installer.", false)
}

func (c *Console) actCancel(w http.ResponseWriter, r *http.Request) {
	n, ok := c.node(w, r)
	if !ok {
		return
	}
	if n.State != store.StateReinstall {
		c.redirectFlash(w, r, nodeURL(n.MAC), "Nothing to cancel: "+string(n.MAC)+" is "+string(n.State)+", not waiting for a reinstall.", true)
		return
	}
	if !c.confirmed(w, r, n, confirmData{Action: "cancel reinstall", Button: "Yes, cancel the reinstall",
		Question: "Cancel the pending reinstall of " + string(n.MAC) + "? It boots its local disk again."}) {
		return
	}
	updated, err := c.cfg.Store.SetReinstall(n.MAC, false, c.now().UTC())
	if err != nil {
		c.storeProblem(w, r, "cancelling the reinstall of "+string(n.MAC), err)
		return
	}
	n = updated
	c.cfg.Metrics.ReinstallChanges.WithLabelValues("clear").Inc()
	c.metrics.actions.WithLabelValues("cancel").Inc()
	c.log.Info("reinstall clear", "mac", n.MAC, "state", n.State, "via", "console")
	c.redirectFlash(w, r, nodeURL(n.MAC), "Reinstall of "+string(n.MAC)+" cancelled: it boots its local disk.", false)
}

func (c *Console) actForget(w http.ResponseWriter, r *http.Request) {
	n, ok := c.node(w, r)
	if !ok || !c.confirmed(w, r, n, confirmData{Action: "forget", Button: "Yes, forget it", Danger: true,
		Question: "Forget " + string(n.MAC) + "? Its record, settings and history are deleted; if it boots again it comes back as a new node."}) {
		return
	}
	if err := c.cfg.Store.Delete(n.MAC); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.storeProblem(w, r, "forgetting "+string(n.MAC), err)
		return
	}
	c.log.Info("node forgotten", "mac", n.MAC, "via", "console")
	c.metrics.actions.WithLabelValues("forget").Inc()
	c.redirectFlash(w, r, Prefix, string(n.MAC)+" is forgotten.", false)
}

func (c *Console) actProfile(w http.ResponseWriter, r *http.Request) {
	n, ok := c.node(w, r)
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("profile"))
	set := c.profileSet()
	if name != "" && (set == nil || set.Profiles[name] == nil) {
		defined := ""
		if set != nil {
			defined = strings.Join(set.Names(), ", ")
		}
		c.redirectFlash(w, r, nodeURL(n.MAC), "Profile "+quote(name)+" is not defined (defined: "+defined+"); nothing was changed.", true)
		return
	}
	q := "Assign profile " + name + " to " + string(n.MAC) + "? Its next reinstall boots that profile."
	if name == "" {
		q = "Clear the profile assignment of " + string(n.MAC) + "? Groups and the default choose its profile again."
	}
	if !c.confirmed(w, r, n, confirmData{Action: "assign profile", Button: "Yes, change the profile", Question: q,
		Fields: map[string]string{"profile": name}}) {
		return
	}
	_, err := c.cfg.Store.Update(n.MAC, false, c.now().UTC(), store.AssignProfile(name))
	if err != nil {
		c.storeProblem(w, r, "setting the profile of "+string(n.MAC), err)
		return
	}
	c.log.Info("node profile set", "mac", n.MAC, "profile", name, "via", "console")
	c.metrics.actions.WithLabelValues("profile").Inc()
	msg := "Profile of " + string(n.MAC) + " set to " + name + "."
	if name == "" {
		msg = "Profile assignment of " + string(n.MAC) + " cleared."
	}
	c.redirectFlash(w, r, nodeURL(n.MAC), msg, false)
}

func (c *Console) actLocalBoot(w http.ResponseWriter, r *http.Request) {
	n, ok := c.node(w, r)
	if !ok {
		return
	}
	script := strings.TrimSpace(r.PostForm.Get("script"))
	if r.PostForm.Get("clear") != "" {
		script = ""
	}
	if script != "" {
		checked, err := boot.ValidateLocalBootScript(script)
		if err != nil {
			c.redirectFlash(w, r, nodeURL(n.MAC), "Local-boot command "+quote(script)+" refused: "+err.Error()+"; nothing was changed.", true)
			return
		}
		script = checked
	}
	q := "Set the local-boot command of " + string(n.MAC) + " to “" + script + "”?"
	if script == "" {
		q = "Clear the local-boot command of " + string(n.MAC) + "? It gets the appliance's default for its platform."
	}
	if !c.confirmed(w, r, n, confirmData{Action: "local-boot command", Button: "Yes, change it", Question: q,
		Fields: map[string]string{"script": script}}) {
		return
	}
	if _, err := c.cfg.Store.SetLocalBootScript(n.MAC, script, c.now().UTC()); err != nil {
		c.storeProblem(w, r, "setting the local-boot command of "+string(n.MAC), err)
		return
	}
	c.log.Info("local-boot script set", "mac", n.MAC, "script", script, "via", "console")
	c.metrics.actions.WithLabelValues("local_boot").Inc()
	msg := "Local-boot command of " + string(n.MAC) + " set to “" + script + "”."
	if script == "" {
		msg = "Local-boot command of " + string(n.MAC) + " cleared: the platform default applies."
	}
	c.redirectFlash(w, r, nodeURL(n.MAC), msg, false)
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return "“" + s + "”"
}
