// hostmig's status page: refreshes the live part every two seconds and
// follows the event log. What it inserts is HTML the daemon rendered and
// escaped; a 401 means the session ended, so the page reloads into the
// login form.
(function () {
  "use strict";
  var EVERY = 2000;

  function refresh(live) {
    fetch(live.dataset.src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null) { live.innerHTML = html; } })
      .catch(function () {})
      .then(function () { setTimeout(function () { refresh(live); }, EVERY); });
  }

  function follow(log) {
    var url = log.dataset.src + "?from=" + encodeURIComponent(log.dataset.next);
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { return null; }
        var next = r.headers.get("X-Hostmig-Next");
        if (next) { log.dataset.next = next; }
        return r.text();
      })
      .then(function (html) { if (html) { log.insertAdjacentHTML("beforeend", html); } })
      .catch(function () {})
      .then(function () { setTimeout(function () { follow(log); }, EVERY); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live && live.dataset.src) { setTimeout(function () { refresh(live); }, EVERY); }
    var log = document.getElementById("log");
    if (log && log.dataset.src) { setTimeout(function () { follow(log); }, EVERY); }
  });
})();
