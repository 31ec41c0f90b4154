// The jobs pages: each job still queued or running is polled (GET /api/v1/jobs/<id>, with the session) and
// its progress bar, state and message kept up to date; when one finishes, the page reloads (a job page
// opened to follow a new job then goes on to its result). The pages work without it (reload by hand).
document.addEventListener("DOMContentLoaded", function () {
  var WORDS = { queued: "Waiting for a worker", running: "Running" };
  var watched = Array.prototype.slice.call(
    document.querySelectorAll('[data-job-url][data-state="queued"], [data-job-url][data-state="running"]')
  );
  if (!watched.length) return;

  function show(card, job) {
    var bar = card.querySelector("progress");
    if (bar && job.progress.total) {
      bar.max = job.progress.total;
      bar.value = job.progress.done;
    }
    var state = card.querySelector("[data-job-state]");
    if (state && WORDS[job.state]) state.textContent = WORDS[job.state];
    var message = card.querySelector("[data-job-message]");
    if (message) message.textContent = job.progress.message;
  }

  function poll() {
    Promise.all(
      watched.map(function (card) {
        return fetch(card.getAttribute("data-job-url"), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        })
          .then(function (response) { return response.ok ? response.json() : null; })
          .catch(function () { return null; });
      })
    ).then(function (found) {
      var finished = false;
      found.forEach(function (job, i) {
        if (!job) return;
        if (job.state !== "queued" && job.state !== "running") finished = true;
        else show(watched[i], job);
      });
      if (finished) window.location.reload();
      else window.setTimeout(poll, 1500);
    });
  }
  window.setTimeout(poll, 1000);
});
