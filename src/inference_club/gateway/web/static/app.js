// Small behaviours every dashboard page shares: copy buttons and confirmations.
"use strict";

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP pages have no async clipboard API; a selected textarea still copies.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await copyText(source.textContent.trim());
    button.textContent = "Copied";
  } catch (error) {
    button.textContent = "Select and copy";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});

document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// The sharing control: group boxes only mean something with "Groups" chosen.
for (const form of document.querySelectorAll("form[data-share]")) {
  const update = () => {
    const groups = form.querySelector('input[name="share"][value="groups"]');
    for (const box of form.querySelectorAll('input[name="groups"]')) {
      box.disabled = !(groups && groups.checked);
    }
  };
  form.addEventListener("change", update);
  update();
}
