// The preference page (/p/<token>): the <prefcenter-preferences> component in a page of
// its own. The token is the last part of this page's address; the server is the one that
// served the page (relative, so a proxy's path prefix is kept).
import "./prefcenter-preferences.js";

const element = document.querySelector("prefcenter-preferences");
const token = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
element.setAttribute("api", new URL("..", window.location.href).toString());
element.setAttribute("token", token);

// The page around the component speaks its language; the title follows what it shows.
function localise(language) {
  document.documentElement.lang = language;
  for (const el of document.querySelectorAll("[data-text]")) {
    el.textContent = element.translateText(el.dataset.text);
  }
}

element.addEventListener("prefcenter-load", (event) => {
  localise(event.detail.language);
  document.title = `${element.translateText("Your preferences")} · ${event.detail.organisation}`;
});
element.addEventListener("prefcenter-error", (event) => {
  if (event.detail.title) {
    localise(element.shadowRoot.getElementById("container").lang || "en");
    document.title = `${event.detail.title} · ${element.translateText("Your preferences")}`;
  }
});
