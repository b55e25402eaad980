// The preference page (/p/<token>): the <prefcenter-preferences> component in a page of
// its own. The token is the last part of this page's address; the server is the one that
// served the page (relative, so a proxy's path prefix is kept).
import "./prefcenter-preferences.js";

const element = document.querySelector("prefcenter-preferences");
const token = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
element.setAttribute("api", new URL("..", window.location.href).toString());
element.setAttribute("token", token);

// The page's title follows what the component shows.
element.addEventListener("prefcenter-load", (event) => {
  document.title = `Your preferences · ${event.detail.organisation}`;
});
element.addEventListener("prefcenter-error", (event) => {
  if (event.detail.title) document.title = `${event.detail.title} · Your preferences`;
});
