// certvault console: live updates of the rollouts and fleet pages, over
// the page's Server-Sent Events stream (the element with data-events).
// Progressive enhancement only: without it the page works and has a
// refresh link. Served from 'self' under a CSP that allows no inline
// script or style, so it sets text and the hidden attribute, nothing else.
"use strict";
(() => {
  const root = document.querySelector("[data-events]");
  const status = document.getElementById("live-status");
  const say = (msg) => { if (status) status.textContent = msg; };

  // Abort and the like ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
  if (!root || !window.EventSource) return;

  const setText = (id, text) => {
    const el = document.getElementById(id);
    if (el && el.textContent !== String(text)) el.textContent = String(text);
  };

  // rollouts: put each rollout's status and counts in place; a rollout
  // the page does not show (or no longer gets) asks for a refresh.
  const onRollouts = (e) => {
    const data = JSON.parse(e.data);
    const seen = new Set();
    let stale = false;
    for (const r of data.rollouts) {
      seen.add(r.id);
      if (!document.getElementById(r.id)) { stale = true; continue; }
      setText(r.id + "-status", r.status);
      setText(r.id + "-wave", r.wave ? r.wave + " of " + r.waves.length : "");
      setText(r.id + "-version", r.version);
      setText(r.id + "-previous", r.previous);
      setText(r.id + "-reason", r.reason);
      for (const w of r.waves) {
        const row = document.getElementById(w.id);
        if (!row) { stale = true; continue; }
        row.classList.toggle("reached", w.reached);
        setText(w.id + "-size", w.size);
        setText(w.id + "-target", w.target);
        setText(w.id + "-pending", w.pending);
        setText(w.id + "-healthy", w.healthy);
        setText(w.id + "-failed", w.failed);
        setText(w.id + "-rolledback", w.rolled_back);
      }
      for (const cmd of ["pause", "resume", "abort"]) {
        const form = document.getElementById(r.id + "-" + cmd);
        if (form) form.hidden = !r.commands.includes(cmd);
      }
    }
    for (const sec of root.querySelectorAll("section.rollout")) {
      if (!seen.has(sec.id)) stale = true;
    }
    say(stale ? "Rollouts were added or removed since the page was loaded; refresh to see them."
              : "Live: updated " + new Date().toLocaleTimeString() + ".");
  };

  const onFleet = () => {
    say("The fleet changed since the page was loaded (an agent reported, enrolled or was revoked); refresh to see it.");
  };

  const es = new EventSource(root.dataset.events);
  es.addEventListener("rollouts", onRollouts);
  es.addEventListener("fleet", onFleet);
  es.addEventListener("open", () => {
    if (root.id === "rollouts") say("Live: the counts follow the agents' reports.");
  });
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) say("Live updates stopped; refresh the page to see the latest.");
  });
})();
