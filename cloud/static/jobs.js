// A job's page (templates/jobs/job.html): every second, read /jobs/<id>.json and move the progress bar; when
// the job has finished, load the page again to show its outcome and the way back to the month's page.
// Without scripts the page refreshes itself (a <meta refresh> inside <noscript>).
(() => {
  const card = document.getElementById("job");
  if (!card || !["queued", "running"].includes(card.dataset.status)) return;
  const bar = document.getElementById("job-progress");
  const status = document.getElementById("job-status");
  const message = document.getElementById("job-message");
  const poll = async () => {
    try {
      const answer = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (answer.ok) {
        const job = await answer.json();
        bar.max = job.total || 1;
        bar.value = job.total ? job.done : job.status === "done" ? 1 : 0;
        bar.textContent = `${job.done} / ${job.total}`;
        status.textContent = job.status_text;
        status.className = `badge job-${job.status}`;
        message.textContent = job.message_text;
        if (job.status === "done" || job.status === "failed") {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // The server is restarting or the network dropped: try again on the next tick.
    }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 1000);
})();
