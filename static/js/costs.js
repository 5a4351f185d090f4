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
  var DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

  var DAY_LABEL_PX = 64;  // room for one "Nov 21" and the gap to the next

  function dayLabels(canvas) {
    // "2026-11-21" reads as "Nov 21" on the axis, as many as fit the chart's width (at most seven,
    // the last day always); the JSON keeps ISO dates.
    return function (label, index, labels) {
      var match = DAY.exec(label);
      var fit = Math.max(2, Math.min(7, Math.floor(canvas.clientWidth / DAY_LABEL_PX)));
      var step = Math.ceil(labels.length / fit);
      if ((labels.length - 1 - index) % step !== 0) { return null; }
      return MONTHS[Number(match[2]) - 1] + " " + Number(match[3]);
    };
  }

  function nameLabels(canvas) {
    // A model's, a provider's or a stage's name, slanted under its bar, cut to what the chart's
    // height leaves room for (in a chart under 480 px wide, "Anthropic / claude-sonnet-4-5" reads
    // "claude-sonnet-4-5": longer labels were cut off at the edge); the tooltip shows it whole.
    return function (label) {
      var room = canvas.clientWidth < 480 ? 20 : 28;
      var text = String(label);
      if (text.length > room && text.indexOf(" / ") !== -1) { text = text.split(" / ").pop(); }
      return text.length > room ? text.slice(0, room - 1) + "\u2026" : text;
    };
  }

  var AXES = {
    usd: function (value, index, values) { return axisMoney(Number(value), values); },
    count: function (value) { return Number(value).toLocaleString(); }
  };

  function yAxes(datasets) {
    // One axis for dollars and one for counts (tokens, calls), each shown while one of its
    // datasets is; counts take whole-number ticks. The axis of what shows first is on the left,
    // with the grid lines.
    var ids = [];
    datasets.filter(function (dataset) { return !dataset.hidden; })
      .concat(datasets.filter(function (dataset) { return dataset.hidden; }))
      .forEach(function (dataset) {
        if (ids.indexOf(dataset.yAxisID) === -1) { ids.push(dataset.yAxisID); }
      });
    return ids.map(function (id, index) {
      return {
        id: id, display: "auto", position: index === 0 ? "left" : "right",
        gridLines: {drawOnChartArea: index === 0},
        ticks: {beginAtZero: true, precision: id === "count" ? 0 : undefined, callback: AXES[id]}
      };
    });
  }

  function draw(canvas, payload) {
    var type = canvas.dataset.chartType || "line";
    var days = payload.labels.every(function (label) { return DAY.test(label); });
    var datasets = payload.datasets.map(function (dataset) {
      return Object.assign({fill: false, lineTension: 0.2, borderWidth: 2, pointRadius: 2}, dataset);
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
              var dataset = data.datasets[item.datasetIndex];
              var value = Number(item.yLabel);
              return (dataset.label || "") + ": " + (dataset.yAxisID === "usd" ? money(value) : value.toLocaleString());
            }
          }
        },
        scales: {
          xAxes: [{
            ticks: days ? {autoSkip: false, maxRotation: 0, callback: dayLabels(canvas)}
              : {autoSkip: false, maxRotation: 40, callback: nameLabels(canvas)}
          }],
          yAxes: yAxes(datasets)
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
