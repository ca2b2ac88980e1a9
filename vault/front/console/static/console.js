// certvault console: progressive enhancement only; every page works
// without it. Served from 'self' under a CSP that allows no inline script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Move focus to the first error so that screen readers announce it.
  const err = document.querySelector("[role=alert]");
  if (err) {
    err.setAttribute("tabindex", "-1");
    err.focus();
  }
});
