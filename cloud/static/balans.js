// Balans pages keep no script in their HTML (the Content-Security-Policy allows only this file):
// a button or form with data-confirm asks before it acts.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-confirm], input[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
