// PXE Pilot console: live updates over Server-Sent Events. The pages work
// without this script; it only keeps them current.
"use strict";
(function () {
  var status = document.getElementById("live-status");
  var fleet = document.getElementById("fleet");
  var node = document.getElementById("node-status");
  var el = fleet || node;
  if (!el || !window.EventSource) { return; }
  var url = el.getAttribute("data-live");
  if (!url) { return; }
  function say(s) { if (status) { status.textContent = s; } }
  function data(e) { try { return JSON.parse(e.data); } catch (x) { return {}; } }
  function fragment(html, wrap) {
    var t = document.createElement("template");
    t.innerHTML = wrap ? "<table><tbody>" + html + "</tbody></table>" : html;
    return wrap ? t.content.querySelector("tr") : t.content;
  }
  var es = new EventSource(url);
  es.onopen = function () { say("Live"); document.body.setAttribute("data-live", "open"); };
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) {
      say("Live updates stopped: reload the page (you may need to sign in again)");
      document.body.setAttribute("data-live", "closed");
      return;
    }
    say("Reconnecting…");
    document.body.setAttribute("data-live", "retry");
  };
  es.addEventListener("busy", function () { say("Live updates paused: too many browsers"); });
  var reloading = false;
  es.addEventListener("resync", function () {
    if (reloading) { return; }
    reloading = true;
    say("Catching up…");
    setTimeout(function () { window.location.reload(); }, 500);
  });
  if (fleet) {
    var rows = document.getElementById("rows");
    es.addEventListener("counts", function (e) {
      var c = data(e);
      Object.keys(c).forEach(function (k) {
        var n = document.getElementById("count-" + k);
        if (n) { n.textContent = c[k]; }
      });
    });
    es.addEventListener("remove", function (e) {
      var r = document.getElementById("n-" + data(e).mac);
      if (r) { r.parentNode.removeChild(r); }
    });
    es.addEventListener("row", function (e) {
      var d = data(e);
      var tr = fragment(d.html, true);
      if (!tr) { return; }
      tr.classList.add("fresh");
      var old = document.getElementById("n-" + d.mac);
      if (old) { old.parentNode.replaceChild(tr, old); return; }
      var before = null;
      for (var i = 0; i < rows.children.length; i++) {
        if (rows.children[i].getAttribute("data-mac") > d.mac) { before = rows.children[i]; break; }
      }
      rows.insertBefore(tr, before);
      var empty = document.getElementById("empty");
      if (empty) { empty.parentNode.removeChild(empty); }
    });
  }
  if (node) {
    var timeline = document.getElementById("timeline");
    es.addEventListener("status", function (e) {
      var d = node.querySelector("details"), open = d && d.open;
      node.replaceChildren(fragment(data(e).html, false));
      d = node.querySelector("details");
      if (d && open) { d.open = true; }
    });
    es.addEventListener("event", function (e) {
      var tr = fragment(data(e).html, true);
      if (tr && timeline) { tr.classList.add("fresh"); timeline.insertBefore(tr, timeline.firstChild); }
    });
  }
})();
