// The report page's chart: answers per day by outcome, drawn with uPlot from the JSON in the page.
(function () {
  "use strict";
  var OUTCOMES = [
    ["llm", "answered", "#2f6fde"],
    ["retrieval-only", "sources only", "#8a5cd1"],
    ["abstain", "not covered", "#d08c14"],
    ["error", "failed", "#c8323c"],
  ];

  function draw() {
    var holder = document.getElementById("chart");
    var source = document.getElementById("by-day-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var days = JSON.parse(source.textContent || "[]");
    var xs = days.map(function (d) { return Date.parse(d.day + "T12:00:00Z") / 1000; });
    var data = [xs].concat(OUTCOMES.map(function (o) { return days.map(function (d) { return d[o[0]] || 0; }); }));
    var series = [{}].concat(OUTCOMES.map(function (o) {
      return { label: o[1], stroke: o[2], width: 2, points: { show: days.length <= 62 } };
    }));
    var width = Math.max(280, Math.min(holder.clientWidth || 800, 1100));
    holder.textContent = "";
    var plot = new uPlot({
      width: width,
      height: 260,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, max)]; } } },
      axes: [{}, { label: "answers" }],
      legend: { live: false },
    }, data, holder);
    holder.setAttribute("data-drawn", String(days.length));
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(280, Math.min(holder.clientWidth || 800, 1100)), height: 260 });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
