// The passage viewer opens at the cited passage (a static file: the Content-Security-Policy allows no inline script).
document.addEventListener("DOMContentLoaded", () => {
  const cited = document.querySelector("[data-docent-cited]");
  if (cited) cited.scrollIntoView({ block: "center" });
});
