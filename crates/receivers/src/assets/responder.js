// Times in the reader's own zone (the server writes UTC).
for (const t of document.querySelectorAll("time[data-ms]")) {
  const d = new Date(Number(t.dataset.ms));
  t.textContent = d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}
