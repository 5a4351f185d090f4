// Draws every <canvas data-chart-url> with the Chart.js that django-chartjs ships, from the JSON
// view it names (labels and datasets, as Chart.js takes them). The page's CSP allows no inline
// style, so Chart.js's stylesheet is linked from the page instead of injected.
(function () {
  "use strict";
  if (!window.Chart) { return; }
  Chart.platform.disableCSSInjection = true;
  var style = getComputedStyle(document.documentElement);
  Chart.defaults.global.defaultFontColor = style.getPropertyValue("--muted").trim() || "#5d6275";
  Chart.defaults.global.defaultFontFamily = style.getPropertyValue("--font").trim() || "sans-serif";

  function money(value) {
    return "$" + (value >= 0.01 || value === 0 ? value.toFixed(2) : value.toPrecision(2));
  }

  function axisMoney(value, values) {
    // Every tick with the decimals the step between ticks needs ($0.00005, $0.00010, ...), at least
    // cents, so the labels of one axis line up.
    var step = values.length > 1 ? Math.abs(values[0] - values[1]) : Math.abs(value);
    var decimals = step > 0 ? Math.max(2, Math.ceil(-Math.log10(step) - 1e-9)) : 2;
    return "$" + value.toFixed(Math.min(decimals, 10));
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  var DAY_LABEL_PX = 64;  // room for one "Nov 21" and the gap to the next

  function dayLabels(canvas) {
    // "2026-11-21" reads as "Nov 21" on the axis, as many as fit the chart's width (at most seven,
    // the last day always); the JSON keeps ISO dates, and other labels pass as they are.
    return function (label, index, labels) {
      var match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(label);
      if (!match) { return label; }
      var fit = Math.max(2, Math.min(7, Math.floor(canvas.clientWidth / DAY_LABEL_PX)));
      var step = Math.ceil(labels.length / fit);
      if ((labels.length - 1 - index) % step !== 0) { return null; }
      return MONTHS[Number(match[2]) - 1] + " " + Number(match[3]);
    };
  }

  function draw(canvas, payload) {
    var type = canvas.dataset.chartType || "line";
    var stacked = type === "bar" && canvas.dataset.chartStacked === "true";
    var money_axis = canvas.dataset.chartMoney === "true";
    var datasets = payload.datasets.map(function (dataset, index) {
      var result = Object.assign({}, dataset, {fill: false, lineTension: 0.2, borderWidth: 2, pointRadius: 2});
      if (type === "bar" && index > 0) {
        result.hidden = true;  // "Calls": shown from the legend on demand
      }
      return result;
    });
    new Chart(canvas, {
      type: type,
      data: {labels: payload.labels, datasets: datasets},
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        legend: {display: datasets.length > 1},
        tooltips: {
          callbacks: {
            label: function (item, data) {
              var name = data.datasets[item.datasetIndex].label || "";
              var value = Number(item.yLabel);
              return name + ": " + (money_axis && name.indexOf("USD") !== -1 ? money(value) : value.toLocaleString());
            }
          }
        },
        scales: {
          xAxes: [{stacked: stacked, ticks: {autoSkip: type === "bar", maxRotation: type === "bar" ? 40 : 0, callback: dayLabels(canvas)}}],
          yAxes: [{stacked: stacked, ticks: {beginAtZero: true, callback: function (value, index, values) {
            return money_axis ? axisMoney(Number(value), values) : Number(value).toLocaleString();
          }}}]
        }
      }
    });
  }

  function load(canvas) {
    fetch(canvas.dataset.chartUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (payload) {
        if (!payload.labels.length) {
          canvas.parentNode.classList.add("chart-empty");
          return;
        }
        draw(canvas, payload);
      })
      .catch(function () {
        canvas.parentNode.classList.add("chart-failed");
      });
  }

  function start() {
    document.querySelectorAll("canvas[data-chart-url]").forEach(load);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
