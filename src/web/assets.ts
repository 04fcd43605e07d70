/**
 * The UI's only stylesheet and script, served from /static so the Content-Security-Policy can
 * forbid inline code. The script only sets textContent: nothing it receives becomes markup.
 */

export const STYLESHEET = `
:root { color-scheme: light dark; --accent: #2f6fde; --bad: #c62828; --ok: #2e7d32; --muted: #777; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; }
header { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; padding: .6rem 1rem; border-bottom: 1px solid #8884; }
header strong { font-size: 1.1rem; margin-right: .5rem; }
header a { text-decoration: none; }
main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.table { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #8883; vertical-align: top; }
th { font-weight: 600; font-size: .85rem; color: var(--muted); }
td.mono, .mono, code, pre { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
pre { background: #8881; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
pre#console { max-height: 36rem; overflow-y: auto; }
form.card, .card { border: 1px solid #8884; border-radius: 6px; padding: .8rem 1rem; margin: .8rem 0; }
form.inline { display: inline; }
label { display: block; margin: .4rem 0; }
label span { display: block; font-size: .85rem; color: var(--muted); }
input[type=text], input[type=number], select { width: 100%; max-width: 28rem; padding: .35rem; font: inherit; }
button { font: inherit; padding: .3rem .8rem; border-radius: 4px; border: 1px solid #8886; cursor: pointer; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button.danger { background: var(--bad); color: #fff; border-color: var(--bad); }
.field-error, .error { color: var(--bad); font-size: .9rem; }
.error { border: 1px solid var(--bad); border-radius: 6px; padding: .5rem .8rem; }
.state-running { color: var(--accent); } .state-succeeded, .status-ok { color: var(--ok); }
.state-failed, .state-cancelled, .status-fail { color: var(--bad); } .status-warn { color: #b26a00; }
.muted { color: var(--muted); }
progress { width: 100%; max-width: 28rem; height: 1.2rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .6rem; }
.grid .card { margin: 0; } .grid .card b { display: block; font-size: 1.5rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; } dt { color: var(--muted); } dd { margin: 0; word-break: break-all; }
@media (max-width: 40rem) { main { padding: .6rem; } th, td { padding: .3rem; } }
`

export const SCRIPT = `
"use strict";
(function () {
  var text = function (id, value) { var el = document.getElementById(id); if (el) el.textContent = value; };
  var bytes = function (n) {
    var units = ["B", "KiB", "MiB", "GiB"]; var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  };
  // A form being submitted (Cancel) navigates on its own; a reload now would abort it.
  var submitting = false;
  document.addEventListener("submit", function () { submitting = true; });
  var op = document.getElementById("op");
  if (op && op.dataset.state === "running" && window.EventSource) {
    var source = new EventSource(op.dataset.events);
    // The daemon could not watch it (pruned, or a store error): stop instead of reconnecting forever.
    source.addEventListener("failure", function (event) {
      source.close();
      text("op-stage", "live updates stopped: " + JSON.parse(event.data));
    });
    source.onmessage = function (event) {
      var status = JSON.parse(event.data);
      var p = status.progress;
      var percent = p.bytesTotal > 0 ? Math.floor((p.bytesDone * 100) / p.bytesTotal) : 0;
      text("op-state", status.state);
      text("op-stage", (status.phase ? status.phase.phase + " " + status.phase.name + ": " : "") + (status.stage || "starting"));
      var retry = status.retry;
      text("op-retry", retry ? retry.what + ": " + retry.reason + ", retrying (" + retry.attempt + " of " + retry.of + ")" : "none");
      text("op-percent", percent + " %");
      text("op-bytes", bytes(p.bytesDone) + " / " + bytes(p.bytesTotal) + " (" + p.layers.filter(function (l) { return l.bytesDone >= l.bytesTotal; }).length + "/" + p.layerCount + " layers)");
      var bar = document.getElementById("op-bar"); if (bar) bar.value = percent;
      if (status.state !== "running") { source.close(); if (!submitting) window.location.reload(); }
    };
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.dataset.copy);
      if (target && navigator.clipboard) navigator.clipboard.writeText(target.textContent || "");
    });
  });
})();
`
