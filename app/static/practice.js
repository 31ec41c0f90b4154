// Progressive enhancement for the student pages; they work without it.
// - One submission per answer: a second click (or Enter) while the first is on its way does nothing.
//   (The server is idempotent anyway: the same exercise is never recorded twice.)
// - A friendly message when the tutor cannot be reached, instead of the browser's error page.
document.addEventListener("DOMContentLoaded", function () {
  // Keyboard first: the field to type in (or the button to press) has the focus, whatever the browser
  // decided about the autofocus attribute.
  var first = document.querySelector("[autofocus]");
  if (first && document.activeElement !== first) first.focus();

  var form = document.querySelector("form.answer:not(.try)"); // the staff's preview answers in place
  if (!form) return;
  var status = form.querySelector(".status");
  var button = form.querySelector("button[type=submit]");
  var sending = false;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending) return;
    var data = new FormData(form);
    var answer = data.get("answer");
    var ordered = data.getAll("place").length > 0; // an order: every item has a place already
    if (!ordered && (answer === null || String(answer).trim() === "")) {
      status.textContent = "Type or choose an answer first.";
      return;
    }
    sending = true;
    button.disabled = true;
    status.textContent = "Checking…";
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) {
        if (response.ok) {
          // Redirected to the result, or to sign-in when the session ended: go where the server says.
          window.location.assign(response.url);
          return;
        }
        sending = false;
        button.disabled = false;
        status.textContent = "That did not work (" + response.status + "). Reload the page and try again.";
      })
      .catch(function () {
        sending = false;
        button.disabled = false;
        status.textContent = "The tutor cannot be reached right now. Check your connection and press Check again.";
      });
  });
});
