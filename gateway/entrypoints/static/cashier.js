/* Kassa cashier screen: keypad, running total, double-tap guard, cancel confirmation and
 * following a payment live (its event stream, else polling). Amounts are handled as integer minor units in strings; the server
 * computes the amount that is charged. No inline handlers, so a strict CSP holds. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  /* The page's words in its language (a JSON block the template fills); English if absent. */
  var texts = {};
  try {
    var block = document.getElementById("kassa-texts");
    if (block) texts = JSON.parse(block.textContent);
  } catch (e) { texts = {}; }
  function t(key, english) { return texts[key] || english; }

  /* Parse "12,50" / "12.50" into integer minor units, or null if it is not an amount. */
  function toMinor(text, exponent) {
    var t = String(text).replace(/[\s\u00a0]/g, "").replace(",", ".");
    var m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(t);
    if (!m) return null;
    var frac = m[3] || "";
    if (frac.length > exponent) return null;
    while (frac.length < exponent) frac += "0";
    var minor = parseInt(m[2] + frac, 10);
    return m[1] ? -minor : minor;
  }

  function digitsOf(minor, fmt) {
    var neg = minor < 0;
    var s = String(Math.abs(minor));
    var exp = fmt.exponent;
    while (s.length <= exp) s = "0" + s;
    var units = exp ? s.slice(0, s.length - exp) : s;
    var frac = exp ? s.slice(s.length - exp) : "";
    return { neg: neg, units: units, frac: frac };
  }

  function formatMinor(minor, fmt) {
    var d = digitsOf(minor, fmt);
    var units = d.units.replace(/\B(?=(\d{3})+(?!\d))/g, fmt.group);
    var number = units + (fmt.exponent ? fmt.decimal + d.frac : "");
    return (d.neg ? "-" : "") + fmt.prefix + number + fmt.suffix;
  }

  function plainMinor(minor, fmt) {
    var d = digitsOf(minor, fmt);
    return (d.neg ? "-" : "") + d.units + (fmt.exponent ? fmt.decimal + d.frac : "");
  }

  function setupSaleForm(form) {
    var fmt = {
      prefix: form.dataset.prefix, suffix: form.dataset.suffix, group: form.dataset.group,
      decimal: form.dataset.decimal, exponent: parseInt(form.dataset.exponent, 10)
    };
    var amount = form.querySelector("#amount");
    var linesBox = form.querySelector("[data-lines]");
    var totalOut = form.querySelector("[data-lines-total]");
    var amountHint = form.querySelector("[data-amount-hint]");
    var target = amount;

    function lineAmounts() {
      return Array.prototype.slice.call(form.querySelectorAll(".line-amount"));
    }

    function recompute() {
      var sum = 0, any = false, bad = false;
      lineAmounts().forEach(function (input) {
        if (input.value.trim() === "") return;
        var minor = toMinor(input.value, fmt.exponent);
        input.classList.toggle("is-invalid", minor === null);
        if (minor === null) { bad = true; return; }
        sum += minor; any = true;
      });
      totalOut.textContent = bad ? t("check_lines", "check the lines") : formatMinor(sum, fmt);
      if (any && !bad) {
        amount.value = plainMinor(sum, fmt);
        amount.readOnly = true;
        amountHint.hidden = false;
      } else if (amount.readOnly) {
        amount.readOnly = false;
        amount.value = "";
        amountHint.hidden = true;
      }
    }

    form.addEventListener("focusin", function (e) {
      var el = e.target;
      if (el === amount || el.classList.contains("line-amount")) target = el;
    });
    form.addEventListener("input", function (e) {
      if (e.target.classList.contains("line-amount")) recompute();
    });

    form.querySelectorAll("[data-key]").forEach(function (key) {
      key.addEventListener("click", function () {
        if (target.readOnly) target = lineAmounts()[0] || amount;
        var k = key.dataset.key;
        if (k === "back") target.value = target.value.slice(0, -1);
        else if (k === "clear") target.value = "";
        else if (k === "sep") {
          if (fmt.exponent && !/[.,]/.test(target.value)) target.value += target.value ? fmt.decimal : "0" + fmt.decimal;
        } else target.value += k;
        if (target !== amount) recompute();
        target.focus();
      });
    });

    var addLine = form.querySelector("[data-add-line]");
    if (addLine) {
      addLine.hidden = false;
      addLine.addEventListener("click", function () {
        var rows = linesBox.querySelectorAll(".line");
        if (rows.length >= 30) return;
        var row = rows[rows.length - 1].cloneNode(true);
        row.querySelectorAll("input").forEach(function (input) {
          input.value = "";
          input.classList.remove("is-invalid");
        });
        linesBox.appendChild(row);
        row.querySelector("input").focus();
      });
    }

    /* One tap creates one payment: the server dedupes by the form's key, this spares a wait. */
    var buttons = Array.prototype.slice.call(form.querySelectorAll("[data-submit]"));
    form.addEventListener("submit", function (event) {
      var pressed = event.submitter || buttons[0];
      window.setTimeout(function () {
        buttons.forEach(function (b) { b.disabled = true; });
        pressed.textContent = pressed.dataset.busy;
      }, 0);
    });
    window.addEventListener("pageshow", function () {
      buttons.forEach(function (b) { b.disabled = false; b.textContent = b.dataset.label; });
    });
    recompute();
  }

  function setupConfirm(form) {
    var dialog = document.getElementById(form.dataset.confirm);
    if (!dialog || typeof dialog.showModal !== "function") return;
    var confirmed = false;
    form.addEventListener("submit", function (e) {
      if (confirmed) return;
      e.preventDefault();
      dialog.showModal();
    });
    dialog.querySelector("[data-confirm-yes]").addEventListener("click", function () {
      confirmed = true;
      dialog.close();
      form.requestSubmit ? form.requestSubmit() : form.submit();
    });
    dialog.querySelector("[data-confirm-no]").addEventListener("click", function () {
      dialog.close();
    });
  }

  function mmss(seconds) {
    var s = Math.max(0, seconds);
    var m = Math.floor(s / 60);
    var r = s % 60;
    return (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function followPayment(body) {
    var url = body.dataset.statusUrl;
    var clock = document.querySelector("[data-countdown]");
    var countdown = document.querySelector(".countdown");
    var deadline = Date.now() + parseInt(body.dataset.secondsLeft, 10) * 1000;
    var open = body.dataset.open === "true";
    var following = body.dataset.following === "true";
    var titles = {};
    ["paid", "expired", "cancelled", "failed", "refunded", "partially_refunded", "terminal", "unknown"].forEach(function (k) {
      titles[k] = t(k, k);
    });

    /* A sentence the page was rendered with (translated), its %(name)s filled in. */
    function fill(template, values) {
      return template.replace(/%\((\w+)\)s/g, function (_, name) { return values[name] || ""; });
    }

    /* Once paid, the customer's e-receipt link and its QR code (asked for once). */
    var receiptAsked = false;
    function showReceipt() {
      var boxes = document.querySelectorAll("[data-receipt-link]");
      if (receiptAsked || !boxes.length || !boxes[0].hidden || !boxes[0].dataset.issueUrl) return;
      receiptAsked = true;
      fetch(boxes[0].dataset.issueUrl, {
        method: "POST", credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": body.dataset.csrf }
      })
        .then(function (r) { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
        .then(function (link) {
          boxes.forEach(function (box) {
            var a = box.querySelector("[data-receipt-url]");
            a.href = link.url; a.textContent = link.url;
            box.querySelector("[data-receipt-qr]").src = link.qr_data_uri;
            box.hidden = false;
          });
        })
        .catch(function () { receiptAsked = false; });
    }

    /* A refund on its way, what was refunded so far, and the sale's lucky draws. */
    function showRefundsAndDraws(p) {
      document.querySelectorAll("[data-refund-notice]").forEach(function (note) {
        note.textContent = fill(note.dataset.template, { amount: p.refunding_text });
        note.hidden = !p.refunds_open;
      });
      document.querySelectorAll("[data-refund-summary][data-template]").forEach(function (summary) {
        summary.textContent = fill(summary.dataset.template, { refunded: p.refunded_text, amount: p.amount_text });
      });
      if (!p.draws || !p.draws.length) return;
      document.querySelectorAll("[data-draws]").forEach(function (box) {
        box.textContent = "";
        p.draws.forEach(function (d) {
          var line = document.createElement("p");
          line.className = "sale-summary-draw";
          line.setAttribute("data-draw", "");
          line.textContent = d.outcome === "won" ? fill(box.dataset.won, { prize: d.prize }) : box.dataset.lost;
          box.appendChild(line);
        });
      });
    }

    function show(screen) {
      if (["paid", "refunded", "partially_refunded"].indexOf(screen) >= 0) showReceipt();
      if (body.dataset.screen === screen) return;
      body.dataset.screen = screen;
      if (titles[screen]) document.title = titles[screen] + " · Kassa";
      var focus = document.querySelector(".state-" + screen + " [data-autofocus]");
      if (focus) focus.focus();
    }

    function tick() {
      var left = Math.round((deadline - Date.now()) / 1000);
      if (clock) clock.textContent = mmss(left);
      if (countdown) countdown.classList.toggle("is-low", left <= 30);
      if (left <= 0 && body.dataset.screen === "open") show("expired");
    }

    /* One update of the payment (from the status poll or the live stream). */
    function apply(p, via) {
      deadline = Date.now() + p.seconds_left * 1000;
      open = p.open;
      following = p.following;
      showRefundsAndDraws(p);
      if (p.display_text) {
        var said = document.querySelector("[data-terminal-text]");
        if (said) { said.textContent = p.display_text; said.dataset.via = via; }
        var why = document.querySelector("[data-outcome-message]");
        if (why && p.method === "card") why.textContent = p.display_text;
      }
      var receipt = document.querySelector("[data-receipt]");
      if (receipt && p.receipt_text) { receipt.textContent = p.receipt_text; receipt.hidden = false; }
      show(p.screen);
    }

    /* The live stream (server-sent events) while it is connected; polling whenever it is not.
     * The server ends a stream after a while and the browser reconnects by itself; once the
     * payment is settled the stream is closed for good. */
    var live = false;
    function listen() {
      if (!body.dataset.eventsUrl || typeof window.EventSource !== "function") return;
      var source = new window.EventSource(body.dataset.eventsUrl);
      source.addEventListener("open", function () { live = true; });
      source.addEventListener("status", function (e) {
        var p = JSON.parse(e.data);
        apply(p, "stream");
        if (!p.following) { source.close(); live = false; }
      });
      source.addEventListener("error", function () {
        live = false;
        if (source.readyState === window.EventSource.CLOSED) source.close();
      });
    }

    function poll() {
      if (!following) return;  // settled (the stream said so last): nothing more to ask
      if (live) { window.setTimeout(poll, 1000); return; }
      fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) { window.location.assign(body.dataset.loginUrl); throw new Error("signed out"); }
          if (!r.ok) throw new Error("status " + r.status);
          return r.json();
        })
        // a stream that connected while this poll was on its way has said it already, or newer
        .then(function (p) { if (!live) apply(p, "poll"); })
        .catch(function () { /* offline for a moment: keep the screen, try again */ })
        .then(function () {
          if (following) window.setTimeout(poll, 1000);
        });
    }

    tick();
    window.setInterval(tick, 1000);
    if (following) {
      listen();
      window.setTimeout(poll, 1000);
    }
  }

  /* The refund page: each refund's status follows the bank without a reload (polling the
   * payment's status while a refund is on its way). */
  function followRefunds(body) {
    var table = document.querySelector("[data-refund-table]");
    var refunded = document.querySelector("[data-refunded]");
    function poll() {
      fetch(body.dataset.refundsUrl, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
        .then(function (p) {
          if (refunded) refunded.textContent = p.refunded_text;
          (p.refunds || []).forEach(function (r) {
            var row = table && table.querySelector("[data-refund-id='" + r.id + "']");
            if (!row || row.dataset.refundStatus === r.status) return;
            row.dataset.refundStatus = r.status;
            var label = table.dataset["label" + r.status.charAt(0).toUpperCase() + r.status.slice(1)] || r.status;
            row.querySelector("[data-refund-status-text]").textContent = label + (r.failure ? ": " + r.failure : "");
          });
          if (!p.refunds_open) {
            document.querySelectorAll("[data-progress]").forEach(function (n) { n.hidden = true; });
            return;
          }
          window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 2000); });
    }
    window.setTimeout(poll, 1000);
  }

  /* Any other money form (a refund): one tap sends it once; the server dedupes by its key. */
  function setupOnce(form) {
    var button = form.querySelector("[data-submit]");
    form.addEventListener("submit", function () {
      window.setTimeout(function () { button.disabled = true; }, 0);
    });
    window.addEventListener("pageshow", function () { button.disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var sale = document.querySelector("form[data-sale-form]");
    if (sale) setupSaleForm(sale);
    document.querySelectorAll("form[data-once]").forEach(setupOnce);
    document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
    if (document.body.dataset.statusUrl) followPayment(document.body);
    if (document.body.dataset.refundsUrl && document.body.dataset.following === "true") followRefunds(document.body);
  });
})();
