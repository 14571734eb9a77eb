// Draws the analytics page's charts (templates/insights/analytics.html) with Chart.js, served from
// static/vendor/chart.js (node_modules/chart.js/dist). The figures come from the page's JSON island
// (#analytics-data, written by json_script); the same figures are in the page's tables, which stay the
// whole page when the library is missing. No inline script: the page works under a strict CSP.

const COLOURS = {
  answered: "#2563eb",
  refused: "#f97316",
  median: "#059669",
  p95: "#7c3aed",
  series: ["#2563eb", "#f97316", "#059669", "#7c3aed", "#db2777", "#0891b2", "#ca8a04", "#4b5563"],
};

function charts(data) {
  const texts = data.texts;
  const locale = data.locale === "zh-hans" ? "zh-Hans" : data.locale;
  const common = { locale, animation: false, responsive: true, maintainAspectRatio: false };
  const integers = { beginAtZero: true, ticks: { precision: 0 } };
  return {
    questions: {
      type: "bar",
      data: {
        labels: data.days,
        datasets: [
          { label: texts.answered, data: data.answered, backgroundColor: COLOURS.answered, maxBarThickness: 48 },
          { label: texts.refused, data: data.refused, backgroundColor: COLOURS.refused, maxBarThickness: 48 },
        ],
      },
      options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, ...integers } } },
    },
    ttft: {
      type: "line",
      data: {
        labels: data.days,
        datasets: [
          { label: texts.median, data: data.ttft_median, borderColor: COLOURS.median, backgroundColor: COLOURS.median },
          { label: texts.p95, data: data.ttft_p95, borderColor: COLOURS.p95, backgroundColor: COLOURS.p95 },
        ],
      },
      options: {
        ...common,
        spanGaps: false, // a day without answers is a gap, not a line between its neighbours
        scales: { y: { beginAtZero: true, title: { display: true, text: texts.ms } } },
      },
    },
    channels: {
      type: "doughnut",
      data: {
        labels: data.channels.labels,
        datasets: [{ data: data.channels.values, backgroundColor: COLOURS.series }],
      },
      options: { ...common, plugins: { legend: { position: "right" } } },
    },
    languages: {
      type: "bar",
      data: {
        labels: data.languages.labels,
        datasets: [
          { label: texts.questions, data: data.languages.values, backgroundColor: COLOURS.series, maxBarThickness: 48 },
        ],
      },
      options: { ...common, plugins: { legend: { display: false } }, scales: { y: integers } },
    },
    documents: {
      type: "bar",
      data: {
        labels: data.documents.labels,
        datasets: [
          { label: texts.questions, data: data.documents.values, backgroundColor: COLOURS.answered, maxBarThickness: 24 },
        ],
      },
      options: { ...common, indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: integers } },
    },
  };
}

function draw() {
  const island = document.getElementById("analytics-data");
  if (!island) return;
  const canvases = document.querySelectorAll("canvas[data-chart]");
  const Chart = globalThis.Chart;
  if (typeof Chart !== "function") {
    // the library is not installed: the tables alone tell the figures
    canvases.forEach((canvas) => canvas.parentElement.classList.add("unavailable"));
    document.documentElement.dataset.charts = "unavailable";
    return;
  }
  const configs = charts(JSON.parse(island.textContent));
  let drawn = 0;
  canvases.forEach((canvas) => {
    const config = configs[canvas.dataset.chart];
    if (!config) return;
    new Chart(canvas, config);
    drawn += 1;
  });
  document.documentElement.dataset.charts = String(drawn);
}

// a module runs after the document is parsed and after the deferred library script before it
draw();
