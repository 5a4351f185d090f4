// The menu of narrow screens: one row with a Menu button instead of three rows of links. Without this
// script the links show as they are. Delegated, so a header that htmx swaps in (a whole body) works too.
document.documentElement.classList.add("js");

function setMenuOpen(button, open) {
  button.setAttribute("aria-expanded", String(open));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest(".menu-toggle");
  if (button) setMenuOpen(button, button.getAttribute("aria-expanded") !== "true");
});

document.addEventListener("keydown", (event) => {
  const button = document.querySelector('.menu-toggle[aria-expanded="true"]');
  if (event.key === "Escape" && button) {
    setMenuOpen(button, false);
    button.focus();
  }
});
