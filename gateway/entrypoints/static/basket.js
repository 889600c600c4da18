/* Kassa basket form: "+ Add line" copies the last row, empty (quantity 1). Without JavaScript
 * the form still has its five rows. No inline handlers, so a strict CSP holds. */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.querySelector("[data-basket-lines]");
    var button = document.querySelector("[data-add-basket-line]");
    if (!body || !button) return;
    var max = parseInt(body.dataset.maxLines, 10) || 30;
    button.hidden = false;
    button.addEventListener("click", function () {
      var rows = body.querySelectorAll(".basket-line");
      if (rows.length >= max) return;
      var row = rows[rows.length - 1].cloneNode(true);
      row.querySelectorAll("input").forEach(function (input) {
        input.value = input.name === "line_quantity" ? "1" : "";
      });
      body.appendChild(row);
      row.querySelector("input").focus();
      if (rows.length + 1 >= max) button.disabled = true;
    });
  });
})();
