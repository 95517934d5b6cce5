// Arrow-key navigation between heads on the Heads page: each press is handed to Dash as a
// {key, t} value of the "heads-key" store; the server callback moves the selection.
(function () {
  var KEYS = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"];
  document.addEventListener("keydown", function (event) {
    if (KEYS.indexOf(event.key) < 0 || !document.getElementById("heads-heatmap")) return;
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable) return;
    if (!window.dash_clientside || !window.dash_clientside.set_props) return;
    event.preventDefault();
    window.dash_clientside.set_props("heads-key", {data: {key: event.key, t: Date.now()}});
  });
})();
