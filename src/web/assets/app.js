// pasarela's pages: live regions, the SMS counter, the customer picker, CSV files.
// Plain JavaScript, no dependencies; the pages work without it (minus the live parts).
"use strict";
(function () {
  var main = document.getElementById("main");
  var csrf = main ? main.getAttribute("data-csrf") : "";

  // Regions that refresh themselves from an HTML fragment of the server.
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var url = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    var last = null;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401) { window.location.href = "/login"; return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== last) { last = html; el.innerHTML = html; }
        })
        .catch(function () {})
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  });

  // Characters, SMS parts and encoding, computed by the server (POST /ui/preview).
  document.querySelectorAll("[data-counter]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    var pick = area.getAttribute("data-preview-customer");
    var phoneFrom = document.getElementById(area.getAttribute("data-preview-phone") || "");
    var timer = null;
    function update() {
      var body = { template: area.value };
      var personal = phoneFrom && phoneFrom.value && area.value.indexOf("%") >= 0;
      if (personal) { body.phone = phoneFrom.value; }
      if (area.getAttribute("data-uses")) { body.uses = area.getAttribute("data-uses"); }
      if (pick) {
        var sel = document.getElementById(pick);
        if (sel && sel.value) { body.customer = sel.value; }
      }
      fetch("/ui/preview", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json(); }).then(function (j) {
        if (j.error) { out.textContent = j.error.message; out.classList.add("bad"); return; }
        out.classList.remove("bad");
        var line = j.chars + " · " + j.parts + " · " + (j.encoding === "ucs2" ? "UCS-2" : "GSM-7");
        out.textContent = (pick || personal) ? line + " — " + j.text : line;
        out.setAttribute("data-parts", j.parts);
        out.setAttribute("data-encoding", j.encoding);
      }).catch(function () {});
    }
    function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
    area.addEventListener("input", later);
    if (pick) {
      var sel = document.getElementById(pick);
      if (sel) { sel.addEventListener("change", update); }
    }
    if (phoneFrom) { phoneFrom.addEventListener("input", later); phoneFrom.addEventListener("change", later); }
    area.addEventListener("pasarela:filled", update);
    if (area.value) { update(); }
  });

  // The campaign form's live preview count (POST /ui/campaigns/preview with the form).
  document.querySelectorAll("form[data-campaign-preview]").forEach(function (form) {
    var out = document.getElementById(form.getAttribute("data-campaign-preview"));
    var timer = null;
    function update() {
      fetch("/ui/campaigns/preview", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf },
        body: new URLSearchParams(new FormData(form)).toString()
      }).then(function (r) { return r.json(); }).then(function (j) {
        if (j.error) { out.textContent = j.error; out.classList.add("bad"); return; }
        out.classList.remove("bad");
        out.textContent = j.text;
      }).catch(function () {});
    }
    function later() { clearTimeout(timer); timer = setTimeout(update, 400); }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  });

  // A template picker puts the chosen template's text into its text area.
  document.querySelectorAll("select[data-template-into]").forEach(function (sel) {
    var target = document.getElementById(sel.getAttribute("data-template-into"));
    sel.addEventListener("change", function () {
      var opt = sel.options[sel.selectedIndex];
      if (!target || !opt || !opt.getAttribute("data-text")) { return; }
      target.value = opt.getAttribute("data-text");
      target.dispatchEvent(new Event("pasarela:filled"));
    });
  });

  // The customer picker fills the number field.
  document.querySelectorAll("[data-fill]").forEach(function (input) {
    var target = document.getElementById(input.getAttribute("data-fill"));
    input.addEventListener("change", function () {
      if (target && input.value) { target.value = input.value; }
    });
  });

  // A chosen CSV file goes into the text area the form posts.
  document.querySelectorAll("input[type=file][data-into]").forEach(function (input) {
    var target = document.getElementById(input.getAttribute("data-into"));
    input.addEventListener("change", function () {
      var f = input.files && input.files[0];
      if (!f || !target) { return; }
      var reader = new FileReader();
      reader.onload = function () { target.value = reader.result; };
      reader.readAsText(f);
    });
  });
})();
