// Progressive enhancement for the practice page; the page works without it.
// - One submission per answer: a second click (or Enter) while the first is on its way does nothing.
//   (The server is idempotent anyway: the same exercise is never recorded twice.)
// - A friendly message when the tutor cannot be reached, instead of the browser's error page.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form.answer");
  if (!form) return;
  var status = form.querySelector(".status");
  var button = form.querySelector("button[type=submit]");
  var sending = false;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending) return;
    var data = new FormData(form);
    var answer = data.get("answer");
    if (answer === null || String(answer).trim() === "") {
      status.textContent = "Type or choose an answer first.";
      return;
    }
    sending = true;
    button.disabled = true;
    status.textContent = "Checking…";
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) {
        // Redirected to the result, or to sign-in when the session ended: go where the server says.
        window.location.assign(response.url);
      })
      .catch(function () {
        sending = false;
        button.disabled = false;
        status.textContent = "The tutor cannot be reached right now. Check your connection and press Check again.";
      });
  });
});
