// The nightly report's one script: draws each chart (Vega-Lite specs inlined in the page) and makes the
// tables sortable. No network: vega, vega-lite and vega-embed are vendored beside the pages.
(function () {
  "use strict";
  function json(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  var specs = json("salesos-charts") || {};
  var locale = json("salesos-locale");
  var jobs = Object.keys(specs).map(function (id) {
    var el = document.getElementById(id);
    return vegaEmbed(el, specs[id], {renderer: "svg", actions: false, formatLocale: locale})
      .then(function (result) {
        // how many marks were drawn: the browser test fails on a blank chart
        el.dataset.marks = String(el.querySelectorAll("g.role-mark > *").length);
      })
      .catch(function (err) {
        el.dataset.marks = "0";
        el.textContent = "This chart could not be drawn: " + err;
        console.error("chart " + id + ": " + err);
      });
  });
  Promise.all(jobs).then(function () { window.salesosReportReady = true; });

  // Sortable tables: a click (or Enter) on a column's button sorts by the cells' data-sort value (numbers)
  // or their text; a second click reverses. aria-sort tells assistive technology the order.
  function sortTable(table, col, button) {
    var th = button.closest("th");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[col];
      var v = cell.getAttribute("data-sort");
      if (v === null) return cell.textContent.trim().toLowerCase();
      return v === "" ? null : Number(v);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === null) return 1;  // missing values last, whichever the order
      if (y === null) return -1;
      return (x < y ? -1 : 1) * (ascending ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () { sortTable(table, col, button); });
    });
  });
})();
