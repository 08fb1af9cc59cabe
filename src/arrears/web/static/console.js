// A change htmx sent and the server refused (403: an expired form or a role that may not;
// other errors) is not swapped into the page: say so in the page's alert region instead.
(function () {
  "use strict";
  function region() { return document.getElementById("refused"); }
  function say(text) {
    const el = region();
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
  }
  document.addEventListener("htmx:beforeRequest", function () {
    const el = region();
    if (el) { el.hidden = true; el.textContent = ""; }
  });
  document.addEventListener("htmx:responseError", function (event) {
    const xhr = event.detail.xhr;
    let text = "";
    try {
      // The console's error page carries its message in a [role=alert] paragraph.
      const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      const found = doc.querySelector("main [role=alert]:not(#refused)");
      text = found ? found.textContent.trim() : "";
    } catch (e) { text = ""; }
    say("Not done (" + xhr.status + "): " + (text || "the console refused the change; reload the page and try again."));
  });
  document.addEventListener("htmx:sendError", function () {
    say("Not done: the console could not be reached. Check the connection and try again.");
  });
})();
