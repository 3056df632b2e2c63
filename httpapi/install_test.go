package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// TestNodeAnswersHideInstallToken: the install token is the installer's
// secret for its call-backs; no admin answer carrying the node shows it
// (store.Node.Public), whichever endpoint answers.
func TestNodeAnswersHideInstallToken(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:aa:bb:41"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)
	n := e.node(mac)
	if n.State != store.StateInstalling || n.Install == nil || n.Install.Token == "" {
		t.Fatalf("after the reinstall boot: %+v (install %+v), want installing with a token", n, n.Install)
	}
	token := n.Install.Token
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/nodes/" + mac, ""},
		{"GET", "/nodes", ""},
		{"DELETE", "/nodes/" + mac + "/reinstall", ""},
		{"PUT", "/nodes/" + mac + "/local-boot-config", `{"script": "exit 1"}`},
		{"DELETE", "/nodes/" + mac + "/local-boot-config", ""},
	} {
		w := e.do(c.method, c.path, c.body)
		wantCode(t, w, http.StatusOK)
		if strings.Contains(w.Body.String(), token) {
			t.Errorf("%s %s shows the install token:\n%s", c.method, c.path, w.Body.String())
		}
	}
}
